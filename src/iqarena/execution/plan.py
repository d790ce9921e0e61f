"""Planning: what is left to score, cut into jobs.

An :class:`Item` is one image to score (and its reference); a :class:`Job` scores a few items with a
few metrics, each under its store :class:`~iqarena.execution.store.Key`. ``plan`` asks the store what
it holds already and makes jobs only for the rest: items missing the same metrics travel together,
so every image is decoded once per job for all of its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..datasets import Dataset
from ..errors import InputError
from ..io import Pair
from ..metrics import MetricSpec, fingerprint
from .store import Key, ScoreStore


@dataclass(frozen=True)
class Item:
    """One image to score. ``key`` names it in the store and in results (a dataset-relative path)."""

    key: str
    dist: Path
    ref: Path | None = None


def dataset_items(ds: Dataset) -> list[Item]:
    """A dataset's rows as items, named by their path relative to the dataset's root."""
    return [Item(r.dist, ds.path(r.dist), ds.path(r.ref) if r.ref else None) for r in ds.rows]


def pair_items(pairs: Sequence[Pair]) -> list[Item]:
    """Pairs of files as items, named by the distorted file's path."""
    return [Item(str(p.dist), p.dist, p.ref) for p in pairs]


@dataclass(frozen=True)
class Job:
    """Score ``items`` with ``metrics``; ``keys[j]`` is where the scores of ``metrics[j]`` are stored."""

    metrics: tuple[MetricSpec, ...]
    keys: tuple[Key, ...]
    items: tuple[Item, ...]

    @property
    def size(self) -> int:
        """Scores this job yields."""
        return len(self.items) * len(self.metrics)


@dataclass(frozen=True)
class JobResult:
    """``scores[j][i]``: the score of ``job.items[i]`` under ``job.metrics[j]``."""

    job: Job
    scores: tuple[np.ndarray, ...]


def store_key(dataset: str, spec: MetricSpec) -> Key:
    """The store key of ``spec``'s scores on ``dataset`` as the code and files are today."""
    return Key(dataset, spec.name, fingerprint(spec), spec.options_json)


def _check_refs(items: Iterable[Item], metrics: Sequence[MetricSpec]) -> None:
    fr = [m.name for m in metrics if m.info.needs_ref]
    if fr:
        lacking = next((it for it in items if it.ref is None), None)
        if lacking is not None:
            raise InputError(f"full-reference metrics ({', '.join(fr)}) need a reference for every image, and "
                             f"{lacking.dist} has none. Give references, or choose no-reference metrics.",
                             option="ref")


def _keys(metrics: Sequence[MetricSpec], dataset: str, store: ScoreStore | None) -> dict[MetricSpec, Key]:
    if store is None:  # nothing stored: no fingerprints to compute
        return {m: Key(dataset, m.name, "", m.options_json) for m in metrics}
    return {m: store_key(dataset, m) for m in metrics}


def plan(items: Sequence[Item], metrics: Sequence[MetricSpec], *, dataset: str = "", store: ScoreStore | None = None,
         chunk: int = 64) -> list[Job]:
    """Jobs of at most ``chunk`` items scoring what ``store`` (if any) does not hold yet."""
    if chunk < 1:
        raise InputError(f"chunk must be at least 1, got {chunk}.")
    _check_refs(items, metrics)
    keys = _keys(metrics, dataset, store)
    done = {m: store.done(keys[m]) if store is not None else set() for m in metrics}
    groups: dict[tuple[MetricSpec, ...], list[Item]] = {}
    for it in items:
        missing = tuple(m for m in metrics if it.key not in done[m])
        if missing:
            groups.setdefault(missing, []).append(it)
    return [Job(ms, tuple(keys[m] for m in ms), tuple(group[i:i + chunk]))
            for ms, group in groups.items() for i in range(0, len(group), chunk)]


def iter_plan(items: Iterable[Item], metrics: Sequence[MetricSpec], *, dataset: str = "",
              store: ScoreStore | None = None, chunk: int = 64, block: int = 1 << 16) -> Iterator[Job]:
    """The jobs of :func:`plan`, made as ``items`` are read (an iterator is read ``block`` items at a time):
    for millions of images, memory holds one block and what the store has done (as Arrow strings, not
    Python sets), never every item or job. The same jobs as ``plan``, in another order."""
    if chunk < 1:
        raise InputError(f"chunk must be at least 1, got {chunk}.")
    keys = _keys(metrics, dataset, store)
    done = {m: store.done_names(keys[m]) if store is not None else None for m in metrics}
    pending: dict[tuple[MetricSpec, ...], list[Item]] = {}
    items = iter(items)
    while chunk_items := list(islice(items, block)):
        _check_refs(chunk_items, metrics)
        names = pa.array([it.key for it in chunk_items], pa.string())
        have = [pc.is_in(names, value_set=done[m]).to_numpy(zero_copy_only=False) if done[m] is not None
                and len(done[m]) else np.zeros(len(chunk_items), bool) for m in metrics]
        for i, it in enumerate(chunk_items):
            missing = tuple(m for m, h in zip(metrics, have) if not h[i])
            if missing:
                group = pending.setdefault(missing, [])
                group.append(it)
                if len(group) == chunk:
                    yield Job(missing, tuple(keys[m] for m in missing), tuple(group))
                    pending[missing] = []
    for ms, group in pending.items():
        if group:
            yield Job(ms, tuple(keys[m] for m in ms), tuple(group))
