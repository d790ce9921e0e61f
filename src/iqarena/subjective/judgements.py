"""Pairwise judgement tables: which of two distorted images of one reference looked better.

A table has one row per judgement with the columns ``reference, image_a, image_b, winner`` and
optionally ``rater`` and ``time``; ``winner`` is ``A``, ``B`` or ``tie`` (case-insensitive; the
name of image A or image B is accepted as well). Image names must be unique across references
(PIPAL's are: ``A0001_00_00.bmp`` belongs to ``A0001.bmp``), because a label file is ``name,score``.

Internally a :class:`Judgements` holds integer codes: images ``0..N-1`` (with their reference
code) and per row the two image codes and the outcome for A (1 win, 0 loss, 0.5 tie), so the
fitting code works on numpy arrays even for millions of rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import output_path

REQUIRED = ("reference", "image_a", "image_b", "winner")
OPTIONAL = ("rater", "time")
_WINNER = {"a": 1.0, "b": 0.0, "tie": 0.5, "draw": 0.5, "=": 0.5}


@dataclass(frozen=True)
class Judgements:
    """Pairwise judgements with integer-coded images.

    ``images[i]`` is the name of image ``i``, ``refs[image_ref[i]]`` its reference. Row ``r`` compares
    ``a[r]`` with ``b[r]``; ``outcome[r]`` is 1 when A looked better, 0 when B did, 0.5 for a tie.
    ``rater`` and ``time`` are per-row arrays or None. Images without any judgement may be present
    (from an image list); they keep the initial rating.
    """

    images: np.ndarray      # (N,) object: image names
    image_ref: np.ndarray   # (N,) int64: reference code of each image
    refs: np.ndarray        # (M,) object: reference names
    a: np.ndarray           # (J,) int64
    b: np.ndarray           # (J,) int64
    outcome: np.ndarray     # (J,) float64 in {0, 0.5, 1}
    rater: np.ndarray | None = None
    time: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.a.shape[0])

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.images)}

    def counts(self) -> np.ndarray:
        """Number of judgements each image took part in."""
        return np.bincount(self.a, minlength=self.n_images) + np.bincount(self.b, minlength=self.n_images)

    def order(self) -> np.ndarray:
        """Row order as collected: by ``time`` when present (stable), else file order."""
        if self.time is None:
            return np.arange(len(self))
        return np.argsort(self.time, kind="stable")

    def subset(self, rows: np.ndarray) -> "Judgements":
        """The same images with only the given rows (indices, repeats allowed: bootstrap)."""
        pick = lambda x: None if x is None else x[rows]  # noqa: E731
        return Judgements(self.images, self.image_ref, self.refs, self.a[rows], self.b[rows],
                          self.outcome[rows], pick(self.rater), pick(self.time))

    def table(self) -> dict[str, list]:
        """Plain columns (names, winner as A/B/tie), the inverse of :func:`from_columns`."""
        win = np.where(self.outcome == 1.0, "A", np.where(self.outcome == 0.0, "B", "tie"))
        out = {"reference": list(self.refs[self.image_ref[self.a]]), "image_a": list(self.images[self.a]),
               "image_b": list(self.images[self.b]), "winner": list(win)}
        if self.rater is not None:
            out["rater"] = list(self.rater)
        if self.time is not None:
            out["time"] = list(self.time)
        return out


def _catalogue(images: Mapping[str, str] | Iterable[str] | None) -> dict[str, str | None] | None:
    if images is None:
        return None
    if isinstance(images, Mapping):
        return {str(k): str(v) for k, v in images.items()}
    return {str(k): None for k in images}


def from_columns(columns: Mapping[str, Sequence], *, images: Mapping[str, str] | Iterable[str] | None = None,
                 source: str = "judgements", line_offset: int = 2, line_word: str = "line") -> Judgements:
    """Build :class:`Judgements` from columns (lists or arrays) and check every row.

    ``images``: the known images, either names or a ``name -> reference`` mapping; when given, a
    judgement naming another image is an error, and images never judged still get a rating.
    ``source``/``line_offset``/``line_word`` only shape error messages (row ``r`` is reported as
    ``f"{source} {line_word} {r + line_offset}"``: the header is line 1 of a CSV).
    """
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; the header must name "
                         f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)}).")
    where = lambda r: f"{source} {line_word} {int(r) + line_offset}"  # noqa: E731
    ref = np.asarray([str(x).strip() for x in columns["reference"]], dtype=object)
    ia = np.asarray([str(x).strip() for x in columns["image_a"]], dtype=object)
    ib = np.asarray([str(x).strip() for x in columns["image_b"]], dtype=object)
    win = [str(x).strip() for x in columns["winner"]]
    n = len(ref)
    if not (len(ia) == len(ib) == len(win) == n):
        raise InputError(f"{source}: columns have different lengths; give every row all four of {', '.join(REQUIRED)}.")
    for name, col in (("reference", ref), ("image_a", ia), ("image_b", ib)):
        empty = np.flatnonzero((col == "") | (col == "None") | (col == "nan"))
        if empty.size:
            raise InputError(f"{where(empty[0])}: empty {name}; fill it in or delete the row.")
    outcome = np.empty(n, dtype=np.float64)
    for r, w in enumerate(win):
        v = _WINNER.get(w.lower())
        if v is None:
            v = 1.0 if w == ia[r] else 0.0 if w == ib[r] else None
        if v is None:
            raise InputError(f"{where(r)}: winner {w!r} is not A, B or tie; write A when {ia[r]} looked "
                             f"better, B when {ib[r]} did, tie for no preference.")
        outcome[r] = v
    self_pair = np.flatnonzero(ia == ib)
    if self_pair.size:
        r = self_pair[0]
        raise InputError(f"{where(r)}: image_a and image_b are both {ia[r]!r} (a self-pair); "
                         "an image cannot be compared with itself: fix the name or delete the row.")

    known = _catalogue(images)
    if known is not None:
        for col in (ia, ib):
            bad = np.flatnonzero(~np.isin(col, np.asarray(list(known), dtype=object)))
            if bad.size:
                r = bad[0]
                raise InputError(f"{where(r)}: image {col[r]!r} is not in the image list; add it there "
                                 "(name,reference) or fix the name in the judgements.")
    names, inv = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    a, b = inv[:n].astype(np.int64), inv[n:].astype(np.int64)
    # each image must belong to exactly one reference
    ref_all = np.concatenate([ref, ref])
    refs_in, ref_code = np.unique(ref_all, return_inverse=True) if n else (np.array([], object), np.array([], np.int64))
    img_all = np.concatenate([a, b])
    row_all = np.concatenate([np.arange(n), np.arange(n)])
    by_row = np.lexsort((np.r_[np.zeros(n), np.ones(n)], row_all))  # file order, A before B
    _, first_at = np.unique(img_all[by_row], return_index=True)
    owner = ref_code[by_row[first_at]]
    clash = np.flatnonzero(owner[img_all[by_row]] != ref_code[by_row])
    if clash.size:
        k = by_row[clash[0]]
        r = int(row_all[k])
        img = names[img_all[k]]
        first = int(row_all[by_row[first_at[img_all[k]]]])
        raise InputError(f"{where(r)}: image {img!r} has reference {ref[r]!r} here but {ref[first]!r} on "
                         f"{line_word} {first + line_offset}; an image belongs to one reference: fix the reference "
                         "or make the image names unique (e.g. prefix them with the reference).")
    image_names = list(names)
    image_refs = [refs_in[o] for o in owner]
    if known is not None:
        for nm, rf in zip(image_names, image_refs):
            if known[nm] is not None and known[nm] != rf:
                raise InputError(f"{source}: image {nm!r} has reference {rf!r} in the judgements but "
                                 f"{known[nm]!r} in the image list; make them agree.")
        have = set(image_names)
        for nm, rf in known.items():
            if nm not in have:
                if rf is None:
                    raise InputError(f"image {nm!r} of the image list has no reference and no judgement; "
                                     "give the image list a reference column (name,reference).")
                image_names.append(nm)
                image_refs.append(rf)
    return _assemble(image_names, image_refs, a, b, outcome, columns.get("rater"), columns.get("time"), where)


def _assemble(image_names, image_refs, a, b, outcome, rater, time, where) -> Judgements:
    order = np.argsort(np.asarray(image_names, dtype=object), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    images = np.asarray(image_names, dtype=object)[order]
    refs, image_ref = np.unique(np.asarray(image_refs, dtype=object)[order], return_inverse=True)
    t = None
    if time is not None:
        t = np.empty(len(a), dtype=np.float64)
        for r, v in enumerate(time):
            t[r] = _to_seconds(v, where(r))
    rt = None if rater is None else np.asarray([str(x) for x in rater], dtype=object)
    return Judgements(images, image_ref.astype(np.int64), refs, rank[a], rank[b], outcome, rt, t)


def _to_seconds(v, where: str) -> float:
    if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
        raise InputError(f"{where}: empty time; give every row a time or drop the time column.")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, np.datetime64):
        return float(v.astype("datetime64[ns]").astype(np.int64)) / 1e9
    if hasattr(v, "timestamp"):
        return float(v.timestamp())
    s = str(v).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return float(np.datetime64(s.replace(" ", "T").rstrip("Z"), "ns").astype(np.int64)) / 1e9
    except ValueError:
        raise InputError(f"{where}: time {s!r} is neither a number nor an ISO date-time "
                         "(e.g. 2020-06-01T12:30:00); fix it or drop the time column.") from None


def from_arrays(reference: Sequence[str], image_a: Sequence[str], image_b: Sequence[str], winner: Sequence,
                *, rater: Sequence | None = None, time: Sequence | None = None,
                images: Mapping[str, str] | Iterable[str] | None = None) -> Judgements:
    """Judgements from Python sequences; ``winner`` holds A/B/tie (or 1/0/0.5 floats)."""
    win = [("A" if w == 1 else "B" if w == 0 else "tie") if isinstance(w, (int, float, np.number)) else w
           for w in winner]
    cols: dict[str, Sequence] = {"reference": reference, "image_a": image_a, "image_b": image_b, "winner": win}
    if rater is not None:
        cols["rater"] = rater
    if time is not None:
        cols["time"] = time
    return from_columns(cols, images=images, source="judgements", line_offset=0, line_word="row")


def read_judgements(path: str | Path, *, images: Mapping[str, str] | Iterable[str] | None = None) -> Judgements:
    """Read a judgement table from CSV (header line required) or Parquet (``.parquet``/``.pq``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"judgement file {path} not found; give the path of a CSV or Parquet table "
                         f"with columns {', '.join(REQUIRED)}.")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, images)
    return _read_csv(path, images)


def _read_csv(path: Path, images) -> Judgements:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path} is empty; it needs a header line {','.join(REQUIRED)} and one row per judgement.")
        header = [h.strip().lower() for h in header]
        if not set(REQUIRED) <= set(header):
            missing = [c for c in REQUIRED if c not in header]
            raise InputError(f"{path} line 1: header {','.join(header)!r} lacks {', '.join(missing)}; "
                             f"the first line must name the columns {','.join(REQUIRED)} (optional: rater,time).")
        keep = [c for c in REQUIRED + OPTIONAL if c in header]
        pos = [header.index(c) for c in keep]
        cols: dict[str, list] = {c: [] for c in keep}
        width = len(header)
        for line, row in enumerate(reader, start=2):
            if len(row) != width:
                if not row or all(not f.strip() for f in row):
                    raise InputError(f"{path} line {line}: empty line; delete it.")
                raise InputError(f"{path} line {line}: {len(row)} fields where the header has {width} "
                                 f"({','.join(header)}); fix the row (a comma inside a name needs quotes).")
            for c, p in zip(keep, pos):
                cols[c].append(row[p])
    return from_columns(cols, images=images, source=str(path), line_offset=2, line_word="line")


def _read_parquet(path: Path, images) -> Judgements:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"cannot read {path} as Parquet ({exc}); write the table with pyarrow or pandas "
                         "to_parquet, or give a CSV instead.") from None
    names = {n.lower(): n for n in table.column_names}
    cols = {c: table.column(names[c]).to_pylist() for c in REQUIRED + OPTIONAL if c in names}
    if "time" in cols and cols["time"] and hasattr(cols["time"][0], "timestamp"):
        cols["time"] = [None if v is None else v.timestamp() for v in cols["time"]]
    return from_columns(cols, images=images, source=str(path), line_offset=1, line_word="row")


def write_judgements(j: Judgements, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a judgement table as CSV or Parquet (by suffix); an existing file is kept unless ``overwrite``."""
    path = output_path(path, overwrite)
    cols = j.table()
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(cols), path)
        return path
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        keys = list(cols)
        w.writerow(keys)
        w.writerows(zip(*(cols[k] for k in keys)))
    return path


def read_images(path: str | Path) -> dict[str, str]:
    """An image list: CSV lines ``name,reference`` (header ``name,reference`` optional)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image list {path} not found; give a CSV with lines name,reference.")
    out: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not f.strip() for f in row):
                continue
            if line == 1 and [f.strip().lower() for f in row[:2]] == ["name", "reference"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise InputError(f"{path} line {line}: expected two fields name,reference, got {row!r}; fix the line.")
            out[row[0].strip()] = row[1].strip()
    if not out:
        raise InputError(f"image list {path} has no images; add lines name,reference.")
    return out


def concat(first: Judgements, second: Judgements) -> Judgements:
    """All rows of both (the second's rows after the first's); images are matched by name."""
    cols1, cols2 = first.table(), second.table()
    keys = [k for k in cols1 if k in cols2]
    cols = {k: cols1[k] + cols2[k] for k in keys}
    known = {**dict(zip(first.images, first.refs[first.image_ref])), **dict(zip(second.images, second.refs[second.image_ref]))}
    return from_columns(cols, images=known, source="judgements", line_offset=0, line_word="row")
