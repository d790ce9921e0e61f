"""Where scoring runs. One path for `iqarena score`, `iqarena evaluate`, a trainer's validation and
a server's scoring: ``plan`` (items, metrics, store -> jobs), an :class:`Executor` (jobs -> results),
``execute`` (results -> the store, with progress).

>>> from iqarena.execution import Item, ScoreStore, execute, get_executor, plan
>>> store = ScoreStore()                                   # shared by every run (see store.py)
>>> jobs = plan(items, [MetricSpec.of("ssim")], dataset="pipal", store=store)
>>> with get_executor("local", batch_size=8) as ex:
...     for result in execute(jobs, ex, store): ...

Executors register in ``EXECUTORS`` (entry-point group ``iqarena.executors``); ``local`` is built in,
``ray`` (``ray.py``, a Ray cluster) is imported only when chosen, so nothing else imports its engine.
For millions of images, ``iter_plan`` makes the jobs as the items are read and ``execute`` takes
them as an iterator and writes the store in batches (``flush_rows``).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from ..errors import InputError
from ..metrics import MetricSpec, expand_metrics
from ..registry import Registry
from .local import LocalExecutor, load_item
from .plan import Item, Job, JobResult, dataset_items, iter_plan, pair_items, plan, store_key
from .store import Key, ScoreMatrix, ScoreStore


class Executor(Protocol):
    """Maps jobs to results (one per job, any order); usable as a context manager."""

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...


def _ray_executor(**options) -> Executor:
    """The Ray executor (``ray.py``), imported on first use: ``import iqarena`` never imports ray."""
    from .ray import RayExecutor

    return RayExecutor(**options)


EXECUTORS: Registry = Registry("executor", group="iqarena.executors", listing="`iqarena score --help`")
EXECUTORS.add("local", LocalExecutor)
EXECUTORS.add("ray", _ray_executor)


def get_executor(name: str = "local", **options) -> Executor:
    """Build a registered executor with its options (``device``, ``batch_size`` ...)."""
    return EXECUTORS.get(name)(**options)


def execute(jobs: Iterable[Job], executor: Executor, store: ScoreStore | None = None,
            progress: bool = False, *, total: int | None = None, flush_rows: int = 0,
            flush_seconds: float = 10.0) -> Iterator[JobResult]:
    """Run ``jobs`` on ``executor``; each result is in ``store`` when it is yielded.

    ``jobs``: a list, or an iterator (``iter_plan``; then ``total``, the number of scores, sizes the
    progress bar). ``flush_rows`` 0 writes one part per job; above 0, results are gathered and written
    as one part once ``flush_rows`` scores or ``flush_seconds`` have accumulated (a million images make
    a few hundred parts, not tens of thousands; a crash loses at most that much work)."""
    if total is None and isinstance(jobs, Sequence):
        total = sum(j.size for j in jobs)
    held: list[JobResult] = []
    rows, since = 0, time.monotonic()

    def flush() -> list[JobResult]:
        nonlocal rows, since
        if store is not None and held:
            store.append_many((k, [it.key for it in r.job.items], s)
                              for r in held for k, s in zip(r.job.keys, r.scores))
        out = held.copy()
        held.clear()
        rows, since = 0, time.monotonic()
        return out

    with progress_bar(progress and total != 0, total) as advance:
        try:
            for result in executor.run(jobs):
                held.append(result)
                rows += result.job.size
                if rows >= flush_rows or time.monotonic() - since >= flush_seconds:
                    for r in flush():
                        advance(r.job.size)
                        yield r
        except Exception:
            flush()  # what was scored before the failure is kept: the next run starts after it
            raise
        for r in flush():
            advance(r.job.size)
            yield r


@dataclass(frozen=True)
class ScoreRow:
    dist: str
    ref: str
    metric: str
    score: float

    def as_dict(self) -> dict:
        return {"dist": self.dist, "ref": self.ref, "metric": self.metric, "score": self.score}


def score_items(items: Sequence[Item], specs: Sequence[MetricSpec], executor: Executor, *, chunk: int = 64,
                progress: bool = False) -> np.ndarray:
    """Every item scored with every metric, no store: ``out[i, j]`` is item ``i`` under ``specs[j]``."""
    position = {it.key: i for i, it in enumerate(items)}
    if len(position) != len(items):
        raise InputError("two images to score share a name; give each image once.")
    out = np.full((len(items), len(specs)), np.nan)
    column = {s: j for j, s in enumerate(specs)}
    for res in execute(plan(items, specs, chunk=chunk), executor, progress=progress):
        rows = [position[it.key] for it in res.job.items]
        for spec, scores in zip(res.job.metrics, res.scores):
            out[rows, column[spec]] = scores
    return out


def score_pairs(items: Sequence[Item], metrics: Sequence[str | MetricSpec], *, executor: Executor | None = None,
                device: str = "cpu", batch_size: int = 8, progress: bool = False) -> list[ScoreRow]:
    """Score every item with every metric, no store: rows in item order, metrics in the given order."""
    specs = [m if isinstance(m, MetricSpec) else MetricSpec.of(m) for m in metrics]
    own = executor is None
    executor = executor or LocalExecutor(device=device, batch_size=batch_size)
    try:
        got = score_items(items, specs, executor, progress=progress)
    finally:
        if own:
            executor.close()
    return [ScoreRow(str(it.dist), str(it.ref) if it.ref else "", s.name, float(got[i, j]))
            for i, it in enumerate(items) for j, s in enumerate(specs)]


@contextmanager
def progress_bar(enabled: bool, total: int | None, label: str = "scoring"):
    """Yields a function advancing a rich progress bar (or doing nothing when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


__all__ = ["EXECUTORS", "Executor", "Item", "Job", "JobResult", "Key", "LocalExecutor", "ScoreMatrix", "ScoreRow",
           "ScoreStore", "dataset_items", "execute", "expand_metrics", "get_executor", "iter_plan", "load_item",
           "pair_items", "plan", "progress_bar", "score_items", "score_pairs", "store_key"]
