"""Accuracy of the no-reference metrics on LIVE-Challenge (CLIVE): SRCC and PLCC against MOS.

    .venv/bin/python benchmarks/clive_nr.py --root ../shared/data/clive --scores clive_nr_scores.csv

Reads the labels with iqarena.datasets.wild.read_clive (all 937 rated photos, the training images
included), reads each image once and scores it with NIQE,
BRISQUE and PIQE (batched by image size), and prints SRCC, KRCC, PLCC after the NTIRE third-order
polynomial mapping and the raw PLCC, with the metrics' lower-is-better direction turned so that a good
metric has positive correlations (iqarena.evaluate.stats.evaluate). ``--scores`` also writes the
per-image scores.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from iqarena.datasets.wild import read_clive
from iqarena.evaluate.stats import evaluate
from iqarena.io import read_image
from iqarena.metrics import create_metric

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "clive"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="CLIVE folder with mos.csv and images/")
    ap.add_argument("--metrics", nargs="+", default=["niqe", "brisque", "piqe"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scores", type=Path, help="write per-image scores to this CSV")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds = read_clive(args.root, training=True)  # all 937 rated photos, the seven training images included
    names = [r.dist for r in ds.rows]
    mos = ds.scores
    by_size = defaultdict(list)
    for n in names:
        with Image.open(ds.path(n)) as im:
            by_size[im.size].append(n)

    metrics = {m: create_metric(m) for m in args.metrics}
    scores = {m: {} for m in args.metrics}
    seconds = dict.fromkeys(args.metrics, 0.0)
    with torch.no_grad():
        for group in by_size.values():
            for k in range(0, len(group), args.batch_size):
                chunk = group[k:k + args.batch_size]
                batch = torch.stack([read_image(ds.path(n)) for n in chunk]).double()
                for m, metric in metrics.items():
                    t0 = time.perf_counter()
                    scores[m].update(zip(chunk, metric(batch).tolist()))
                    seconds[m] += time.perf_counter() - t0
    for m in args.metrics:
        print(f"{m}: scored {len(names)} images in {seconds[m]:.1f} s", flush=True)

    print(f"\nCLIVE, {len(names)} images (MOS, higher is better); metric direction handled\n")
    print("| metric | SRCC | KRCC | PLCC (poly3) | PLCC (raw) | images without a score |")
    print("|---|---|---|---|---|---|")
    for m in args.metrics:
        pred = np.array([scores[m][n] for n in names])
        ok = np.isfinite(pred)
        r = evaluate(pred[ok], mos[ok], metric=m)
        print(f"| {m} | {r.srcc:.4f} | {r.krcc:.4f} | {r.plcc:.4f} | {r.plcc_raw:.4f} | {int((~ok).sum())} |")

    if args.scores:
        with args.scores.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "mos", *args.metrics])
            for n, y in zip(names, mos):
                w.writerow([Path(n).name, y, *(repr(scores[m][n]) for m in args.metrics)])
        print(f"\nper-image scores: {args.scores}")


if __name__ == "__main__":
    main()
