"""Throughput of the Ray executor against a plain local run, measured on this machine, and a model of
larger clusters built from the measured costs.

Measured (a local Ray cluster on this 2-core machine, on the loopback address; every worker and the local run use
one torch thread unless said, so that 1 and 2 workers compare with the same work per process):

- ``local``: ``LocalExecutor`` in this process, 1 thread; ``local-2t``: the same with 2 threads (the
  default on this machine);
- ``ray-1w`` and ``ray-2w``: the Ray executor with 1 and 2 workers.

Each configuration scores the same pairs (the five bundled 512x384 TID2013 pairs under many names,
jobs of ``--chunk`` pairs) into a fresh score store, as ``iqarena evaluate`` does (one part per job).
Worker start-up (process, imports, building the metric) is timed apart, once, and left out of the
throughput: a warm-up job runs first. Configurations are interleaved within each repetition, and the
median of ``--reps`` is reported, because the machine is shared: the CPU time of other processes
during each run is recorded (``others_cpu_s``).

CPU time is measured too (the driver's, and the workers' from /proc/PID/stat): on a shared machine
wall times swing with the others' load, CPU times much less. Overhead per task = (median of ray-1w -
median of local) / jobs, in wall and in CPU time (driver and worker): what sending a job to a worker
and its result back costs beyond the scoring itself. It is measured on its own in the ``overhead``
case: ``--tasks`` jobs of one 16x16 pair, whose scoring costs next to nothing. The driver's CPU time per job (receiving,
planning, storing) is what one driver can sustain.

Modelled: throughput with W workers (one per core, on any number of nodes) as
``min(W / worker_cpu_per_job, 1 / driver_cpu_per_job)`` jobs per second, from the CPU times measured
with 2 workers: perfect scaling of the workers until the single driver saturates. It assumes a core
per worker, images read as fast on every node (a shared file system that keeps up), and no network
cost beyond what loopback measured.

    python benchmarks/ray_scaling.py --reps 5 --json benchmarks/results-ray-scaling-DATE.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local cluster on 127.0.0.1 only

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "iqarena" / "sample"
NAMES = ("I03", "I04", "I06", "I08", "I19")
MODEL_WORKERS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def busy_cpu_s() -> float:
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def items(n: int):
    from iqarena.execution import Item

    return [Item(f"c{k}/{NAMES[k % 5]}.png", SAMPLE / "dist" / f"{NAMES[k % 5]}.png",
                 SAMPLE / "ref" / f"{NAMES[k % 5]}.png") for k in range(n)]


def tiny_items(root: Path, n: int):
    """``n`` items of one 16x16 pair each (ten files): jobs whose scoring costs next to nothing."""
    import numpy as np
    from PIL import Image

    from iqarena.execution import Item

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(10):
        a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / f"d{k}.png")
        Image.fromarray(255 - a).save(root / f"r{k}.png")
    return [Item(f"t{i}.png", root / f"d{i % 10}.png", root / f"r{i % 10}.png") for i in range(n)]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(executor, its, spec, chunk: int, store_root: Path) -> dict:
    """Wall time, the driver's CPU time, the workers' CPU time (Ray) and other processes' CPU time of one run."""
    from iqarena.execution import ScoreStore, execute, plan

    shutil.rmtree(store_root, ignore_errors=True)
    store = ScoreStore(store_root)
    jobs = plan(its, [spec], dataset="bench", store=store, chunk=chunk)
    pids = [w["pid"] for w in executor.workers_info()] if hasattr(executor, "workers_info") else []
    workers0 = sum(process_cpu_s(p) for p in pids)
    busy0, cpu0, t0 = busy_cpu_s(), time.process_time(), time.perf_counter()
    n = sum(r.job.size for r in execute(jobs, executor, store))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    busy = busy_cpu_s() - busy0
    workers = sum(process_cpu_s(p) for p in pids) - workers0
    assert n == len(its) and len(store) == len(its)
    return {"wall_s": wall, "driver_cpu_s": cpu, "workers_cpu_s": workers,
            "others_cpu_s": max(0.0, busy - cpu - workers), "jobs": len(jobs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=8, help="pairs per job")
    ap.add_argument("--cheap", default="psnr")
    ap.add_argument("--cheap-pairs", type=int, default=800)
    ap.add_argument("--expensive", default="vif")
    ap.add_argument("--expensive-pairs", type=int, default=64)
    ap.add_argument("--tasks", type=int, default=300, help="jobs of one 16x16 pair for the overhead case")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import ray
    import torch

    from iqarena.execution import LocalExecutor
    from iqarena.execution.ray import RayExecutor
    from iqarena.metrics import MetricSpec

    tmp = Path(tempfile.mkdtemp(prefix="iqarena-scaling-"))
    # 3 logical CPUs: the workers of ray-1w (1) and ray-2w (2) all stay up; only one executor works at a time
    ray.init(num_cpus=3, include_dashboard=False, object_store_memory=256 << 20, logging_level="ERROR",
             log_to_driver=False)
    threads0 = torch.get_num_threads()
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                       "torch": torch.__version__, "ray": ray.__version__, "gcs": ray.get_runtime_context().gcs_address},
           "settings": {k: v for k, v in vars(args).items() if k != "json"}, "metrics": {}}
    try:
        tiny = tiny_items(tmp / "tiny", args.tasks)
        cases = [(args.cheap, args.cheap, items(args.cheap_pairs), args.chunk),
                 (args.expensive, args.expensive, items(args.expensive_pairs), args.chunk),
                 ("overhead", args.cheap, tiny, 1)]
        for spec_name, metric, its, chunk in cases:
            spec = MetricSpec.of(metric)
            n = len(its)
            warm = its[:4 * chunk]
            runs: dict[str, list[dict]] = {}
            startup = {}
            executors = {}
            for name, workers in (("ray-1w", 1), ("ray-2w", 2)):
                t0 = time.perf_counter()
                ex = RayExecutor(workers=workers, threads=1)
                timed(ex, warm, spec, chunk, tmp / "warm")  # workers started, metric built
                startup[name] = time.perf_counter() - t0
                executors[name] = ex
            for name, threads in (("local", 1), ("local-2t", 2)):
                executors[name] = (LocalExecutor(), threads)
            for rep in range(args.reps):
                for name, ex in executors.items():
                    if isinstance(ex, tuple):
                        local, threads = ex
                        torch.set_num_threads(threads)
                        try:
                            r = timed(local, its, spec, chunk, tmp / "store")
                        finally:
                            torch.set_num_threads(threads0)
                    else:  # the other executor's workers are idle meanwhile
                        r = timed(ex, its, spec, chunk, tmp / "store")
                    runs.setdefault(name, []).append(r)
                    print(f"{spec_name} rep {rep + 1} {name}: {r['wall_s']:.2f} s, {n / r['wall_s']:.1f} pairs/s, "
                          f"driver CPU {r['driver_cpu_s']:.2f} s, others {r['others_cpu_s']:.1f} s CPU", flush=True)
            for ex in executors.values():
                if not isinstance(ex, tuple):
                    ex.close()
                else:
                    ex[0].close()
            med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
            cpu = {k: statistics.median(r["driver_cpu_s"] + r["workers_cpu_s"] for r in v) for k, v in runs.items()}
            jobs = runs["local"][0]["jobs"]
            # CPU seconds per job: steady on a shared machine, where wall times are not
            t_job = cpu["local"] / jobs
            overhead = (cpu["ray-1w"] - cpu["local"]) / jobs
            overhead_wall = (med["ray-1w"] - med["local"]) / jobs
            driver = statistics.median(r["driver_cpu_s"] for r in runs["ray-2w"]) / jobs
            worker = statistics.median(r["workers_cpu_s"] for r in runs["ray-2w"]) / jobs
            model = {w: round(min(w / worker, 1 / driver) * chunk, 1) for w in MODEL_WORKERS}
            out["metrics"][spec_name] = {
                "metric": metric, "pairs": n, "jobs": jobs, "chunk": chunk, "startup_s": {k: round(v, 2) for k, v in startup.items()},
                "runs": runs, "median_wall_s": {k: round(v, 3) for k, v in med.items()},
                "pairs_per_s": {k: round(n / v, 1) for k, v in med.items()},
                "median_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
                "speedup_2w_over_1w": round(med["ray-1w"] / med["ray-2w"], 2),
                "others_cpu_share": round(statistics.median(r["others_cpu_s"] / (2 * r["wall_s"])
                                                            for v in runs.values() for r in v), 2),
                "job_cpu_ms_local": round(t_job * 1e3, 2), "overhead_cpu_per_task_ms": round(overhead * 1e3, 2),
                "overhead_wall_per_task_ms": round(overhead_wall * 1e3, 2),
                "driver_cpu_per_job_ms": round(driver * 1e3, 2), "worker_cpu_per_job_ms": round(worker * 1e3, 2),
                "modelled_pairs_per_s": model}
            m = out["metrics"][spec_name]
            print(f"{spec_name}: pairs/s {m['pairs_per_s']}, 2w/1w {m['speedup_2w_over_1w']}, CPU/job local "
                  f"{m['job_cpu_ms_local']} ms, overhead/task {m['overhead_wall_per_task_ms']} ms wall, {m['overhead_cpu_per_task_ms']} ms CPU, driver CPU/job "
                  f"{m['driver_cpu_per_job_ms']} ms, worker CPU/job {m['worker_cpu_per_job_ms']} ms; others used "
                  f"{m['others_cpu_share']:.0%} of the CPUs; modelled pairs/s {model}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
