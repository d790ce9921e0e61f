"""Cross-validated accuracy of the ensemble presets against their single best feature (issue 14).

    # the 937 LIVE-Challenge photos: niqe, brisque, piqe, iqarena_nr's out-of-fold score, and the pooled
    # EfficientNet-Lite0 statistics (4,128 numbers)
    .venv/bin/python benchmarks/ensemble_cv.py clive --root ../shared/data/clive --json out/ens-clive.json

    # a synthetic PIPAL-layout FR set (iqarena synth); its labels come from ms_ssim and fsimc, so those
    # two are left out of the features and the ensembles must predict them from the other FR metrics
    .venv/bin/python benchmarks/ensemble_cv.py synth --root out/train-demo/data --json out/ens-synth.json

Every preset is fitted with ``iqarena.ensemble.fit_ensemble`` on the same seeded 5 folds grouped by
content (CLIVE: each photo is its own content; synthetic set: the reference). The figures are the mean
over the validation folds of SRCC and of PLCC after the NTIRE cubic fit, and the pooled out-of-fold
values. debut.kele's and EGB's recipes fix their features (12 FR metrics; VGG-16 taps); on these sets
their learners and settings run on the features named here, as ``--model debut.kele --columns all``.

iqarena_nr's score on CLIVE is out-of-fold: for fold k, the head is trained on the other folds
(``iqarena.models.train``, ``data.fold = k``, the shipped config) and predicts fold k, so no photo is
scored by a head that saw it. The ensemble's training folds then hold scores from heads that saw the
validation fold's photos (ordinary stacking); the figures say so.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iqarena.datasets import load_dataset
from iqarena.ensemble import (
    FeatureTable,
    dataset_features,
    extract_features,
    fit_ensemble,
    get_preset,
)

PRESETS = ("ridge", "svr", "mean-rank", "xgboost", "lightgbm", "catboost", "egb", "debut.kele")


def nr_out_of_fold(ds, config: str, folds: int) -> np.ndarray:
    """iqarena_nr's out-of-fold score of every photo (the same folds as the ensembles)."""
    from clive_nr_cv import train_fold  # the script beside this one

    pos = {r.dist: i for i, r in enumerate(ds.rows)}
    out = np.full(len(ds), np.nan)
    for k in range(folds):
        _, _, _, val, pred = train_fold(config, k, folds, f"runs/ens_cv/fold{k}")
        for r, p in zip(val.rows, pred):
            out[pos[r.dist]] = p
        print(f"iqarena_nr fold {k}: done", file=sys.stderr)
    return out


def run_presets(name: str, table: FeatureTable, ds, folds: int, presets, threads) -> list[dict]:
    rows = []
    contents = [r.content for r in ds.rows]
    for p in presets:
        started = time.perf_counter()
        ens = fit_ensemble(table, ds.scores, contents, preset=get_preset(p), folds=folds, threads=threads,
                           label_higher_better=ds.higher_better, permutation=table.values.shape[1] <= 64)
        cv = ens.cv
        rows.append({"features": name, "preset": p, "n_features": len(table.columns),
                     "srcc": cv["mean"]["srcc"], "plcc": cv["mean"]["plcc"], "pooled_srcc": cv["pooled"]["srcc"],
                     "pooled_plcc": cv["pooled"]["plcc"], "best_feature": cv["best_feature"],
                     "seconds": time.perf_counter() - started,
                     "top_gain": _top(ens.importance, "gain"), "top_permutation": _top(ens.importance, "permutation")})
        print(f"{name:>14} {p:>11}: SRCC {rows[-1]['srcc']:.4f} PLCC {rows[-1]['plcc']:.4f}  (best single "
              f"{cv['best_feature']['feature']}: {cv['best_feature']['srcc']:.4f} / {cv['best_feature']['plcc']:.4f}) "
              f"{rows[-1]['seconds']:.0f} s", file=sys.stderr)
    return rows


def _top(imp: dict, key: str, n: int = 5) -> list:
    vals = imp.get(key)
    if not vals:
        return []
    order = sorted(range(len(vals)), key=lambda i: -(vals[i] if vals[i] is not None else -np.inf))[:n]
    return [(imp["columns"][i], vals[i]) for i in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", choices=("clive", "synth"))
    ap.add_argument("--root", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--nr-config", default="configs/iqarena_nr_clive.toml")
    ap.add_argument("--json")
    args = ap.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    results, started = [], time.time()
    if args.set == "clive":
        ds = load_dataset("clive", args.root, training=True)
        scalars = dataset_features(ds, metrics=["niqe", "brisque", "piqe"], progress=True)
        oof = nr_out_of_fold(ds, args.nr_config, args.folds)
        small = FeatureTable(scalars.names, scalars.columns + ("iqarena_nr (out-of-fold)",),
                             np.column_stack([scalars.values, oof]), (), "clive scalars")
        deep = extract_features(ds, "efficientnet_lite0", progress=True)
        both = FeatureTable(small.names, small.columns + deep.columns, np.column_stack([small.values, deep.values]),
                            (), "clive scalars + deep")
        results += run_presets("4 scalars", small, ds, args.folds, presets, args.threads)
        results += run_presets("scalars + deep", both, ds, args.folds, presets, args.threads)
    else:
        from iqarena.metrics import available_metrics

        ds = load_dataset("pipal", args.root)
        label = json.loads((Path(args.root) / "synth.json").read_text())["settings"]["label"]
        label_metrics = set(label.split(",") if isinstance(label, str) else label)
        metrics = [m for m in available_metrics("fr") if m not in label_metrics]
        table = dataset_features(ds, metrics=metrics, progress=True)
        results += run_presets(f"{len(metrics)} FR metrics", table, ds, args.folds, presets, args.threads)
    out = {"set": args.set, "root": args.root, "images": len(ds), "folds": args.folds, "results": results,
           "seconds": time.time() - started, "torch_threads": torch.get_num_threads(),
           "machine": platform.platform()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
