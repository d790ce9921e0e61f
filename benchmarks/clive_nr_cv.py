"""Cross-validated accuracy of iqarena_nr on the LIVE-Challenge photos, against the frozen-feature ridge
baseline, on the same folds.

    .venv/bin/python benchmarks/clive_nr_cv.py --config configs/iqarena_nr_clive.toml --json out.json

Folds: a seeded 5-fold split of all 937 photos (``iqarena.models.data.fold_split``, seed 0; CLIVE has no
references, so each photo is its own content). For every fold:

- iqarena_nr: ``iqarena.models.train.train`` with ``data.fold = k`` as the config says; the score is
  the validation fold's after the LAST epoch (no model selection on the held-out fold).
- baseline: the issue's frozen baseline: EfficientNet-Lite0 at full resolution, mean and standard
  deviation of every stage and of the head's map (the first 4,128 numbers of iqarena_nr's cached
  features, view 0), a ridge regression whose penalty is chosen by generalised cross-validation on
  the training folds only (scikit-learn's RidgeCV).

Both read the same cached features (computed once per photo by the first training run), so the
baseline costs seconds. SRCC and PLCC (after the NTIRE cubic fit) per fold, their mean and the pooled
out-of-fold values are printed and written with ``--json``.
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

from iqarena.evaluate import evaluate
from iqarena.metrics import MetricSpec, fingerprint, get_info
from iqarena.models.config import load_config
from iqarena.models.data import load_splits
from iqarena.models.train import train
from iqarena.weights import home


def ridge_fold(train_x, train_y, val_x) -> np.ndarray:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 36)))
    return model.fit(train_x, train_y).predict(val_x)


def train_fold(config: str, k: int, folds: int, out: str, overrides: dict | None = None, log=lambda m: None):
    """Train fold ``k`` of ``config`` (``data.fold = k``) and predict its validation fold from the cached
    features with the LAST epoch's weights: (cfg, features of a dataset's rows, train split, validation
    split, out-of-fold predictions)."""
    cfg = load_config(config, {**(overrides or {}), "data.fold": str(k), "data.folds": str(folds),
                               "train.out": out, "train.progress": "false"})
    train(cfg, overwrite=True, log=log)
    blob = torch.load(Path(cfg.train.out) / "last.pt", weights_only=True)
    net = get_info(cfg.model.name).target(**cfg.model.options)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    key = fingerprint(MetricSpec.of(cfg.model.name, **cfg.model.options))
    feats = torch.load(home() / "features" / f"{key}-{2 if cfg.data.flip else 1}.pt", weights_only=True)
    train_ds, val_ds = load_splits(cfg.data)

    def fx(ds):
        return torch.stack([feats[f"{ds.root.resolve()}/{r.dist}"][0] for r in ds.rows])

    with torch.no_grad():
        pred = net.from_features(fx(val_ds)).double().numpy()
    return cfg, fx, train_ds, val_ds, pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/iqarena_nr_clive.toml")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default="runs/clive_cv", help="run folders of the folds")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides section.key=value")
    args = ap.parse_args()

    overrides = dict(s.split("=", 1) for s in args.set)
    results = {"iqarena_nr": [], "ridge": []}
    pooled = {"iqarena_nr": ([], []), "ridge": ([], [])}
    started = time.time()
    for k in range(args.folds):
        cfg, fx, train_ds, val_ds, pred = train_fold(args.config, k, args.folds, f"{args.out}/fold{k}", overrides,
                                                     log=lambda m: print(m, file=sys.stderr))
        rows = (Path(cfg.train.out) / "epochs.csv").read_text().splitlines()
        last = dict(zip(rows[0].split(","), rows[-1].split(",")))
        r = evaluate(pred, val_ds.scores, higher_better=True)
        assert abs(r.srcc - float(last["val_srcc"])) < 1e-9, (r.srcc, last["val_srcc"])
        results["iqarena_nr"].append({"fold": k, "n": len(val_ds), "srcc": r.srcc, "plcc": r.plcc})
        pooled["iqarena_nr"][0].extend(pred)
        pooled["iqarena_nr"][1].extend(val_ds.scores)

        half = fx(train_ds).shape[1] // len(cfg.model.options.get("scales", (1.0, 0.5)))
        base = ridge_fold(fx(train_ds)[:, :half].numpy(), train_ds.scores, fx(val_ds)[:, :half].numpy())
        rb = evaluate(base, val_ds.scores, higher_better=True)
        results["ridge"].append({"fold": k, "n": len(val_ds), "srcc": rb.srcc, "plcc": rb.plcc})
        pooled["ridge"][0].extend(base)
        pooled["ridge"][1].extend(val_ds.scores)
        print(f"fold {k}: iqarena_nr SRCC {r.srcc:.4f} PLCC {r.plcc:.4f} | ridge SRCC {rb.srcc:.4f} "
              f"PLCC {rb.plcc:.4f}", flush=True)

    summary = {}
    for name, folds in results.items():
        p = evaluate(np.array(pooled[name][0]), np.array(pooled[name][1]), higher_better=True)
        summary[name] = {"mean_srcc": float(np.mean([f["srcc"] for f in folds])),
                         "mean_plcc": float(np.mean([f["plcc"] for f in folds])),
                         "pooled_srcc": p.srcc, "pooled_plcc": p.plcc, "n": len(pooled[name][0]), "folds": folds}
        print(f"{name}: mean SRCC {summary[name]['mean_srcc']:.4f} PLCC {summary[name]['mean_plcc']:.4f}; pooled "
              f"out-of-fold SRCC {p.srcc:.4f} PLCC {p.plcc:.4f} (n = {p.n})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": args.config, "overrides": overrides, "folds": args.folds, "results": summary,
            "seconds": round(time.time() - started, 1), "torch": torch.__version__, "threads":
            torch.get_num_threads(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}, indent=1))


if __name__ == "__main__":
    main()
