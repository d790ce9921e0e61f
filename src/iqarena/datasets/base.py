"""A dataset as a table: (distorted, reference, score, group) rows under a root folder, plus helpers
that readers share (case-insensitive file lookup, folder checks that say exactly what is missing)."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..io import Pair


@dataclass(frozen=True)
class Row:
    """One rated image. Paths are relative to the dataset root (``ref`` None for no-reference sets).

    ``group``: distortion type (or any category) for the per-group analysis; ``system``: the
    algorithm/setting that produced the image, the same across contents (PIPAL ``00_03``, TID2013
    type and level), for the per-algorithm analysis (NTIRE 2021 Figure 4). Empty when unknown.
    """

    dist: str
    ref: str | None
    score: float
    group: str = ""
    system: str = ""

    @property
    def content(self) -> str:
        """What two images must not share to be in different splits: the reference, else the image."""
        return self.ref or self.dist


@dataclass(frozen=True)
class Dataset:
    """Rated images under ``root``. ``higher_better`` says the direction of the labels (False for DMOS)."""

    name: str
    root: Path
    rows: tuple[Row, ...]
    higher_better: bool = True
    score_name: str = "MOS"
    split: str = ""
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def has_reference(self) -> bool:
        return bool(self.rows) and all(r.ref for r in self.rows)

    @property
    def scores(self) -> np.ndarray:
        return np.array([r.score for r in self.rows], dtype=np.float64)

    @property
    def groups(self) -> list[str]:
        return [r.group for r in self.rows]

    def path(self, relative: str) -> Path:
        return self.root / relative

    def pairs(self) -> list[Pair]:
        """The rows as scoring pairs (absolute paths), in row order."""
        return [Pair(self.path(r.dist), self.path(r.ref) if r.ref else None) for r in self.rows]

    def subset(self, keep: Iterable[int] | Sequence[bool], split: str | None = None) -> "Dataset":
        """The rows at the given indices (or where a boolean mask is true)."""
        keep = list(keep)
        if keep and isinstance(keep[0], (bool, np.bool_)):
            keep = [i for i, k in enumerate(keep) if k]
        return replace(self, rows=tuple(self.rows[i] for i in keep), split=self.split if split is None else split)

    def describe(self) -> str:
        refs = len({r.ref for r in self.rows if r.ref})
        groups = len({r.group for r in self.rows if r.group})
        parts = [f"{len(self)} images"]
        if refs:
            parts.append(f"{refs} references")
        if groups:
            parts.append(f"{groups} groups")
        label = f"{self.name}" + (f" ({self.split})" if self.split else "")
        return f"{label}: {', '.join(parts)}; {self.score_name} {'higher' if self.higher_better else 'lower'} is better"


# ---------------------------------------------------------------- reader helpers

def require_dir(root: Path, name: str, dataset: str, what: str) -> Path:
    """``root/name`` as a folder, found case-insensitively, or IQAError saying what belongs there."""
    return _require(root, name, dataset, what, folder=True)


def require_file(root: Path, name: str, dataset: str, what: str) -> Path:
    """``root/name`` as a file, found case-insensitively, or IQAError saying what it should hold."""
    return _require(root, name, dataset, what, folder=False)


def _require(root: Path, name: str, dataset: str, what: str, folder: bool) -> Path:
    found = find_ci(root, name)
    if found is None or (found.is_dir() if folder else found.is_file()) is False:
        label = f"folder {name}/" if folder else f"file {name}"
        raise InputError(f"{dataset}: {label} not found in {root} ({'it should hold ' if folder else ''}{what}). "
                         f"Point the dataset root at the folder that contains {name}.", option="root")
    return found


def require_root(root: str | Path, dataset: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{dataset}: dataset folder {root} does not exist. Check the dataset root.", option="root")
    return root


@functools.lru_cache(maxsize=256)
def _listing(folder: Path, mtime: float) -> dict[str, str]:
    return {p.name.lower(): p.name for p in folder.iterdir()}


def find_ci(folder: Path, name: str) -> Path | None:
    """``folder/name`` when it exists, matching the file name case-insensitively (BMP vs bmp)."""
    direct = folder / name
    if direct.exists():
        return direct
    if not folder.is_dir():
        return None
    hit = _listing(folder, folder.stat().st_mtime).get(name.lower())
    return folder / hit if hit is not None else None


def resolve_files(dataset: str, root: Path, rows: list[Row], limit: int = 5) -> list[Row]:
    """Rows with each path replaced by the file's real spelling; IQAError listing the files that are missing."""
    missing: list[str] = []
    out = []
    cache: dict[str, str | None] = {}

    def real(rel: str | None) -> str | None:
        if rel is None:
            return None
        if rel not in cache:
            p = Path(rel)
            hit = find_ci(root / p.parent, p.name)
            if hit is None:
                missing.append(rel)
            cache[rel] = rel if hit is None else hit.relative_to(root).as_posix()
        return cache[rel]

    seen: set[str] = set()
    for r in rows:
        if r.dist.lower() in seen:
            raise InputError(f"{dataset}: the labels name the image {r.dist} twice. Keep one line per image.")
        seen.add(r.dist.lower())
        out.append(replace(r, dist=real(r.dist), ref=real(r.ref)))
    if missing:
        shown = ", ".join(missing[:limit]) + (f" ... ({len(missing)} in all)" if len(missing) > limit else "")
        raise InputError(f"{dataset}: {len(missing)} image file(s) named by the labels are missing under {root}: "
                         f"{shown}. Copy the complete dataset there, or check the dataset root.", option="root")
    return out


def read_label_text(path: Path) -> str:
    """A label file's text: UTF-8 with a leading byte-order mark dropped; InputError naming the first line
    that is not UTF-8 (what a spreadsheet's export in another code page gives)."""
    from .table import decode_text

    return decode_text(Path(path).read_bytes(), path)


def label_table(path: Path) -> io.StringIO:
    """A label CSV as a text stream for the csv module (UTF-8, byte-order mark dropped)."""
    return io.StringIO(read_label_text(path), newline="")


def parse_float(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number.") from None
    if not np.isfinite(v):
        raise InputError(f"{where}: score {text!r} is not finite.")
    return v


def as_text(x) -> str:
    """A label cell as text; whole numbers stored as floats (CSIQ image ``1600``) lose their ``.0``."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x).strip()


def split_by_reference(ds: Dataset, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                       names: Sequence[str] = ("train", "val", "test")) -> dict[str, Dataset]:
    """Seeded split into parts whose contents (reference images) are disjoint.

    Every reference (for no-reference sets: every image) goes to exactly one part; the parts hold
    about ``fractions`` of the references. The same seed gives the same split.
    """
    if len(fractions) != len(names):
        raise InputError(f"{len(fractions)} fractions for {len(names)} split names; give one fraction per name.")
    f = np.asarray(fractions, dtype=np.float64)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise InputError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}.")
    contents = sorted({r.content for r in ds.rows})
    order = np.random.default_rng(seed).permutation(len(contents))
    bounds = np.round(np.cumsum(f) * len(contents)).astype(int)
    part_of = {}
    start = 0
    for name, end in zip(names, bounds):
        for i in order[start:end]:
            part_of[contents[i]] = name
        start = end
    return {name: ds.subset([i for i, r in enumerate(ds.rows) if part_of[r.content] == name], split=name)
            for name in names}
