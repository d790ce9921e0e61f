"""Speed of Ma's score (NRQM) and PI: iqarena against pyiqa 0.1.16 (`nrqm`, `pi`), measured in the same run.

Neither side has Ma's trained forests here (model.mat, pyiqa's NRQM_model.mat), so the features and the forest are
timed separately:

- features: Ma's three feature groups of each of the five bundled 512x384 TID2013 images (iqarena: ``ma_features``
  on rgb2gray; pyiqa: the feature half of its ``nrqm()``: ``get_gauss_pyramid``, ``block_dct``, ``global_gsm``,
  im2col + SVD, on its default Y input), one image per call;
- PI features: the same plus NIQE on the PIRM input (Y, 4-pixel shave): iqarena ``pirm_y`` + ``ma_features`` +
  ``niqe``; pyiqa its PI's ``nrqm`` features + its ``niqe`` (LIVE model copied into its cache, ../shared/GUIDE.md);
- forest: three forests of 2000 trees with the shape of randomForest trees grown on 1440 samples (nodesize 5,
  random splits; 100 distinct trees repeated; saved to a MATLAB .mat and read by both sides) applied to 5 feature
  vectors.

Each (side, measurement, repetition) runs in a fresh interpreter, sides alternating; medians are reported, with
the ratio pyiqa / iqarena. pyiqa runs in PEERS_PYTHON (default /tmp/peers/bin/python).

    python benchmarks/speed_ma.py --reps 3 --threads 2 [--json out.json]
    python benchmarks/speed_ma.py --reps 1 --threads 1 --images 2 --cpu-time   # on a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "iqarena" / "sample"
NAMES = ["I03", "I04", "I06", "I08", "I19"]
DIMS = (18, 45, 75)
TREES = 2000
UNIQUE = 100  # distinct random trees per forest, repeated to TREES (the time does not depend on their values)


def _images():
    import numpy as np
    import torch
    from PIL import Image

    arrs = [np.asarray(Image.open(SAMPLE / "dist" / f"{n}.png").convert("RGB"), dtype=np.float32) / 255 for n in NAMES]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def make_forest(path: Path, seed: int = 0) -> None:
    """Three regRF structs (model.rf) of TREES trees each, grown by random splits of 1440 samples down to
    nodes of at most 5, in randomForest's node layout (1-based daughters, nodestatus -1 leaf / -3 split)."""
    import numpy as np
    import scipy.io

    rng = np.random.default_rng(seed)
    rf = np.empty((1, 3), dtype=object)
    for k, dim in enumerate(DIMS):
        trees = []
        for _ in range(UNIQUE):
            sizes, lo, hi = [1440], [], []
            status, var, split, val = [], [], [], []
            i = 0
            while i < len(sizes):
                n = sizes[i]
                if n <= 5:
                    status.append(-1); var.append(0); split.append(0.0); val.append(rng.uniform(0, 10))
                    lo.append(0); hi.append(0)
                else:
                    left = int(np.clip(round(n * rng.uniform(0.15, 0.85)), 1, n - 1))
                    status.append(-3); var.append(int(rng.integers(1, dim + 1))); split.append(rng.normal())
                    val.append(rng.uniform(0, 10))
                    lo.append(len(sizes) + 1); hi.append(len(sizes) + 2)
                    sizes += [left, n - left]
                i += 1
            trees.append((lo, hi, status, var, split, val))
        trees = [trees[i % UNIQUE] for i in range(TREES)]
        nodes = max(len(t[0]) for t in trees)  # randomForest allocates 2 * 1440 + 1 rows; the unused ones are never read

        def arr(j, dt, trees=trees, nodes=nodes):
            return np.stack([np.pad(np.asarray(t[j], dtype=dt), (0, nodes - len(t[j]))) for t in trees], 1)

        rf[0, k] = {"lDau": arr(0, np.int32), "rDau": arr(1, np.int32), "nodestatus": arr(2, np.int8),
                    "nrnodes": float(nodes), "upper": arr(4, np.float64), "avnode": arr(5, np.float64),
                    "mbest": arr(3, np.int32), "ndtree": np.array([len(t[0]) for t in trees], dtype=np.int32)[:, None],
                    "ntree": float(TREES), "coef": np.zeros((2, 1))}
    scipy.io.savemat(str(path), {"model": {"rf": rf, "linear": np.array([[0.5], [0.3], [0.4], [0.2]])}},
                     do_compression=True)


# ---- workers ---------------------------------------------------------------------------------------

def _iqarena(what: str, forest: str):
    import numpy as np

    import iqarena
    from iqarena.metrics.ma import load_ma_model, ma_features, pirm_y
    from iqarena.metrics.niqe import niqe

    x = _images().double()
    if what == "features":
        return lambda i: ma_features(x[i: i + 1])
    if what == "pi_features":
        def run(i):
            y = pirm_y(x[i: i + 1])
            return ma_features(y), niqe(y)
        return run
    model = load_ma_model(forest)
    rng = np.random.default_rng(1)
    feats = [rng.normal(size=(5, d)) for d in DIMS]
    del iqarena
    return lambda i: model.predict(*feats) if i == 0 else None


def _pyiqa(what: str, forest: str):
    import numpy as np
    import scipy.io
    import torch
    from pyiqa.archs import nrqm_arch as P
    from pyiqa.matlab_utils import im2col
    from pyiqa.utils.color_util import to_y_channel

    x = _images().double()

    def feats(img):  # the feature half of pyiqa's nrqm(): img 0..255, (1, 1, H, W)
        pyr = P.get_gauss_pyramid(img / 255.0)
        f1 = torch.cat([P.block_dct(im) for im in pyr], 1)
        f2 = P.global_gsm(img)
        f3 = torch.cat([torch.linalg.svd(im2col(im, 5, "distinct"), full_matrices=False)[1] for im in pyr], 1)
        return f1, f2, f3

    if what == "features":
        return lambda i: feats(to_y_channel(x[i: i + 1], 255, "yiq"))
    if what == "pi_features":
        import pyiqa

        nq = pyiqa.create_metric("niqe", device=torch.device("cpu"), as_loss=False)

        def run(i):
            y = to_y_channel(x[i: i + 1], 255, "ycbcr")[..., 4:-4, 4:-4]
            return feats(y), nq(x[i: i + 1])
        return run
    m = scipy.io.loadmat(forest)["model"]
    rfs = []
    for k in range(3):
        s = m["rf"][0, 0][0, k][0, 0]
        rfs.append((s["lDau"], s["rDau"], s["upper"], s["avnode"], s["mbest"]))
    rng = np.random.default_rng(1)
    fs = [torch.from_numpy(rng.normal(size=(5, d))) for d in DIMS]
    return lambda i: [P.random_forest_regression(f, *rf) for f, rf in zip(fs, rfs)] if i == 0 else None


def worker(side: str, what: str, forest: str, threads: int, images: int, cpu_time: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    fn = (_iqarena if side == "iqarena" else _pyiqa)(what, forest)
    count = 1 if what == "forest" else images
    clock = time.process_time if cpu_time else time.perf_counter
    with torch.no_grad():
        fn(0)  # warm-up (caches, first-call allocations)
        t = clock()
        for i in range(count):
            fn(i)
        dt = clock() - t
    print(json.dumps({"side": side, "what": what, "ms": 1000 * dt / count}))


# ---- orchestrator ----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--images", type=int, default=len(NAMES), help="images per measurement (1-5)")
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time (a busy machine)")
    ap.add_argument("--worker", nargs=3, metavar=("SIDE", "WHAT", "FOREST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.threads, args.images, args.cpu_time)
        return
    peers = os.environ.get("PEERS_PYTHON", "/tmp/peers/bin/python")
    sides = {"iqarena": sys.executable, "pyiqa": peers}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    results: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        forest = Path(tmp) / "forest.mat"
        make_forest(forest)
        for rep in range(args.reps):
            for what in ("features", "pi_features", "forest"):
                order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
                for side in order:
                    if (side, what) in errors:
                        continue
                    cmd = [sides[side], __file__, "--threads", str(args.threads), "--images", str(args.images),
                           "--worker", side, what, str(forest)] + (["--cpu-time"] if args.cpu_time else [])
                    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, check=False)
                    if p.returncode:
                        errors[(side, what)] = (p.stderr.strip().splitlines() or ["failed"])[-1]
                        continue
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                    results.setdefault((side, what), []).append(r["ms"])
                    print(f"rep {rep} {side:8s} {what:12s} {r['ms']:10.1f} ms", flush=True)
    rows = []
    clock = "CPU time" if args.cpu_time else "wall time"
    print(f"\nmedians ({args.reps} repetitions, {args.threads} threads, {clock}; per image over {args.images} "
          "image(s); forest: per 5 feature vectors x 3 forests)")
    for what in ("features", "pi_features", "forest"):
        med = {s: statistics.median(results[(s, what)]) for s in sides if (s, what) in results}
        ratio = med["pyiqa"] / med["iqarena"] if len(med) == 2 else None
        rows.append({"what": what, **{f"{s}_ms": v for s, v in med.items()}, "pyiqa/iqarena": ratio,
                     **{f"{s}_error": errors[(s, what)] for s in sides if (s, what) in errors}})
        cells = "  ".join(f"{s} {v:9.1f} ms" for s, v in med.items())
        print(f"{what:12s} {cells}" + (f"  pyiqa/iqarena {ratio:.1f}x" if ratio else "")
              + "".join(f"  [{s} failed: {errors[(s, what)]}]" for s in sides if (s, what) in errors))
    if args.json:
        args.json.write_text(json.dumps({"reps": args.reps, "threads": args.threads, "images": args.images,
                                         "clock": clock, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
