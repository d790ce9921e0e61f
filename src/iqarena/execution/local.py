"""The local executor: jobs scored in this process, metrics built once, images decoded ahead.

Images are read by a pool of background threads (decoding releases the GIL) a few ahead of the
scoring, gathered into batches of equal shape (not only consecutive ones), and every metric of the
job scores each batch. Metrics are built once per executor and (metric, options): a deep model's
weights load once per run, not once per chunk.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError
from ..io import read_image
from ..metrics import Metric, MetricSpec
from .plan import Item, Job, JobResult


def load_item(item: Item, need_ref: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dist, ref) tensors (C, H, W) of an item; a grey image against a colour one is promoted to RGB."""
    d = read_image(item.dist)
    if not need_ref:
        return d, None
    if item.ref is None:
        raise InputError(f"{item.dist}: full-reference metrics need a reference.", option="ref")
    r = read_image(item.ref)
    if d.shape[1:] != r.shape[1:]:
        raise InputError(f"size mismatch: {item.dist} is {d.shape[2]}x{d.shape[1]}, its reference {item.ref} is "
                         f"{r.shape[2]}x{r.shape[1]}. Full-reference metrics need equal sizes: resize or crop first.")
    if d.shape[0] != r.shape[0]:
        d, r = (d.expand(3, -1, -1), r) if d.shape[0] == 1 else (d, r.expand(3, -1, -1))
    return d, r


class LocalExecutor:
    """Scores jobs here. ``workers``: image-decoding threads (default: up to 4, one per core);
    ``prefetch``: images decoded ahead of the scoring (default: two batches)."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 8, workers: int | None = None,
                 prefetch: int | None = None):
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}.")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("a CUDA device was asked for, but torch sees none; use the CPU.", option="device")
        self.batch_size = batch_size
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.prefetch = prefetch or 2 * batch_size
        self._metrics: dict[tuple[MetricSpec, str], Metric] = {}
        self._pool: ThreadPoolExecutor | None = None

    def metric(self, spec: MetricSpec, fingerprint: str = "") -> Metric:
        """The built metric for ``spec`` as its ``fingerprint`` says (code, files, options), built on first use."""
        if (spec, fingerprint) not in self._metrics:
            self._metrics[(spec, fingerprint)] = spec.build(self.device)
        return self._metrics[(spec, fingerprint)]

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """One result per job, in job order."""
        jobs = list(jobs)
        if not jobs:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="iqarena-read")
        loaded = self._read_ahead(jobs)
        for job in jobs:
            yield self._score(job, (next(loaded) for _ in job.items))

    def _read_ahead(self, jobs: list[Job]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Every item of every job, in order, read ``prefetch`` items ahead by the thread pool."""
        need_ref = [any(m.info.needs_ref for m in job.metrics) for job in jobs]  # once per job, not per image
        todo = ((it, need) for job, need in zip(jobs, need_ref) for it in job.items)
        window: deque[Future] = deque()
        for it, need_ref in todo:
            window.append(self._pool.submit(load_item, it, need_ref))
            if len(window) >= self.prefetch:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def _score(self, job: Job, loaded: Iterator[tuple[torch.Tensor, torch.Tensor | None]]) -> JobResult:
        scores = [np.full(len(job.items), np.nan) for _ in job.metrics]
        buckets: dict[tuple, list[tuple[int, torch.Tensor, torch.Tensor | None]]] = {}
        held = 0
        for i, (d, r) in enumerate(loaded):
            bucket = buckets.setdefault(tuple(d.shape), [])
            bucket.append((i, d, r))
            held += 1
            if len(bucket) >= self.batch_size or held >= self.prefetch:
                full = bucket if len(bucket) >= self.batch_size else max(buckets.values(), key=len)
                self._score_batch(job, full, scores)
                held -= len(full)
                full.clear()
        for bucket in buckets.values():
            if bucket:
                self._score_batch(job, bucket, scores)
        return JobResult(job, tuple(scores))

    def _score_batch(self, job: Job, batch: list, scores: list[np.ndarray]) -> None:
        idx = [b[0] for b in batch]
        d = torch.stack([b[1] for b in batch]).to(self.device)
        r = torch.stack([b[2] for b in batch]).to(self.device) if batch[0][2] is not None else None
        with torch.no_grad():
            for j, (spec, key) in enumerate(zip(job.metrics, job.keys)):
                m = self.metric(spec, key.fingerprint)
                s = m(d, r) if m.info.needs_ref else m(d)
                scores[j][idx] = s.double().cpu().numpy()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._metrics.clear()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
