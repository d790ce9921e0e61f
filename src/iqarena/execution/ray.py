"""The Ray executor: jobs scored by worker processes of a Ray cluster, results streamed back.

Each worker is a Ray actor holding a :class:`~iqarena.execution.local.LocalExecutor`: its metrics (and
deep models) are built once and stay loaded, and it reads the images itself (every node must see the
images at the same paths: a shared file system). The driver sends jobs, a few per worker at a time
(``depth``), takes results in the order they finish and hands them to ``execute``, which writes them to
the score store; it never holds more than the jobs in flight. A job is scored on a worker exactly as a
local run scores it (same batches, same torch thread count), so the numbers are the same, bit for bit,
on CPU.

With ``device="cuda"`` (or ``"auto"`` when the cluster has GPUs), the metrics that benefit from a GPU
(the deep ones: registered as modules) go to GPU workers (``num_gpus=1`` each) and the rest to CPU
workers: a job with both is split in two. A worker that dies (killed, out of memory, a lost node) is
replaced while the cluster has room for it, and its unfinished jobs go to the others; a job is tried
on ``retries + 1`` workers before the run gives up. Nothing is lost when the driver dies: what was
stored stays, and the next run plans only the rest.

>>> with RayExecutor(address="auto") as ex:                 # a running cluster (`ray start --head`)
...     for result in execute(jobs, ex, store): ...
>>> RayExecutor(workers=2)                                  # a local cluster of 2 CPUs, started here
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Iterator

import numpy as np
import torch

from ..errors import InputError, IQAError, ResourceError
from ..metrics import MetricSpec, fingerprint
from .local import LocalExecutor
from .plan import Job, JobResult

INSTALL = "pip install 'iqarena[distributed]'"
#: Ray's switch that keeps a cluster started here on the loopback address (read when ray is imported)
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(loopback: bool = False):
    """The ``ray`` module, or ResourceError saying how to install it. ``loopback``: if ray is imported
    now, a cluster started by this process binds to 127.0.0.1 only (a local cluster is nobody else's)."""
    if loopback and "ray" not in sys.modules and _LOOPBACK_ENV not in os.environ:
        os.environ[_LOOPBACK_ENV] = "0"
        try:
            return import_ray()
        finally:
            os.environ.pop(_LOOPBACK_ENV, None)
    try:
        import ray
    except ImportError:
        raise ResourceError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None
    return ray


def wants_gpu(spec: MetricSpec) -> bool:
    """Whether a metric benefits from a GPU: the deep ones (networks, checkpoints), registered as modules."""
    return spec.info.module


class Worker:
    """One scoring process of the cluster (a Ray actor): metrics built once, images read here."""

    def __init__(self, device: str, batch_size: int, threads: int, prefetch: int | None):
        torch.set_num_threads(threads)
        self.executor = LocalExecutor(device=device, batch_size=batch_size, workers=2, prefetch=prefetch)
        self.checked: set[tuple[MetricSpec, str]] = set()

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "node": ctx.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()],
                "threads": torch.get_num_threads(), "device": str(self.executor.device)}

    def score(self, job: Job) -> tuple[np.ndarray, ...]:
        for spec, key in zip(job.metrics, job.keys):
            if key.fingerprint and (spec, key.fingerprint) not in self.checked:
                mine = fingerprint(spec)
                if mine != key.fingerprint:  # another iqarena or parameter file on this node, or an edit
                    raise InputError(f"{spec}: the code or parameter files on this worker's node differ from the "
                                     f"driver's (fingerprint {mine} here, {key.fingerprint} when the run was "
                                     "planned). Install the same iqarena and files on every node (and do not edit "
                                     "them during a run); its scores would be stored as the driver's.")
                self.checked.add((spec, key.fingerprint))
        (result,) = self.executor.run([job])
        return result.scores


@dataclass(eq=False)
class _Slot:
    actor: Any
    started: Any  # the ref of its first call: resolves when the actor runs
    ready: bool = False
    refs: set = field(default_factory=set)


@dataclass(eq=False)
class _Pool:
    name: str  # "cpu" or "gpu"
    size: int
    device: str
    resources: dict
    slots: list[_Slot] = field(default_factory=list)
    pending: deque = field(default_factory=deque)  # (job, tries) waiting for a worker
    owed: int = 0  # workers lost and not yet replaced
    failed_starts: int = 0
    checked: float = 0.0  # when the cluster's free resources were last asked for (to replace lost workers)


class RayExecutor:
    """Scores jobs on a Ray cluster.

    ``address``: a running cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``); None starts a
    local one with ``workers * threads`` CPUs (loopback only), unless this process is connected already.
    ``workers``: CPU workers (default: as many as the cluster's CPUs allow). ``threads``: torch threads of
    each worker, and CPUs it reserves (default: this process's ``torch.get_num_threads()``, which is
    what makes the numbers equal a local run's; set ``OMP_NUM_THREADS=1`` for one process per core).
    ``device``: ``cpu``; ``cuda``: deep metrics on GPU workers (one per cluster GPU), the rest on CPU
    workers; ``auto``: ``cuda`` when the cluster has GPUs. ``gpu_metrics``: names that go to GPU workers
    (default: :func:`wants_gpu`). ``depth``: jobs in flight per worker. ``retries``: workers a job may
    lose before the run fails."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 8, *, address: str | None = None,
                 workers: int | None = None, threads: int | None = None, gpu_metrics: Collection[str] | None = None,
                 gpu_device: str = "cuda", depth: int = 2, retries: int = 3, prefetch: int | None = None,
                 start_timeout: float = 600.0):
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}.")
        for name, v in (("workers", workers), ("threads", threads), ("depth", depth)):
            if v is not None and v < 1:
                raise InputError(f"{name} must be at least 1, got {v}.", option=name)
        device = str(device)
        if device.split(":")[0] not in ("cpu", "cuda", "auto"):
            raise InputError(f"the ray executor takes device cpu, cuda or auto, got {device!r}.", option="device")
        self.ray = ray = import_ray(loopback=address is None)
        self.batch_size, self.prefetch, self.depth, self.retries = batch_size, prefetch, depth, retries
        self.threads = threads or torch.get_num_threads()
        self.start_timeout = start_timeout
        self._gpu_names = None if gpu_metrics is None else {str(n).lower() for n in gpu_metrics}
        self._owns = not ray.is_initialized()
        if self._owns:
            quiet = {"logging_level": "ERROR", "log_to_driver": False}
            if address is None:
                cpus = workers * self.threads if workers else max(self.threads, os.cpu_count() or 1)
                ray.init(num_cpus=cpus, include_dashboard=False,
                         object_store_memory=256 << 20, **quiet)
            else:
                try:
                    ray.init(address=address, **quiet)
                except ConnectionError as exc:
                    raise InputError(f"no Ray cluster at {address!r} ({exc}). Start one with `ray start --head`, "
                                     "or leave the address out for a local one.", option="address") from None
        total = ray.cluster_resources()
        gpus = int(total.get("GPU", 0))
        if device.startswith("cuda") and not gpus:
            raise InputError("device cuda was asked for, but the Ray cluster has no GPUs; use cpu or auto.",
                             option="device")
        self.pools = {"cpu": _Pool("cpu", workers or max(1, int(total.get("CPU", 1)) // self.threads), "cpu",
                                   {"num_cpus": self.threads})}
        if device != "cpu" and gpus:
            self.pools["gpu"] = _Pool("gpu", gpus, gpu_device, {"num_cpus": 0, "num_gpus": 1})
        self._remote = ray.remote(Worker)

    # ------------------------------------------------------------ workers

    def _start(self, pool: _Pool) -> None:
        actor = self._remote.options(**pool.resources, max_restarts=0, max_task_retries=0).remote(
            pool.device, self.batch_size, self.threads, self.prefetch)
        pool.slots.append(_Slot(actor, actor.info.remote()))

    def _top_up(self, pool: _Pool) -> None:
        """Start a pool's workers on first use, and replace lost ones while the cluster has room."""
        if not pool.slots and not pool.owed:
            for _ in range(pool.size):
                self._start(pool)
            return
        if pool.owed and (not pool.slots or time.monotonic() - pool.checked > 1.0):
            pool.checked = time.monotonic()
            free = self.ray.available_resources()
            while pool.owed and (not pool.slots or all(free.get(k, 0) >= v for k, v in (
                    ("CPU", pool.resources.get("num_cpus", 0)), ("GPU", pool.resources.get("num_gpus", 0))))):
                self._start(pool)
                pool.owed -= 1
                free = self.ray.available_resources()

    def _drop(self, pool: _Pool, slot: _Slot) -> None:
        """A worker died: forget it (its jobs are sent again by the caller) and owe a replacement."""
        if slot in pool.slots:
            pool.slots.remove(slot)
            pool.owed += 1
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:  # already gone
                pass

    def workers_info(self) -> list[dict]:
        """pid, node, GPUs, threads and device of each running worker, with its pool ("cpu"/"gpu")."""
        slots = [(p.name, s) for p in self.pools.values() for s in p.slots]
        infos = self.ray.get([s.actor.info.remote() for _, s in slots])
        return [{"pool": name, **i} for (name, _), i in zip(slots, infos)]

    def _split(self, job: Job) -> list[tuple[_Pool, Job]]:
        """A job as parts for the GPU and the CPU workers (one part when all its metrics go one way)."""
        if "gpu" not in self.pools:
            return [(self.pools["cpu"], job)]
        on_gpu = [(self._gpu_names is None and wants_gpu(m)) or (self._gpu_names is not None and
                  m.name.lower() in self._gpu_names) for m in job.metrics]
        parts = []
        for name, flag in (("gpu", True), ("cpu", False)):
            idx = [j for j, g in enumerate(on_gpu) if g == flag]
            if len(idx) == len(job.metrics):
                return [(self.pools[name], job)]
            if idx:
                parts.append((self.pools[name], Job(tuple(job.metrics[j] for j in idx),
                                                    tuple(job.keys[j] for j in idx), job.items)))
        return parts

    # ------------------------------------------------------------ running

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """One result per job (per part of a split job), in the order they finish. ``jobs`` is read lazily:
        only a few jobs per worker are held at a time."""
        ray = self.ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        jobs = iter(jobs)
        exhausted = False
        inflight: dict[Any, tuple[_Pool, _Slot, Job, int]] = {}
        queued_limit = 4 * sum(p.size for p in self.pools.values()) + 4
        waiting_since = time.monotonic()
        finished = False

        def fill() -> None:
            nonlocal exhausted
            moved = True
            while moved:
                moved = False
                for pool in self.pools.values():
                    if pool.pending or pool.slots or pool.owed:
                        self._top_up(pool)
                    for slot in [s for s in pool.slots if s.ready]:
                        while len(slot.refs) < self.depth:
                            if not pool.pending:
                                if exhausted or sum(len(p.pending) for p in self.pools.values()) >= queued_limit:
                                    break
                                job = next(jobs, None)
                                if job is None:
                                    exhausted = True
                                    break
                                for target, part in self._split(job):
                                    target.pending.append((part, 0))
                                moved = True
                                continue
                            part, tries = pool.pending.popleft()
                            ref = slot.actor.score.remote(part)
                            slot.refs.add(ref)
                            inflight[ref] = (pool, slot, part, tries)
                            moved = True
                if not exhausted and not any(p.slots for p in self.pools.values()):
                    # nothing started yet: take a first job so that its pools start their workers
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                    else:
                        for target, part in self._split(job):
                            target.pending.append((part, 0))
                        moved = True

        try:
            while True:
                fill()
                starting = {s.started: (p, s) for p in self.pools.values() for s in p.slots if not s.ready}
                if not inflight and exhausted and not any(p.pending for p in self.pools.values()):
                    finished = True
                    return
                if not inflight and not starting and any(p.owed for p in self.pools.values()):
                    time.sleep(0.2)  # lost workers' resources not free yet
                    self._check_start_timeout(waiting_since)
                    continue
                ready, _ = ray.wait(list(inflight) + list(starting), num_returns=1, timeout=5.0)
                if not ready:
                    if not inflight:
                        self._check_start_timeout(waiting_since)
                    continue
                ref = ready[0]
                if ref in starting:
                    pool, slot = starting[ref]
                    try:
                        ray.get(ref)
                        slot.ready, pool.failed_starts = True, 0
                        waiting_since = time.monotonic()
                    except RayActorError as exc:
                        pool.failed_starts += 1
                        self._drop(pool, slot)
                        if pool.failed_starts > self.retries:
                            raise ResourceError(f"Ray workers fail to start ({pool.failed_starts} in a row): "
                                                f"{_first_line(exc)}. Is iqarena installed on every node?") from None
                    continue
                pool, slot, part, tries = inflight.pop(ref)
                slot.refs.discard(ref)
                try:
                    scores = ray.get(ref)
                except RayTaskError as exc:
                    if isinstance(exc.cause, IQAError):
                        raise exc.cause from None
                    raise
                except (RayActorError, WorkerCrashedError) as exc:
                    self._drop(pool, slot)
                    if tries + 1 > self.retries:
                        raise ResourceError(f"a job ({part.items[0].key} and {len(part.items) - 1} more) lost "
                                            f"{tries + 1} workers; giving up: {_first_line(exc)}") from None
                    pool.pending.appendleft((part, tries + 1))
                    continue
                waiting_since = time.monotonic()
                yield JobResult(part, tuple(scores))
        finally:
            if not finished:  # stopped early (an error, or the caller stopped reading): stop the work too
                self._stop_workers()

    def _check_start_timeout(self, since: float) -> None:
        if time.monotonic() - since > self.start_timeout:
            need = {p.name: p.resources for p in self.pools.values() if p.pending}
            raise ResourceError(f"no Ray worker could start within {self.start_timeout:.0f} s; the cluster lacks "
                                f"the resources they ask for ({need}; it has {self.ray.cluster_resources()}).")

    def _stop_workers(self) -> None:
        for pool in self.pools.values():
            for slot in pool.slots:
                try:
                    self.ray.kill(slot.actor, no_restart=True)
                except Exception:
                    pass
            pool.slots.clear()
            pool.pending.clear()
            pool.owed = 0

    def close(self) -> None:
        """Stop the workers; disconnect (and stop the local cluster) if this executor connected."""
        if self.ray.is_initialized():
            self._stop_workers()
            if self._owns:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.ray.shutdown()

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["INSTALL", "RayExecutor", "Worker", "import_ray", "wants_gpu"]
