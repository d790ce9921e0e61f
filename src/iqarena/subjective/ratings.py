"""Ratings: one score per image on the Elo scale, with optional standard errors; label-file I/O.

The Elo scale: a difference of ``d`` points means ``P(better) = 1 / (1 + 10**(-d / 400))``, i.e. a
base-10 logistic with scale 400 (``SCALE = 400 / ln 10`` points per natural-log unit of odds).
Label files are PIPAL's format, ``name,score`` per line without header (``A0001_00_00.bmp,1520.0648``);
the fuller table (``--table``) has a header ``name,reference,score,se,lower,upper,n``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import norm

from ..errors import InputError
from ..io import output_path
from .judgements import Judgements

SCALE = 400.0 / math.log(10.0)  # Elo points per natural-log unit of the odds
INITIAL = 1450.0  # per-reference mean of the real PIPAL labels (1449.0, median over 200 references)


@dataclass
class Ratings:
    """Scores for images, aligned arrays: ``images[i]`` (name), ``reference[i]``, ``score[i]``,
    ``se[i]`` (standard error, or NaN where unknown), ``n[i]`` (judgements the image took part in)."""

    images: np.ndarray
    reference: np.ndarray
    score: np.ndarray
    se: np.ndarray
    n: np.ndarray
    method: str
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Normal confidence interval ``score -/+ z * se`` (NaN where ``se`` is unknown)."""
        z = float(norm.ppf(0.5 + level / 2))
        return self.score - z * self.se, self.score + z * self.se

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.images.tolist(), self.score.tolist()))

    def lookup(self, names) -> np.ndarray:
        """Scores of the given image names (IQAError for a name not rated)."""
        idx = {n: i for i, n in enumerate(self.images)}
        try:
            return self.score[[idx[n] for n in names]]
        except KeyError as exc:
            raise InputError(f"image {exc.args[0]!r} has no rating; fit or extend the ratings with judgements of it.") from None

    def write_labels(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """PIPAL label file: ``name,score`` per line (4 decimals), sorted by name, no header."""
        path = output_path(path, overwrite)
        order = np.argsort(self.images.astype(str), kind="stable")
        with path.open("w") as fh:
            for i in order:
                fh.write(f"{self.images[i]},{self.score[i]:.4f}\n")
        return path

    def write_table(self, path: str | Path, *, overwrite: bool = False, level: float = 0.95) -> Path:
        """CSV with header ``name,reference,score,se,lower,upper,n`` (``lower/upper``: ``level`` interval)."""
        path = output_path(path, overwrite)
        lo, hi = self.interval(level)
        order = np.lexsort((self.images.astype(str), self.reference.astype(str)))
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["name", "reference", "score", "se", "lower", "upper", "n"])
            for i in order:
                w.writerow([self.images[i], self.reference[i], f"{self.score[i]:.4f}", _num(self.se[i]),
                            _num(lo[i]), _num(hi[i]), int(self.n[i])])
        return path


def _num(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.4f}"


def read_ratings(path: str | Path) -> Ratings:
    """Read a label file (``name,score`` lines, PIPAL's ``name, score`` too) or a ratings table
    (header with at least ``name,score``; ``reference`` and ``se`` are used when present)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"ratings file {path} not found; give a label file (name,score) or the table "
                         "written by `iqarena ratings fit --table`.")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = [[f.strip() for f in r] for r in csv.reader(fh)]
    rows = [(i, r) for i, r in enumerate(rows, start=1) if r and any(r)]
    if not rows:
        raise InputError(f"{path} is empty; it needs lines name,score.")
    head = [h.lower() for h in rows[0][1]]
    names, refs, scores, ses, ns = [], [], [], [], []
    if "name" in head and "score" in head:
        col = {h: k for k, h in enumerate(head)}
        body = rows[1:]
    else:
        col = {"name": 0, "score": 1}
        body = rows
    for line, r in body:
        try:
            name, score = r[col["name"]], float(r[col["score"]])
            se = float(r[col["se"]]) if "se" in col and r[col["se"]] != "" else math.nan
        except (IndexError, ValueError):
            raise InputError(f"{path} line {line}: expected name,score (a number), got {','.join(r)!r}; fix the line.") from None
        if not name or not math.isfinite(score):
            raise InputError(f"{path} line {line}: empty name or non-finite score; fix the line.")
        names.append(name)
        scores.append(score)
        ses.append(se)
        refs.append(r[col["reference"]] if "reference" in col else "")
        ns.append(int(float(r[col["n"]])) if "n" in col and r[col["n"]] != "" else 0)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{path}: image {dup!r} appears more than once; keep one line per image.")
    return Ratings(np.asarray(names, object), np.asarray(refs, object), np.asarray(scores, float),
                   np.asarray(ses, float), np.asarray(ns, np.int64), method="file", params={"source": str(path)})


def from_judgements(j: Judgements, score: np.ndarray, se: np.ndarray | None, method: str, params: dict) -> Ratings:
    se = np.full(j.n_images, np.nan) if se is None else se
    return Ratings(j.images.copy(), j.refs[j.image_ref], np.asarray(score, float), np.asarray(se, float),
                   j.counts(), method, params)


def reference_means(start: Ratings, j: Judgements) -> dict[str, float]:
    """Mean score per reference of ``start``: by its reference column, or, where that is empty
    (a bare label file), over the images that ``j`` places in the reference."""
    out: dict[str, float] = {}
    for ref in np.unique(start.reference):
        if ref != "":
            out[ref] = float(start.score[start.reference == ref].mean())
    idx = {n: i for i, n in enumerate(start.images)}
    acc: dict[str, list[float]] = {}
    for n, ref in zip(j.images, j.refs[j.image_ref]):
        if ref not in out and n in idx:
            acc.setdefault(ref, []).append(float(start.score[idx[n]]))
    out.update({ref: float(np.mean(v)) for ref, v in acc.items()})
    return out


def bootstrap(j: Judgements, fit: Callable[[Judgements], Ratings], n: int = 100, seed: int = 0) -> Ratings:
    """Standard errors by resampling judgements with replacement within each reference (``n`` refits).

    Returns ``fit(j)`` with ``se`` replaced by the standard deviation over the bootstrap refits.
    Works for any fit (Elo included, which has no information-matrix error)."""
    if n < 2:
        raise InputError(f"bootstrap needs n >= 2 resamples, got {n}.")
    rng = np.random.default_rng(seed)
    base = fit(j)
    ref_of_row = j.image_ref[j.a]
    order = np.argsort(ref_of_row, kind="stable")
    starts = np.searchsorted(ref_of_row[order], np.arange(len(j.refs) + 1))
    sizes = np.diff(starts)
    draws = np.empty((n, j.n_images))
    for b in range(n):
        pick = starts[:-1].repeat(sizes) + (rng.random(len(j)) * sizes.repeat(sizes)).astype(np.int64)
        draws[b] = fit(j.subset(order[pick])).score
    base.se = draws.std(axis=0, ddof=1)
    base.params = {**base.params, "bootstrap": n, "bootstrap_seed": seed}
    return base
