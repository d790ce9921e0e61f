"""What a fitted ensemble writes beside its models: ``report.md`` (cross-validated SRCC/PLCC per fold and
pooled, against the single best feature; the importance table), ``importance.csv`` and
``importance.png`` (which features carry the prediction), ``oof.csv`` (out-of-fold predictions)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .model import Ensemble


def write_report(ens: Ensemble, folder: str | Path, top: int = 25) -> list[Path]:
    folder = Path(folder)
    imp = ens.importance
    cols = imp.get("columns", list(ens.columns))
    gain = imp.get("gain")
    perm = imp.get("permutation")
    rows = [(c, None if gain is None else gain[i], None if perm is None else perm[i]) for i, c in enumerate(cols)]
    key = (lambda r: -(r[1] or 0.0)) if gain is not None else (lambda r: -(r[2] or 0.0))
    rows.sort(key=key)
    written = []

    path = folder / "importance.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("feature", "gain_share", "permutation_srcc_drop"))
        w.writerows((c, "" if g is None else repr(g), "" if p is None else repr(p)) for c, g, p in rows)
    written.append(path)

    oof = ens.cv.get("oof")
    if oof:
        path = folder / "oof.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(("name", "prediction"))
            w.writerows((n, repr(p)) for n, p in zip(oof["names"], oof["pred"]))
        written.append(path)

    written.append(_plot(rows[:top], folder / "importance.png", ens.preset.name))

    cv, best = ens.cv, ens.cv.get("best_feature", {})
    learners = " + ".join(n for n, _ in ens.preset.learners)
    metrics = [s["metric"] for s in ens.sources if "metric" in s]
    feats = (f"metrics {', '.join(metrics)}" if metrics else
             ", ".join(f"deep features {s['extractor']}" for s in ens.sources if "extractor" in s) or "a feature table")
    lines = [f"# Ensemble `{ens.preset.name}`", "", f"{learners}, {len(ens.models)}-fold bagging over {feats}; "
             f"{len(ens.columns)} features; seed {ens.seed}.", "", "## Cross-validation (folds grouped by reference "
             "content)", "",
             "| fold | images | SRCC | PLCC |", "|---|---|---|---|"]
    lines += [f"| {f['fold']} | {f['n']} | {f['srcc']:.4f} | {f['plcc']:.4f} |" for f in cv.get("folds", [])]
    if cv.get("mean"):
        lines.append(f"| mean | | {cv['mean']['srcc']:.4f} | {cv['mean']['plcc']:.4f} |")
        lines.append(f"| pooled out-of-fold | | {cv['pooled']['srcc']:.4f} | {cv['pooled']['plcc']:.4f} |")
    if best:
        lines += ["", f"Single best feature on the same folds: `{best['feature']}`, mean SRCC {best['srcc']:.4f}, "
                      f"PLCC {best['plcc']:.4f}."]
    lines += ["", "## Importance", "", "Gain: share of the boosters' total split gain (mean over folds). "
              "Permutation: drop of the validation-fold SRCC when the feature is shuffled (mean over folds).", "",
              "| feature | gain | permutation |", "|---|---|---|"]
    lines += [f"| {c} | {'' if g is None else f'{g:.4f}'} | {'' if p is None else f'{p:.4f}'} |" for c, g, p in rows[:top]]
    lines += ["", "![importance](importance.png)", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    written.append(path)
    return written


def _plot(rows, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.3 * len(names) + 1.5), sharey=True)
    for ax, idx, label in ((axes[0], 1, "share of split gain"), (axes[1], 2, "SRCC drop when shuffled")):
        vals = [np.nan if r[idx] is None else r[idx] for r in rows][::-1]
        ax.barh(range(len(names)), np.nan_to_num(vals), color="#4477aa")
        ax.set_xlabel(label)
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    fig.suptitle(f"feature importance: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
