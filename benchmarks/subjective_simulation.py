"""Simulated pairwise studies with known true qualities: accuracy of Elo / Bradley-Terry against the
number of judgements for each pair rule, a PIPAL-shaped check of the Elo pipeline against the real
PIPAL labels, and the fit time on a PIPAL-sized table.

    .venv/bin/python benchmarks/subjective_simulation.py [--quick] [--out docs]

Writes docs/img/subjective_simulation.png and prints markdown tables (pasted into docs/subjective.md).
BLAS is pinned to one thread (set before numpy loads): on a shared, loaded machine OpenBLAS threads
on small dense blocks are up to 100x slower than one thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from iqarena import subjective as sj  # noqa: E402
from iqarena.subjective import simulate as S  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PIPAL = ROOT.parent / "shared" / "data" / "pipal-labels" / "pipal_train_labels.txt"


def per_ref_srcc(score, truth, n_refs, n_img):
    s, t = score.reshape(n_refs, n_img), truth.reshape(n_refs, n_img)
    return float(np.mean([spearmanr(s[r], t[r])[0] for r in range(n_refs)]))


def methods(j):
    return {"Elo (1 pass, collected order)": sj.fit_elo(j, orders=0),
            "Elo (mean of 10 orders)": sj.fit_elo(j, orders=10),
            "BT (Davidson)": sj.fit_bt(j, ci=False)}


def study_curves(n_refs, n_img, shows, seeds, nu, sd=120.0):
    """shows: checkpoints in 'times each image was shown' (= 2 * judgements / images)."""
    batch = n_refs * n_img // 2  # one show per image per batch
    out = defaultdict(list)  # (rule, method, shows) -> [srcc per seed]
    rmse = defaultdict(list)
    for seed in seeds:
        j0, truth = S.study(n_refs, n_img, sd=sd, seed=seed)
        for rule in sj.RULES:
            rng = np.random.default_rng(1000 + seed)
            j, done = j0, 0
            for target in shows:
                while done < target:
                    first = done == 0  # every rule starts from one random round
                    a, b = sj.propose(j, batch, "random" if first else rule, seed=rng)
                    j = S.add(j, truth, a, b, nu=nu, rng=rng)
                    done += 1
                for name, r in methods(j).items():
                    out[(rule, name, target)].append(per_ref_srcc(r.score, truth, n_refs, n_img))
                    rmse[(rule, name, target)].append(float(np.sqrt(np.mean((r.score - truth) ** 2))))
    return out, rmse


def shows_needed(curve_x, curve_y, level):
    """Log-linear interpolation of the shows per image at which the curve first reaches ``level``."""
    for k in range(1, len(curve_x)):
        if curve_y[k] >= level > curve_y[k - 1]:
            f = (level - curve_y[k - 1]) / (curve_y[k] - curve_y[k - 1])
            return float(np.exp(np.log(curve_x[k - 1]) + f * (np.log(curve_x[k]) - np.log(curve_x[k - 1]))))
    return float(curve_x[0]) if curve_y[0] >= level else float("nan")


def read_pipal():
    groups = defaultdict(list)
    for line in PIPAL.read_text().splitlines():
        name, score = line.split(",")
        groups[name[:5]].append((name.strip(), float(score)))
    return groups


def shape(scores_by_ref):
    std = np.array([np.std(v) for v in scores_by_ref])
    rng = np.array([np.ptp(v) for v in scores_by_ref])
    mean = np.array([np.mean(v) for v in scores_by_ref])
    lo = np.array([np.min(v) for v in scores_by_ref])
    hi = np.array([np.max(v) for v in scores_by_ref])
    q = lambda x: f"{np.median(x):.0f} [{np.percentile(x, 25):.0f}, {np.percentile(x, 75):.0f}]"  # noqa: E731
    return q(mean), q(std), q(rng), f"{lo.min():.0f} to {hi.max():.0f}"


def pipal_check(per_ref_judgements, ks, seed=0):
    groups = read_pipal()
    refs = sorted(groups)
    n_img = len(groups[refs[0]])
    truth = np.concatenate([[s for _, s in groups[r]] for r in refs])
    j0, _ = S.study(len(refs), n_img)
    rng = np.random.default_rng(seed)
    n = per_ref_judgements * len(refs)
    ref = np.repeat(np.arange(len(refs)), per_ref_judgements)
    ia = rng.integers(0, n_img, n)
    ib = (ia + 1 + rng.integers(0, n_img - 1, n)) % n_img
    j = S.add(j0, truth, ref * n_img + ia, ref * n_img + ib, nu=0.0, rng=rng)
    rows = [("real PIPAL labels (the simulated truth)", *shape(truth.reshape(len(refs), n_img)), "1")]
    timings = {}
    for k in ks:
        for orders in (0, 10):
            t = time.perf_counter()
            r = sj.fit_elo(j, k=k, orders=orders)
            timings[f"elo K={k:g} orders={orders}"] = time.perf_counter() - t
            label = f"Elo K={k:g}, " + ("1 pass, collected order" if orders == 0 else "mean of 10 orders")
            rows.append((label, *shape(r.score.reshape(len(refs), n_img)),
                         f"{per_ref_srcc(r.score, truth, len(refs), n_img):.3f}"))
    t = time.perf_counter()
    r = sj.fit_bt(j)
    timings["bt with CIs"] = time.perf_counter() - t
    rows.append(("BT (Davidson)", *shape(r.score.reshape(len(refs), n_img)),
                 f"{per_ref_srcc(r.score, truth, len(refs), n_img):.3f}"))
    return rows, timings, len(j), float(np.median(r.se))


def pipal_sized_timing():
    """1.13M judgements, 250 references x 116 images (PIPAL's size), random pairs."""
    j0, truth = S.study(250, 116, seed=5)
    rng = np.random.default_rng(5)
    n = 1_130_000
    ref = rng.integers(0, 250, n)
    ia = rng.integers(0, 116, n)
    ib = (ia + 1 + rng.integers(0, 115, n)) % 116
    j = S.add(j0, truth, ref * 116 + ia, ref * 116 + ib, nu=0.2, rng=rng)
    out = {}
    for name, fn in (("Elo, 1 order", lambda: sj.fit_elo(j, orders=1)),
                     ("BT without CIs", lambda: sj.fit_bt(j, ci=False)),
                     ("BT with CIs", lambda: sj.fit_bt(j))):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def plot(curves, shows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True)
    names = ["Elo (1 pass, collected order)", "Elo (mean of 10 orders)", "BT (Davidson)"]
    colors = {"random": "tab:blue", "swiss": "tab:orange", "active": "tab:green"}
    for ax, name in zip(axes, names):
        for rule in sj.RULES:
            y = [np.mean(curves[(rule, name, s)]) for s in shows]
            e = [np.std(curves[(rule, name, s)]) for s in shows]
            ax.errorbar(shows, y, yerr=e, marker="o", capsize=3, label=rule, color=colors[rule])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("times each image was shown (2 x judgements / images)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SRCC to the true quality (mean over references)")
    axes[0].legend(title="pair rule")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer seeds and checkpoints (smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    n_refs, n_img, nu = 10, 40, 0.2
    shows = [2, 4, 8, 16, 32] if args.quick else [2, 4, 8, 16, 32, 64]
    seeds = range(2) if args.quick else range(4)
    names = ["Elo (1 pass, collected order)", "Elo (mean of 10 orders)", "BT (Davidson)"]
    for sd in (120.0, 300.0):
        t0 = time.perf_counter()
        curves, rmse = study_curves(n_refs, n_img, shows, seeds, nu, sd)
        t_sim = time.perf_counter() - t0
        print(f"## Simulation: {n_refs} references x {n_img} images, true ratings N(1450, {sd:.0f}^2) per reference, "
              f"Davidson ties nu={nu}, {len(seeds)} seeds ({t_sim:.0f} s)\n")
        print("mean per-reference SRCC to the truth (sd over seeds)\n")
        print("| method | rule | " + " | ".join(f"{s} shows" for s in shows) + " |")
        print("|---|---|" + "---:|" * len(shows))
        for name in names:
            for rule in sj.RULES:
                cells = [f"{np.mean(curves[(rule, name, s)]):.3f} ({np.std(curves[(rule, name, s)]):.3f})" for s in shows]
                print(f"| {name} | {rule} | " + " | ".join(cells) + " |")
        print("\nRMSE to the truth (Elo points)\n")
        print("| method | rule | " + " | ".join(f"{s} shows" for s in shows) + " |")
        print("|---|---|" + "---:|" * len(shows))
        for name in names:
            for rule in sj.RULES:
                print(f"| {name} | {rule} | " + " | ".join(f"{np.mean(rmse[(rule, name, s)]):.0f}" for s in shows) + " |")
        print("\nshows per image needed (log-interpolated) to reach a mean SRCC level\n")
        print("| method | rule | SRCC 0.80 | SRCC 0.90 |\n|---|---|---:|---:|")
        for name in names[1:]:
            for rule in sj.RULES:
                y = [np.mean(curves[(rule, name, s)]) for s in shows]
                print(f"| {name} | {rule} | {shows_needed(shows, y, 0.80):.1f} | {shows_needed(shows, y, 0.90):.1f} |")
        print()
        tag = "" if sd == 120.0 else "_wide"
        plot(curves, shows, args.out / "img" / f"subjective_simulation{tag}.png",
             f"{n_refs} refs x {n_img} images, true sd {sd:.0f} Elo, ties nu={nu}, {len(seeds)} seeds; "
             "pairs in batches of one show per image, BT refit between batches")

    if PIPAL.exists():
        per_ref = 4520  # 1.13M judgements / 250 references
        rows, timings, n_j, med_se = pipal_check(per_ref, ks=(8, 16, 32))
        print(f"\n## PIPAL-shaped check: truth = the real labels of the 200 training references (116 images each); "
              f"{per_ref} random-pair forced-choice judgements per reference ({n_j} in all), as PIPAL's "
              "1.13M over 250 references\n")
        print("| scores | per-ref mean | per-ref sd | per-ref range (max-min) | overall min to max | SRCC to truth |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print(f"\nmedian BT standard error: {med_se:.1f} Elo points; timings (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if not args.quick:
        t = pipal_sized_timing()
        print("\n## Fit time, 1.13M judgements, 250 references x 116 images (one BLAS thread)\n")
        print(" | ".join(f"{k}: {v:.1f} s" for k, v in t.items()))


if __name__ == "__main__":
    main()
