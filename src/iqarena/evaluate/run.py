"""Scoring a dataset with many metrics, cached on disk and resumable; reading submission files.

The cache is ``scores.csv`` (columns ``image,metric,score``; ``image`` is the distorted path relative
to the dataset root) in the output folder. Rows are appended after every chunk of images, so an
interrupted run loses at most one chunk, and a rerun scores only the (image, metric) pairs that are
not in the file yet.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..datasets import Dataset
from ..datasets.table import read_rows
from ..errors import InputError
from ..scoring import progress_bar, score_pairs

SCORES_FILE = "scores.csv"


class ScoreCache:
    """The ``scores.csv`` of an output folder: load what is there, append new rows."""

    header = ("image", "metric", "score")

    def __init__(self, folder: Path):
        self.path = Path(folder) / SCORES_FILE

    def load(self) -> dict[tuple[str, str], float]:
        if not self.path.is_file():
            return {}
        out = {}
        with self.path.open(newline="") as fh:
            reader = csv.reader(fh)
            head = next(reader, None)
            if head is None:
                return {}
            if tuple(head) != self.header:
                raise InputError(f"{self.path} is not an iqarena score cache (header {head}). Move it away or choose "
                               "another --output.")
            for row in reader:
                if len(row) != 3:  # a line cut short by an interrupted write: score it again
                    continue
                try:
                    out[(row[0], row[1])] = float(row[2])
                except ValueError:
                    continue
        return out

    def drop(self, metrics: Iterable[str]) -> None:
        """Rewrite the cache without the rows of ``metrics``."""
        gone = set(metrics)
        kept = {k: v for k, v in self.load().items() if k[1] not in gone}
        self.path.unlink(missing_ok=True)
        self.append((image, metric, score) for (image, metric), score in kept.items())

    def append(self, rows: Iterable[tuple[str, str, float]]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            if new:
                w.writerow(self.header)
            for image, metric, score in rows:
                w.writerow((image, metric, repr(float(score))))


def score_dataset(ds: Dataset, metrics: list[str], folder: Path, *, device: str = "cpu", batch_size: int = 8,
                  chunk: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """Scores (one array per metric, in row order) for every image of ``ds``, using and filling the cache.

    Images missing the same set of metrics are scored together, ``chunk`` images at a time, each
    chunk in batches of ``batch_size``; the cache is appended after every chunk.
    """
    from ..metrics import get_info

    cache = ScoreCache(folder)
    have = cache.load()
    pairs = ds.pairs()
    if any(get_info(m).needs_ref for m in metrics) and not ds.has_reference:
        fr = ", ".join(m for m in metrics if get_info(m).needs_ref)
        raise InputError(f"{ds.name} has no reference images, so full-reference metrics ({fr}) cannot score it. "
                       "Choose no-reference metrics (-m all picks them for such a dataset).")
    todo: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(ds.rows):
        missing = tuple(m for m in metrics if (row.dist, m) not in have)
        if missing:
            todo.setdefault(missing, []).append(i)
    total = sum(len(ix) * len(ms) for ms, ix in todo.items())
    with progress_bar(progress and total > 0, total) as advance:
        for names, idx in todo.items():
            for start in range(0, len(idx), chunk):
                part = idx[start:start + chunk]
                rows = score_pairs([pairs[i] for i in part], list(names), device=device, batch_size=batch_size)
                by_dist = {str(pairs[i].dist): ds.rows[i].dist for i in part}
                new = [(by_dist[r.dist], r.metric, r.score) for r in rows]
                cache.append(new)
                have.update({(im, m): s for im, m, s in new})
                advance(len(new))
    return {m: np.array([have[(r.dist, m)] for r in ds.rows], dtype=np.float64) for m in metrics}


# ---------------------------------------------------------------- external predictions

def read_predictions(path: str | Path) -> dict[str, float]:
    """Scores of an external method: ``name,score`` lines (a challenge ``output.txt``), a CSV with a
    header, or a submission .zip holding ``output.txt``. Keys are the image file names."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"predictions file {path} not found.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            inner = [n for n in zf.namelist() if Path(n).name.lower() == "output.txt"]
            if not inner:
                raise InputError(f"{path}: a submission zip must hold output.txt (lines 'name,score'); "
                               f"it holds {', '.join(zf.namelist()[:10])}.")
            rows = read_rows(path / inner[0], text=zf.read(inner[0]).decode("utf-8", errors="replace"))
    else:
        rows = read_rows(path)
    out: dict[str, float] = {}
    for r in rows:
        key = Path(r.dist).name.lower()
        if key in out:
            raise InputError(f"{path}: image {Path(r.dist).name} is scored twice. Keep one line per image.")
        out[key] = r.score
    return out


def match_predictions(ds: Dataset, predictions: dict[str, float], source: str) -> np.ndarray:
    """Predictions in the dataset's row order (matched by file name); IQAError naming unscored images."""
    keys = [Path(r.dist).name.lower() for r in ds.rows]
    missing = [k for k in keys if k not in predictions]
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise InputError(f"{source} has no score for {len(missing)} of the {len(keys)} labelled images: {shown}.")
    return np.array([predictions[k] for k in keys], dtype=np.float64)


# ---------------------------------------------------------------- the output folder

RUN_FILE = "run.json"


def prepare_output(folder: Path, identity: dict, overwrite: bool = False) -> bool:
    """Make ``folder`` ready for a run described by ``identity`` (dataset, root, split, labels ...).

    A folder iqarena made for the same identity is resumed (its cached scores are reused; returns
    True). A folder made for another run, or a non-empty folder iqarena did not make, is refused
    unless ``overwrite``; then only iqarena's own files there are replaced. Nothing else is touched.
    """
    import json

    from .report import REPORT_FILES

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--output {folder} is a file; give a folder for the report.")
    run_file = folder / RUN_FILE
    previous = None
    if run_file.is_file():
        try:
            previous = json.loads(run_file.read_text()).get("identity")
        except (json.JSONDecodeError, AttributeError):
            previous = None
    ours = set(REPORT_FILES) | {SCORES_FILE, RUN_FILE}
    if previous == identity:
        return True
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        if previous is not None:
            raise InputError(f"{folder} holds the report of another run ({_describe(previous)}). Choose another "
                           "--output, or pass --overwrite to replace its scores and report.")
        shown = ", ".join(sorted(p.name for p in folder.iterdir())[:5])
        raise InputError(f"{folder} is not empty ({shown}) and was not made by `iqarena evaluate`. Choose another "
                       "--output, or pass --overwrite to write the report files there (other files are kept).")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ours:
        if (folder / name).is_file():
            (folder / name).unlink()
    return False


def _describe(identity: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in identity.items() if v not in (None, "", []))


def write_run_file(folder: Path, identity: dict, extra: dict) -> None:
    import json

    (Path(folder) / RUN_FILE).write_text(json.dumps({"identity": identity, **extra}, indent=1) + "\n")


def source_files(module: str) -> list[Path]:
    """The source files of ``module`` and of every iqarena module it imports, directly or through others
    (imports anywhere in the files, found by parsing them). The top-level ``iqarena/__init__`` counts as a
    file, but its imports are not followed (they would pull in every metric)."""
    import ast
    import importlib.util

    def spec_of(name):
        try:
            return importlib.util.find_spec(name)
        except (ImportError, ValueError):  # "x.y" where x is a module, not a package
            return None

    files, stack = {}, [module]
    while stack:
        name = stack.pop()
        spec = None if name in files else spec_of(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        files[name] = Path(spec.origin)
        if name == "iqarena":
            continue
        package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(files[name].read_bytes())):
            if isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                    if node.level else (node.module or "")
                if base.split(".")[0] == "iqarena":
                    stack += [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                stack += [a.name for a in node.names if a.name.split(".")[0] == "iqarena"]
    return sorted(files.values())


def fingerprint(metric: str) -> str:
    """A hash of the source of a registered metric and of every iqarena module it uses (shared operators
    included) and its defaults: cached scores of a metric whose code changed are stale."""
    import hashlib

    from ..metrics import get_info

    info = get_info(metric)
    h = hashlib.sha256(repr(sorted(info.defaults.items())).encode())
    module = getattr(info.target, "__module__", None)
    files = source_files(module) if module else []
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    if not files:
        h.update(repr(info).encode())
    return h.hexdigest()[:16]


def refresh_fingerprints(folder: Path, metrics: list[str]) -> tuple[dict[str, str], list[str]]:
    """Fingerprints of ``metrics`` merged with those recorded in the folder's run file, and the metrics
    whose code changed since their scores were cached (their rows are removed from the cache)."""
    import json

    run_file = Path(folder) / RUN_FILE
    try:
        previous = json.loads(run_file.read_text()).get("fingerprints", {}) if run_file.is_file() else {}
    except json.JSONDecodeError:
        previous = {}
    current = {m: fingerprint(m) for m in metrics}
    stale = [m for m in metrics if m in previous and previous[m] != current[m]]
    if stale:
        ScoreCache(folder).drop(stale)
    return {**previous, **current}, stale
