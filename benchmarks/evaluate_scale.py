"""`iqarena evaluate` at scale: wall time and peak memory of a whole run, and of the score cache alone.

Made to compare two versions of the scoring/evaluate code in the same conditions: the dataset is
synthetic and seeded, and each version runs from its own source tree (``--src``, put first on
``PYTHONPATH``; e.g. a ``git worktree`` of an older commit) in an interpreter of your choice
(``--python``), every repetition in a fresh process with the thread variables unset (torch's
default thread count).

    python benchmarks/evaluate_scale.py --make-data /tmp/evalbench-data          # 20 refs x 50 = 1,000 images
    python benchmarks/evaluate_scale.py --data /tmp/evalbench-data --python .venv/bin/python --src src \\
        --reps 3 --json benchmarks/results-evaluate-scale-new-DATE.json
    python benchmarks/evaluate_scale.py --store-rows 2000000 --store-impl old --python .venv/bin/python --src src

Parts (several may be given in one call; ``--json`` holds every part run, with the conditions):

- ``--make-data DIR``: a PIPAL training layout (``Train_Ref/A0001.bmp``, ``Train_Dis/A0001_TT_LL.bmp``,
  ``Train_Label/A0001.txt`` with ``name,score`` lines): 288x288 RGB references (smooth random content,
  edges and texture), 50 distorted images each (``TT`` 00 Gaussian noise, 01 Gaussian blur, 02 JPEG,
  graded levels ``LL``), labels an Elo-like affine map of PSNR plus noise. Deterministic.
- ``--data DIR``: ``iqarena evaluate --dataset pipal -m psnr -m ssim -m gmsd -m ms_ssim -m fsim
  --bootstrap 0 --no-plots``, run through ``from iqarena.cli import main``. ``cold``: a fresh output folder, everything scored;
  ``warm``: rerun on the last cold folder, everything cached (cache load, fingerprints, report). Wall
  time, CPU time (user + system) and peak RSS are those of the child process (``os.wait4``),
  interpreter start-up included. The number of ``create_metric`` calls is counted by wrapping it in
  every module that holds it.
- ``--store-rows N``: the score cache alone. N rows (image names x 10 metrics) are written with the
  implementation under test, then loaded in a fresh process: load time (wall and CPU) and peak RSS
  (and the RSS before loading: the interpreter and the imports). ``--store-impl old``: ``ScoreCache``
  (``scores.csv``); ``new``: ``ScoreStore`` (``_fill_new``/``_load_new`` below).

The machine must be otherwise idle: every measured process also records ``others_cpu_s``, the CPU
time that other processes used meanwhile (from /proc/stat), and a warning is printed when it exceeds
5% of the run's wall time. Compare only runs without it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ("psnr", "ssim", "gmsd", "ms_ssim", "fsim")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STORE_METRICS = ("psnr", "ssim", "ms_ssim", "gmsd", "fsim", "fsimc", "vif", "lpips", "dists", "niqe")
SIZE = 288
# (group TT, levels): 17 noise + 17 blur + 16 JPEG levels = 50 distorted images per reference
NOISE_SIGMA = [2 + 3 * i for i in range(17)]                  # grey levels, 2..50
BLUR_RADIUS = [0.4 + 0.3 * i for i in range(17)]              # PIL GaussianBlur radius, 0.4..5.2
JPEG_QUALITY = [95 - 6 * i for i in range(16)]                # 95..5

# The child's entry point: the CLI, with every reference to iqarena.create_metric (the public one, wherever
# it is defined) replaced by a counting wrapper; the calls go to the file named by the first argument.
CLI_WRAPPER = """
import json, sys
count_file = sys.argv.pop(1)
import iqarena
from iqarena.cli import main
original, calls = iqarena.create_metric, []
def counted(*args, **kwargs):
    calls.append(args[0] if args else kwargs.get("name"))
    return original(*args, **kwargs)
for module in list(sys.modules.values()):
    if getattr(module, "__dict__", {}).get("create_metric") is original:
        module.create_metric = counted
try:
    main()
finally:
    with open(count_file, "w") as fh:
        json.dump(calls, fh)
"""

PROBE = """
import json, sys, torch, iqarena
print(json.dumps({"python": sys.version.split()[0], "torch": torch.__version__,
                  "torch_threads": torch.get_num_threads(), "iqarena_file": iqarena.__file__}))
"""


# ---------------------------------------------------------------- synthetic PIPAL-layout dataset

def _reference(rng):
    """288x288x3 uint8: smooth colour fields, a few hard-edged shapes, band-limited and fine texture."""
    import numpy as np
    from PIL import Image, ImageDraw

    def upsampled(cells, channels):
        low = rng.uniform(0, 255, (cells, cells, channels)).astype(np.uint8)
        img = Image.fromarray(low.squeeze()).resize((SIZE, SIZE), Image.BICUBIC)
        return np.asarray(img, dtype=np.float64).reshape(SIZE, SIZE, channels)

    base = 0.7 * upsampled(int(rng.integers(3, 8)), 3) + 0.3 * 128
    shapes = Image.new("RGB", (SIZE, SIZE))
    draw = ImageDraw.Draw(shapes)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.integers(0, SIZE - 40, 2)
        w, h = rng.integers(20, 140, 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=fill)
    mask = np.asarray(shapes.convert("L")) > 0
    base[mask] = 0.5 * base[mask] + 0.5 * np.asarray(shapes, dtype=np.float64)[mask]
    texture = (upsampled(SIZE // 4, 1) - 128) * 0.25 + rng.normal(0, 4, (SIZE, SIZE, 1))
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def _distortions(ref, rng):
    """(group, level, uint8 image) for the 50 graded distortions of ``ref``."""
    import io

    import numpy as np
    from PIL import Image, ImageFilter

    for level, sigma in enumerate(NOISE_SIGMA):
        yield 0, level, np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).astype(np.uint8)
    for level, radius in enumerate(BLUR_RADIUS):
        yield 1, level, np.asarray(Image.fromarray(ref).filter(ImageFilter.GaussianBlur(radius)))
    for level, quality in enumerate(JPEG_QUALITY):
        buf = io.BytesIO()
        Image.fromarray(ref).save(buf, format="JPEG", quality=quality)
        yield 2, level, np.asarray(Image.open(buf).convert("RGB"))


def _psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def make_data(root: Path, refs: int, seed: int) -> int:
    """Write the synthetic dataset under ``root``; returns the number of distorted images."""
    import numpy as np
    from PIL import Image

    for sub in ("Train_Ref", "Train_Dis", "Train_Label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    for r in range(1, refs + 1):
        rng = np.random.default_rng([seed, r])
        name = f"A{r:04d}"
        ref = _reference(rng)
        Image.fromarray(ref).save(root / "Train_Ref" / f"{name}.bmp")
        lines = []
        for group, level, img in _distortions(ref, rng):
            dist = f"{name}_{group:02d}_{level:02d}.bmp"
            Image.fromarray(img).save(root / "Train_Dis" / dist)
            elo = 900 + 22 * min(_psnr(img, ref), 50.0) + rng.normal(0, 40)
            lines.append(f"{dist},{elo:.4f}")
            count += 1
        (root / "Train_Label" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return count


# ---------------------------------------------------------------- running a source tree

def child_env(src: Path) -> dict[str, str]:
    """The environment of every measured process: ``src`` first on PYTHONPATH, thread variables unset."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = str(src)
    return env


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``cmd`` to completion (output to ``log``): wall, CPU (user + system) and system seconds and peak
    RSS of that process, and the CPU seconds that other processes used meanwhile."""
    with log.open("w") as fh:
        busy, start = _busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall, busy = time.perf_counter() - start, _busy_seconds() - busy
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise SystemExit(f"{' '.join(cmd[:3])} ... exited with {proc.returncode}; last lines of {log}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, busy - cpu)
    if others > 0.05 * wall:
        print(f"  warning: other processes used {others:.1f} CPU seconds during this {wall:.1f} s run; "
              "the machine is not idle, so this run's times are not comparable", flush=True)
    return {"wall_s": wall, "cpu_s": cpu, "sys_s": usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024,  # ru_maxrss: KiB on Linux
            "others_cpu_s": others}


def conditions(python: str, src: Path) -> dict:
    """What the numbers depend on: code version, interpreter, torch and its threads, the machine."""
    probe = subprocess.run([python, "-c", PROBE], env=child_env(src), capture_output=True, text=True, check=True)
    info = json.loads(probe.stdout)
    if not Path(info["iqarena_file"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"{python} imports iqarena from {info['iqarena_file']}, not from --src {src}.")

    def git(*args):
        res = subprocess.run(["git", "--no-optional-locks", "-C", str(src), *args], capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else None

    cpu_model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), platform.processor())
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "src": str(src.resolve()),
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", ".")),
            "python_path": python, **info, "thread_vars_unset": list(THREAD_VARS),
            "python_env": {k: v for k, v in os.environ.items() if k.startswith("PYTHON") and k != "PYTHONPATH"},
            "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
            "loadavg_at_start": os.getloadavg(), "host": platform.node()}


def _summary(runs: list[dict], **extra) -> dict:
    """Medians of wall time, CPU time and peak RSS, then every value of every run."""
    medians = {f"{k}_median": statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
    return {**medians, **{k: [r[k] for r in runs] for k in runs[0]}, **extra}


# ---------------------------------------------------------------- end-to-end evaluate

def evaluate_runs(data: Path, python: str, src: Path, work: Path, modes: list[str], reps: int) -> dict:
    """Cold and/or warm `iqarena evaluate` runs, ``reps`` each, every one in a fresh process."""
    env = child_env(src)

    def run(out: Path, tag: str) -> tuple[dict, list[str]]:
        counts = work / f"{tag}.create_metric.json"
        cmd = [python, "-c", CLI_WRAPPER, str(counts), "evaluate", "--dataset", "pipal", "--root", str(data),
               *[a for m in METRICS for a in ("-m", m)], "--bootstrap", "0", "--no-plots", "-o", str(out)]
        # each report folder has its own score store (new code; the old one kept scores.csv in the folder),
        # so a cold run scores everything and a warm run reads what its cold run stored
        result = measure(cmd, {**env, "IQARENA_STORE": f"{out}-store"}, work / f"{tag}.log")
        calls = json.loads(counts.read_text())
        result["create_metric_calls"] = len(calls)
        print(f"  {tag}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, {result['peak_rss_mib']:.0f} MiB,"
              f" create_metric x{len(calls)}, others {result['others_cpu_s']:.1f} s CPU", flush=True)
        return result, calls

    def series(runs: list[tuple[Path, str]]) -> dict:
        results = [run(out, tag) for out, tag in runs]
        first_calls = results[0][1]
        return _summary([r for r, _ in results],
                        create_metric_by_metric={m: first_calls.count(m) for m in sorted(set(first_calls))})

    results, finished = {}, None
    if "cold" in modes:
        results["cold"] = series([(work / f"cold-{i}", f"cold-{i}") for i in range(1, reps + 1)])
        finished = work / f"cold-{reps}"
    if "warm" in modes:
        if finished is None:
            finished = work / "prepare"
            print("  preparing a finished folder for the warm runs (not measured)", flush=True)
            run(finished, "prepare")
        results["warm"] = series([(finished, f"warm-{i}") for i in range(1, reps + 1)])
        results["warm"]["folder"] = finished.name
    return results


# ---------------------------------------------------------------- score store micro-benchmark

def _store_rows(n: int):
    """``n`` (image, metric, score) rows: image names of a PIPAL-like set, 10 metrics each, random scores."""
    import random

    rnd = random.Random(0)
    for i in range(n):
        img, m = divmod(i, len(STORE_METRICS))
        ref, k = divmod(img, 50)
        yield f"Train_Dis/A{ref + 1:04d}_{k // 17:02d}_{k % 17:02d}.bmp", STORE_METRICS[m], rnd.uniform(0, 100)


def _old_cache():
    from iqarena.evaluate.run import ScoreCache

    return ScoreCache


def _fill_old(cache_class, folder: Path, rows) -> None:
    cache_class(folder).append(rows)


def _load_old(cache_class, folder: Path):
    return cache_class(folder).load()


# ---- the new store: rows go in as one part per metric (as a run writes them, a part per job), and
# "load everything" is what a report does: each metric's scores of every image, looked up in one read.

def _new_store():
    from iqarena.execution.store import ScoreStore

    return ScoreStore


def _fill_new(store_class, folder: Path, rows) -> None:
    from iqarena.execution.store import Key

    by_metric: dict[str, tuple[list, list]] = {}
    for image, metric, score in rows:
        names, scores = by_metric.setdefault(metric, ([], []))
        names.append(image)
        scores.append(score)
    store = store_class(folder)
    for metric, (names, scores) in by_metric.items():
        store.append(Key("bench", metric, "fp"), names, scores)


def _load_new(store_class, folder: Path):
    from iqarena.execution.store import Key

    store = store_class(folder)
    names = sorted(store.done(Key("bench", STORE_METRICS[0], "fp")))
    matrix = store.matrix([Key("bench", m, "fp") for m in STORE_METRICS], names)
    return matrix.values.reshape(-1)


# implementation -> (import its class: before the clock starts; write rows; load everything)
STORE_IMPLS = {"old": (_old_cache, _fill_old, _load_old), "new": (_new_store, _fill_new, _load_new)}


def store_worker(action: str, impl: str, folder: Path, rows: int) -> None:
    """Runs inside the measured interpreter: write the rows, or load them; prints one JSON line."""
    importer, fill, load = STORE_IMPLS[impl]
    store_class = importer()
    if action == "fill":
        start = time.perf_counter()
        fill(store_class, folder, _store_rows(rows))
        print(json.dumps({"wall_s": time.perf_counter() - start}))
        return
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    entries = len(load(store_class, folder))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"wall_s": seconds, "cpu_s": cpu, "peak_rss_mib": after.ru_maxrss / 1024,
                      "rss_before_mib": before.ru_maxrss / 1024, "entries": entries}))


def store_runs(python: str, src: Path, work: Path, impl: str, rows: int, reps: int) -> dict:
    """Write ``rows`` rows once, then load them ``reps`` times, each in a fresh process."""
    env = child_env(src)
    folder = work / f"store-{impl}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)

    def worker(action: str) -> dict:
        cmd = [python, __file__, "--store-worker", action, "--store-impl", impl, "--store-dir", str(folder),
               "--store-rows", str(rows)]
        log = work / f"store-{impl}-{action}.log"
        process = measure(cmd, env, log)
        return {**json.loads(log.read_text().strip().splitlines()[-1]), "others_cpu_s": process["others_cpu_s"]}

    written = worker("fill")
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"  store {impl}: wrote {rows:,} rows in {written['wall_s']:.1f} s, {disk / 2**20:.0f} MiB on disk",
          flush=True)
    loads = []
    for i in range(1, reps + 1):
        loads.append(worker("load"))
        x = loads[-1]
        print(f"  load-{i}: {x['wall_s']:.2f} s wall, {x['cpu_s']:.2f} s CPU, peak {x['peak_rss_mib']:.0f} MiB "
              f"(before loading {x['rss_before_mib']:.0f} MiB), {x['entries']:,} entries, "
              f"others {x['others_cpu_s']:.1f} s CPU", flush=True)
    if impl == "old" and any(x["entries"] != rows for x in loads):
        raise SystemExit(f"ScoreCache.load() returned {loads[0]['entries']} entries for {rows} rows.")
    shutil.rmtree(folder)
    return {"impl": impl, "rows": rows, "write_s": written["wall_s"], "bytes_on_disk": disk, **_summary(loads)}


# ---------------------------------------------------------------- command line

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", type=Path, metavar="DIR", help="write the synthetic PIPAL-layout dataset here")
    ap.add_argument("--refs", type=int, default=20, help="references for --make-data (50 distorted images each)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --make-data")
    ap.add_argument("--data", type=Path, metavar="DIR", help="run `iqarena evaluate` on this dataset")
    ap.add_argument("--modes", nargs="+", choices=("cold", "warm"), default=["cold", "warm"])
    ap.add_argument("--python", default=sys.executable, help="interpreter of the measured runs")
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src",
                    help="source tree put first on PYTHONPATH (the folder that holds iqarena/)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    ap.add_argument("--work", type=Path, help="folder for reports, logs and the store files (default: a new temp folder)")
    ap.add_argument("--store-rows", type=int, metavar="N", help="score-store micro-benchmark with N rows (e.g. 2000000)")
    ap.add_argument("--store-impl", choices=tuple(STORE_IMPLS), default="old")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the conditions and results here")
    ap.add_argument("--store-worker", choices=("fill", "load"), help=argparse.SUPPRESS)
    ap.add_argument("--store-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.store_worker:
        store_worker(args.store_worker, args.store_impl, args.store_dir, args.store_rows)
        return
    if not (args.make_data or args.data or args.store_rows):
        ap.error("nothing to do: give --make-data, --data and/or --store-rows")
    if args.make_data:
        start = time.perf_counter()
        n = make_data(args.make_data, args.refs, args.seed)
        print(f"wrote {args.refs} references and {n} distorted images to {args.make_data} "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
    if not (args.data or args.store_rows):
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="evalbench-"))
    work.mkdir(parents=True, exist_ok=True)
    record = {"command": [sys.executable, *sys.argv], "conditions": conditions(args.python, args.src),
              "reps": args.reps, "work": str(work)}
    print(json.dumps(record["conditions"]), flush=True)
    if args.data:
        print(f"evaluate: {', '.join(METRICS)} on {args.data}, modes {' '.join(args.modes)}", flush=True)
        record["evaluate"] = {"data": str(args.data), "metrics": list(METRICS),
                              **evaluate_runs(args.data, args.python, args.src, work, args.modes, args.reps)}
    if args.store_rows:
        print(f"score store: {args.store_rows:,} rows, {args.store_impl}", flush=True)
        record["store"] = store_runs(args.python, args.src, work, args.store_impl, args.store_rows, args.reps)

    for part in ("cold", "warm"):
        if part in record.get("evaluate", {}):
            r = record["evaluate"][part]
            print(f"{part:5s}: median {r['wall_s_median']:.1f} s wall, {r['cpu_s_median']:.1f} s CPU, "
                  f"{r['peak_rss_mib_median']:.0f} MiB peak RSS")
    if "store" in record:
        r = record["store"]
        print(f"store: {r['rows']:,} rows ({r['impl']}) load median {r['wall_s_median']:.2f} s wall, "
              f"{r['cpu_s_median']:.2f} s CPU, "
              f"{r['peak_rss_mib_median']:.0f} MiB peak RSS")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
