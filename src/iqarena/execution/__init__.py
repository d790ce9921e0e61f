"""Where scoring runs. One path for `iqarena score`, `iqarena evaluate`, a trainer's validation and
a server's scoring: ``plan`` (items, metrics, store -> jobs), an :class:`Executor` (jobs -> results),
``execute`` (results -> the store, with progress).

>>> from iqarena.execution import Item, ScoreStore, execute, get_executor, plan
>>> store = ScoreStore()                                   # shared by every run (see store.py)
>>> jobs = plan(items, [MetricSpec.of("ssim")], dataset="pipal", store=store)
>>> with get_executor("local", batch_size=8) as ex:
...     for result in execute(jobs, ex, store): ...

Executors register in ``EXECUTORS`` (entry-point group ``iqarena.executors``); ``local`` is built in.
A cluster executor lives in its own module of this package and is imported only when chosen, so
nothing else imports its engine.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from ..errors import InputError
from ..metrics import MetricSpec, expand_metrics
from ..registry import Registry
from .local import LocalExecutor, load_item
from .plan import Item, Job, JobResult, dataset_items, pair_items, plan, store_key
from .store import Key, ScoreMatrix, ScoreStore


class Executor(Protocol):
    """Maps jobs to results (one per job, any order); usable as a context manager."""

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...


EXECUTORS: Registry = Registry("executor", group="iqarena.executors", listing="`iqarena score --help`")
EXECUTORS.add("local", LocalExecutor)


def get_executor(name: str = "local", **options) -> Executor:
    """Build a registered executor with its options (``device``, ``batch_size`` ...)."""
    return EXECUTORS.get(name)(**options)


def execute(jobs: Sequence[Job], executor: Executor, store: ScoreStore | None = None,
            progress: bool = False) -> Iterator[JobResult]:
    """Run ``jobs`` on ``executor``; each job's scores go to ``store`` (one part per job) as it finishes."""
    with progress_bar(progress and bool(jobs), sum(j.size for j in jobs)) as advance:
        for result in executor.run(jobs):
            if store is not None:
                keys = [it.key for it in result.job.items]
                store.append_many((k, keys, s) for k, s in zip(result.job.keys, result.scores))
            advance(result.job.size)
            yield result


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
def progress_bar(enabled: bool, total: int, label: str = "scoring"):
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
           "ScoreStore", "dataset_items", "execute", "expand_metrics", "get_executor", "load_item", "pair_items",
           "plan", "progress_bar", "score_items", "score_pairs", "store_key"]
