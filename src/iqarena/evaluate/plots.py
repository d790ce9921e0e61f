"""Report figures, drawn with matplotlib's Agg canvas (no display needed): scatter plots of scores
against labels with the fitted curve (NTIRE 2021 Figure 3), per-group SRCC, and the per-algorithm
analysis (Figure 4)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .stats import orient


def _grid(n: int, cols: int = 4, size: float = 3.2) -> tuple[Figure, list]:
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(size * cols, size * rows * 0.95), dpi=110)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def scatter(rep, path: Path) -> Path:
    """One panel per metric: score (x) against label (y), and the fitted mapping as a curve."""
    ds = rep.dataset
    y_all = ds.scores
    fig, axes = _grid(len(rep.metrics))
    alpha = 0.6 if len(ds) < 500 else 0.3
    for ax, ev in zip(axes, rep.metrics):
        x = orient(ev.q, ev.higher_better, ds.higher_better)  # back to the metric's own scale
        y = y_all[ev.mask]
        ax.scatter(x, y, s=6 if len(x) < 2000 else 2, alpha=alpha, color="tab:blue", linewidths=0)
        xs = np.linspace(x.min(), x.max(), 256)
        curve = ev.result.mapping(orient(xs, ev.higher_better, ds.higher_better))
        ax.plot(xs, curve, color="tab:red", lw=1.5)
        lo, hi = y.min(), y.max()
        pad = 0.05 * (hi - lo or 1)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"{ev.name}  SRCC {ev.result.srcc:.3f}  PLCC {ev.result.plcc:.3f}", fontsize=8)
        ax.set_xlabel(f"{ev.name} ({'higher' if ev.higher_better else 'lower'} is better)", fontsize=7)
        ax.set_ylabel(ds.score_name, fontsize=7)
        ax.tick_params(labelsize=6)
    return _save(fig, path)


def groups(rep, path: Path) -> Path:
    """Heat map of SRCC per metric (rows, ranked) and distortion group (columns)."""
    names = sorted({g for ev in rep.metrics for g in ev.groups})
    data = np.array([[ev.groups[g][1] if g in ev.groups else np.nan for g in names] for ev in rep.metrics])
    fig = Figure(figsize=(max(4.0, 0.5 * len(names) + 2.5), max(2.5, 0.35 * len(rep.metrics) + 1.5)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(data, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(names)), names, fontsize=7, rotation=90 if len(names) > 12 else 0)
    ax.set_yticks(range(len(rep.metrics)), [ev.name for ev in rep.metrics], fontsize=7)
    ax.set_xlabel("group")
    if data.size <= 600:
        for (i, j), v in np.ndenumerate(data):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5.5)
    fig.colorbar(im, ax=ax, label="SRCC within the group")
    return _save(fig, path)


def systems(rep, path: Path) -> Path:
    """One panel per metric: every system (algorithm) as a point, mean score against mean label."""
    evs = [ev for ev in rep.metrics if ev.systems]
    ds = rep.dataset
    fig, axes = _grid(len(evs))
    for ax, ev in zip(axes, evs):
        s = ev.systems
        x, y = np.asarray(s["mean_score"]), np.asarray(s["mean_label"])
        gs = sorted(set(s["group"]))
        for g in gs:
            sel = np.array([h == g for h in s["group"]])
            ax.scatter(x[sel], y[sel], s=10, alpha=0.8, label=g or None, linewidths=0)
        xs = np.linspace(x.min(), x.max(), 256)
        ax.plot(xs, s["mapping"](orient(xs, ev.higher_better, ds.higher_better)), color="black", lw=1)
        ax.set_title(f"{ev.name}  SRCC {s['srcc']:.3f}  PLCC {s['plcc']:.3f}", fontsize=8)
        ax.set_xlabel(f"mean {ev.name}", fontsize=7)
        ax.set_ylabel(f"mean {ds.score_name}", fontsize=7)
        ax.tick_params(labelsize=6)
        if 1 < len(gs) <= 12:
            ax.legend(fontsize=5, title="group", title_fontsize=5, markerscale=0.8)
    return _save(fig, path)
