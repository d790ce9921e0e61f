"""Scoring a dataset through the score store, and the output folder of a benchmark run.

Scores live in the shared :class:`~iqarena.execution.ScoreStore` (every report and split reads the
same one), keyed by the dataset, the image, the metric, its options and its fingerprint: a rerun
scores only what the store lacks, and a metric whose code, parameter files or options changed is
scored again. The output folder holds the report, ``run.json`` (what the run was) and ``scores.csv``
(this run's per-image scores, for reading; the store is the source).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..datasets import Dataset
from ..errors import InputError
from ..execution import Executor, LocalExecutor, ScoreStore, dataset_items, execute, plan, store_key
from ..io import atomic_output
from ..metrics import MetricSpec

SCORES_FILE = "scores.csv"
RUN_FILE = "run.json"


def dataset_key(ds: Dataset) -> str:
    """What a dataset's scores are stored under: its name and its folder (every split shares it)."""
    return f"{ds.name}:{Path(ds.root).resolve()}"


def score_dataset(ds: Dataset, metrics: Sequence[MetricSpec], *, store: ScoreStore | None = None,
                  executor: Executor | None = None, chunk: int = 64, progress: bool = False) -> dict[str, np.ndarray]:
    """Scores (one array per metric, keyed by ``str(spec)``, in row order) for every image of ``ds``: what
    ``store`` holds is read, the rest is scored by ``executor`` (default: local) and written to the store
    job by job."""
    fr = [m.name for m in metrics if m.info.needs_ref]
    if fr and not ds.has_reference:
        raise InputError(f"{ds.name} has no reference images, so full-reference metrics ({', '.join(fr)}) cannot "
                         "score it. Choose no-reference metrics ('all' picks them for such a dataset).")
    store = store if store is not None else ScoreStore()
    key = dataset_key(ds)
    jobs = plan(dataset_items(ds), metrics, dataset=key, store=store, chunk=chunk)
    own = executor is None and bool(jobs)
    executor = LocalExecutor() if own else executor
    try:
        for _ in execute(jobs, executor, store, progress=progress):
            pass
    finally:
        if own:
            executor.close()
    dists = [r.dist for r in ds.rows]
    return {str(m): store.lookup(store_key(key, m), dists) for m in metrics}


def write_scores_csv(folder: Path, dists: Sequence[str], scores: dict[str, np.ndarray]) -> Path:
    """This run's per-image scores as ``dist,metric,score`` rows (an export; the store is the source)."""
    path = Path(folder) / SCORES_FILE
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("dist", "metric", "score"))
        for name, values in scores.items():
            w.writerows((d, name, repr(float(v))) for d, v in zip(dists, values))
    return path


# ---------------------------------------------------------------- the output folder

RUN_FILE = "run.json"


def prepare_output(folder: Path, identity: dict, overwrite: bool = False) -> bool:
    """Make ``folder`` ready for a run described by ``identity`` (dataset, root, split, labels ...).

    A folder iqarena made for the same identity is resumed (its cached scores are reused; returns
    True). A folder made for another run, or a non-empty folder iqarena did not make, is refused
    unless ``overwrite``; then only iqarena's own files there are replaced. Nothing else is touched.
    """
    from .report import REPORT_FILES

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output {folder} is a file; give a folder for the report.", option="output")
    previous = read_run_file(folder).get("identity")
    ours = set(REPORT_FILES) | {SCORES_FILE, RUN_FILE}
    if previous == identity:
        return True
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        if previous is not None:
            raise InputError(f"{folder} holds the report of another run ({_describe(previous)}). Choose another "
                             "output folder, or allow replacing its report (overwrite=True).", option="overwrite")
        shown = ", ".join(sorted(p.name for p in folder.iterdir())[:5])
        raise InputError(f"{folder} is not empty ({shown}) and was not made by `iqarena evaluate`. Choose another "
                         "output folder, or allow writing the report files there (overwrite=True; other files are "
                         "kept).", option="overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ours:
        if (folder / name).is_file():
            (folder / name).unlink()
    return False


def _describe(identity: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in identity.items() if v not in (None, "", []))


def read_run_file(folder: Path) -> dict:
    """The folder's run.json, or {} when there is none or it is damaged."""
    try:
        data = json.loads((Path(folder) / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_run_file(folder: Path, identity: dict, extra: dict) -> None:
    """run.json, written atomically (a crash never leaves half a file)."""
    with atomic_output(Path(folder) / RUN_FILE) as tmp:
        tmp.write_text(json.dumps({"identity": identity, **extra}, indent=1) + "\n")
