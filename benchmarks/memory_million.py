"""A million pairs scored on Ray with the driver's memory flat: measured, not assumed.

The driver streams everything: the items come from a generator (as a reader of a huge label file
would give them), ``iter_plan`` makes the jobs block by block, the Ray executor holds only the jobs in
flight, and ``execute`` writes the score store in batches (``flush_rows``). The driver's resident
memory (VmRSS, sampled every 0.25 s by a thread) is recorded against the number of scores stored,
and the run is repeated at a tenth of the size: flat memory means the same peak for both.

The images: a pool of small PNG pairs (``--size`` pixels square, 1,000 distorted and 100 references,
seeded), each used under many item names, so that a million distinct items need no million files.
The workers read and decode every image as a real run does; the metric is cheap (psnr), so the
driver's per-result work (receiving, planning, storing) is as large a share as it gets.

    python benchmarks/memory_million.py --pairs 1000000 100000 --workers 2 \\
        --json benchmarks/results-memory-million-DATE.json

Every worker uses one torch thread (``OMP_NUM_THREADS=1``); a local Ray cluster of ``--workers`` CPUs
is started on the loopback address. Other processes' CPU time during each run is recorded
(``others_cpu_s``, from /proc/stat), since the machine may be shared.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local cluster on 127.0.0.1 only


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_pool(root: Path, size: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    refs, dists = [], []
    for r in range(100):
        ref = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        refs.append(root / f"r{r:03d}.png")
        Image.fromarray(ref).save(refs[-1])
        for k in range(10):
            noisy = np.clip(ref + rng.normal(0, 2 + 3 * k, ref.shape), 0, 255).astype(np.uint8)
            dists.append(root / f"d{r:03d}_{k}.png")
            Image.fromarray(noisy).save(dists[-1])
    return dists, refs


def run(n: int, workers: int, chunk: int, flush_rows: int, pool: tuple[list[Path], list[Path]],
        store_root: Path) -> dict:
    from iqarena.execution import Item, ScoreStore, execute, iter_plan
    from iqarena.execution.ray import RayExecutor
    from iqarena.metrics import MetricSpec

    dists, refs = pool

    def items():
        for i in range(n):
            j = i % len(dists)
            yield Item(f"img{i:07d}.png", dists[j], refs[j // 10])

    shutil.rmtree(store_root, ignore_errors=True)
    store = ScoreStore(store_root)
    samples: list[tuple[float, int, float]] = []  # (seconds, scores stored, RSS MiB)
    stored = 0
    stop = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while not stop.is_set():
            samples.append((time.monotonic() - t0, stored, rss_mib()))
            stop.wait(0.25)

    rss_start = rss_mib()
    thread = threading.Thread(target=sampler, daemon=True)
    with RayExecutor(workers=workers, threads=1) as ex:
        # warm-up: workers started and psnr built before the clock runs
        warm = itertools.islice(items(), 2 * workers * chunk)
        list(execute(iter_plan(warm, [MetricSpec.of("psnr")], chunk=chunk), ex))
        rss_ready = rss_mib()
        pids = [w["pid"] for w in ex.workers_info()]
        workers0 = sum(process_cpu_s(p) for p in pids)
        busy0, t0 = busy_cpu_s(), time.monotonic()
        cpu0 = time.process_time()
        thread.start()
        jobs = iter_plan(items(), [MetricSpec.of("psnr")], dataset="million", store=store, chunk=chunk)
        for result in execute(jobs, ex, store, flush_rows=flush_rows):
            stored += result.job.size
        wall = time.monotonic() - t0
        driver_cpu = time.process_time() - cpu0
        others = busy_cpu_s() - busy0
        workers_cpu = sum(process_cpu_s(p) for p in pids) - workers0
        stop.set()
        thread.join()
        samples.append((wall, stored, rss_mib()))
    rows = len(store)
    parts = len(store.parts())
    peak = max(s[2] for s in samples)

    def at(fraction: float) -> float:
        return next(s[2] for s in samples if s[1] >= fraction * n)

    result = {"pairs": n, "stored": stored, "rows_in_store": rows, "parts": parts, "wall_s": round(wall, 1),
              "pairs_per_s": round(n / wall, 1), "driver_cpu_s": round(driver_cpu, 1),
              "workers_cpu_s": round(workers_cpu, 1), "others_cpu_s": round(others - driver_cpu - workers_cpu, 1), "rss_start_mib": round(rss_start, 1),
              "rss_ready_mib": round(rss_ready, 1), "rss_peak_mib": round(peak, 1),
              "rss_at": {f"{int(f * 100)}%": round(at(f), 1) for f in (0.1, 0.25, 0.5, 0.75, 1.0)},
              "samples": [(round(t, 2), k, round(m, 1)) for t, k, m in samples[:: max(1, len(samples) // 200)]]}
    shutil.rmtree(store_root, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1_000_000, 100_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=256, help="items per job")
    ap.add_argument("--flush-rows", type=int, default=1 << 16, help="scores per part of the store")
    ap.add_argument("--size", type=int, default=16, help="side of the pool's images, pixels")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="iqarena-million-"))
    try:
        pool = make_pool(tmp / "images", args.size)
        out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                           "torch": torch.__version__, "ray": __import__("ray").__version__},
               "settings": {k: v for k, v in vars(args).items() if k != "json"}, "runs": []}
        for n in args.pairs:
            r = run(n, args.workers, args.chunk, args.flush_rows, pool, tmp / "store")
            out["runs"].append(r)
            print(f"{n:,} pairs: {r['wall_s']} s ({r['pairs_per_s']:,} pairs/s), stored {r['rows_in_store']:,} rows "
                  f"in {r['parts']} parts; driver RSS start {r['rss_start_mib']} MiB, ready {r['rss_ready_mib']}, "
                  f"peak {r['rss_peak_mib']} MiB; at " + ", ".join(f"{k} {v}" for k, v in r["rss_at"].items())
                  + f"; CPU: driver {r['driver_cpu_s']} s, workers {r['workers_cpu_s']} s, others {r['others_cpu_s']} s",
                  flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
