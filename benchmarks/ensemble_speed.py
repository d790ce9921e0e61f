"""Fit and predict time and peak memory of each ensemble learner on PIPAL-training-set-sized features.

    .venv/bin/python benchmarks/ensemble_speed.py --threads 2 --repeats 3 --json out/ens-speed.json

Data: 23,200 x 40 random features (PIPAL's training set: 200 references x 116 distortions; 40 metric
scores), labels a smooth nonlinear function of 8 of them plus noise, seeded. Every learner fits one model
(no bagging) on 80% of the rows with the other 20% as the validation fold, then predicts all 23,200 rows.
Boosters: 1,000 rounds without early stopping (``early_stopping=0``) so they do the same work each run,
learning rate 0.05, each library's default tree size; plus debut.kele's recipe as published (depth 3,
learning rate 0.01, up to 10,000 rounds, early stopping at 500). Each learner runs in its own Python
process (so peak resident memory is its own): the figures are the median of ``--repeats`` runs of
wall time, and the peak resident set size above the process's size after loading the data.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    "xgboost": ("xgboost", {"n_estimators": 1000, "early_stopping": 0, "learning_rate": 0.05}),
    "lightgbm": ("lightgbm", {"n_estimators": 1000, "early_stopping": 0, "learning_rate": 0.05}),
    "catboost": ("catboost", {"n_estimators": 1000, "early_stopping": 0, "learning_rate": 0.05}),
    "xgboost (debut.kele)": ("xgboost", {"max_depth": 3, "learning_rate": 0.01, "subsample": 0.7,
                                         "colsample_bytree": 0.7, "n_estimators": 10000, "early_stopping": 500}),
    "ridge": ("ridge", {}),
    "svr": ("svr", {}),
    "mean-rank": ("mean-rank", {}),
}


def one(case: str, threads: int) -> dict:
    import numpy as np

    from iqarena.ensemble import build_learner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(23_200, 40))
    y = (np.tanh(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + np.sin(x[:, 3]) + 0.3 * x[:, 4:8].sum(1)
         + 0.3 * rng.normal(size=len(x)))
    cut = int(0.8 * len(x))
    name, params = CASES[case]
    learner = build_learner(name, seed=0, threads=threads, **params)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    learner.fit(x[:cut], y[:cut], x[cut:], y[cut:])
    t1 = time.perf_counter()
    pred = learner.predict(x)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from scipy import stats

    return {"fit_s": t1 - t0, "predict_s": t2 - t1, "peak_mb": (peak - base) / 1024, "rounds": learner.rounds,
            "val_srcc": float(stats.spearmanr(pred[cut:], y[cut:]).statistic)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.threads)))
        return
    out = {}
    for case in args.cases.split(","):
        runs = []
        for _ in range(args.repeats):
            r = subprocess.run([sys.executable, __file__, "--one", case, "--threads", str(args.threads)],
                               capture_output=True, text=True, check=True)
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in ("fit_s", "predict_s", "peak_mb")}
        out[case] = {**med, "rounds": runs[0]["rounds"], "val_srcc": runs[0]["val_srcc"], "runs": runs}
        print(f"{case:>22}: fit {med['fit_s']:7.2f} s  predict {1000 * med['predict_s']:8.1f} ms  peak "
              f"+{med['peak_mb']:6.0f} MB  rounds {runs[0]['rounds']}  val SRCC {runs[0]['val_srcc']:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "repeats": args.repeats, "machine": platform.platform(),
                       "cases": out}, fh, indent=1)


if __name__ == "__main__":
    main()
