"""Benchmark reports: the challenge's Table 1 (metric, SRCC, PLCC, main score, rank, with confidence
intervals), significance between metrics, scatter plots with the fitted curve (Figure 3), and the
per-group / per-algorithm analysis (Figure 4), written as Markdown, CSV, JSON and PNG."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from ..datasets import Dataset
from ..errors import InputError
from .stats import (Comparison, Interval, Result, bootstrap_draws, compare_oriented, evaluate, intervals, orient)

MIN_GROUP = 5          # fewest images (or systems) a per-group correlation is computed on
ALL_PAIRS_UP_TO = 15   # with more metrics, only neighbours in the ranking are tested


@dataclass
class Scores:
    """One column of scores to evaluate: a registered metric or an external method's predictions."""

    name: str
    values: np.ndarray
    higher_better: bool
    kind: str = "external"       # fr, nr or external
    causes: dict = field(default_factory=dict)  # "nan"/"inf"/"-inf" -> why (a metric's MetricInfo.nonfinite)


@dataclass
class MetricEval:
    name: str
    kind: str
    higher_better: bool
    result: Result
    ci: dict[str, Interval] | None
    mask: np.ndarray = field(repr=False)     # rows with a finite score
    q: np.ndarray = field(repr=False)        # oriented scores on those rows
    draws: np.ndarray = field(repr=False)
    groups: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    systems: dict | None = None
    rank: int = 0
    dropped_why: dict[str, dict] = field(default_factory=dict)  # "nan"/"inf"/"-inf" -> {"rows": n, "cause": text}

    @property
    def dropped(self) -> int:
        return int((~self.mask).sum())


def dropped_rows(col: Scores) -> dict[str, dict]:
    """The rows a column loses to non-finite scores, by kind of value, with the cause the metric documents."""
    v = col.values[~np.isfinite(col.values)]
    counts = {"nan": int(np.isnan(v).sum()), "inf": int((v > 0).sum()), "-inf": int((v < 0).sum())}
    return {k: {"rows": n, "cause": col.causes.get(k) or "no documented cause for this metric"}
            for k, n in counts.items() if n}


def dropped_text(name: str, why: dict[str, dict]) -> str:
    """One line: how many rows a metric lost and why."""
    total = sum(w["rows"] for w in why.values())
    parts = "; ".join(f"{w['rows']} {k} ({w['cause']})" for k, w in why.items())
    return f"{name}: {total} image(s) with a non-finite score left out of its statistics: {parts}"


@dataclass
class Report:
    dataset: Dataset
    metrics: list[MetricEval]
    comparisons: list[Comparison]
    settings: dict
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- analysis

def analyse(ds: Dataset, columns: list[Scores], *, mapping: str = "poly3", n_boot: int = 1000, seed: int = 0,
            level: float = 0.95, cluster_by_reference: bool = False) -> Report:
    """Evaluate every score column against the dataset's labels and rank them by main score."""
    if not columns:
        raise InputError("nothing to evaluate: give metrics or external predictions.", option="metrics")
    y_all = ds.scores
    clusters_all = np.array([r.content for r in ds.rows]) if cluster_by_reference else None
    notes = list(ds.notes)
    evals = []
    for col in columns:
        if col.values.shape != y_all.shape:
            raise InputError(f"{col.name}: {col.values.size} scores for {y_all.size} images.")
        mask = np.isfinite(col.values)
        why = dropped_rows(col)
        if mask.sum() < 5:
            raise InputError(f"{col.name}: only {int(mask.sum())} finite scores; at least 5 are needed"
                             + (f" ({dropped_text(col.name, why)})." if why else "."))
        if why:
            notes.append(dropped_text(col.name, why))
        q = orient(col.values[mask], col.higher_better, ds.higher_better)
        y = y_all[mask]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            res = evaluate(q, y, higher_better=True, mapping=mapping)
        if res.mapping.note:
            notes.append(f"{col.name}: {res.mapping.note}")
        del caught
        draws = np.empty((0, 2))
        ci = None
        if n_boot:
            clusters = clusters_all[mask] if clusters_all is not None else None
            draws = bootstrap_draws(q, y, mapping=mapping, n_boot=n_boot, seed=seed, clusters=clusters,
                                    fitted=res.mapping)
            ci = intervals(draws, level)
        ev = MetricEval(col.name, col.kind, col.higher_better, res, ci, mask, q, draws, dropped_why=why)
        ev.groups = _per_group(ds, ev, mapping)
        ev.systems = _per_system(ds, ev, col.values, mapping)
        evals.append(ev)
    evals.sort(key=lambda e: -_key(e.result.main))
    for i, ev in enumerate(evals):  # competition ranking: equal main scores share a rank
        ev.rank = evals[i - 1].rank if i and np.isclose(ev.result.main, evals[i - 1].result.main) else i + 1
    comps = _comparisons(ds, evals, mapping, n_boot, seed, level, clusters_all)
    settings = {"mapping": mapping, "bootstrap": n_boot, "seed": seed, "level": level,
                "bootstrap_unit": "reference" if cluster_by_reference else "image",
                "comparisons": "all pairs" if len(evals) <= ALL_PAIRS_UP_TO else "neighbours in the ranking"}
    return Report(ds, evals, comps, settings, notes)


def _key(v: float) -> float:
    return -math.inf if v is None or math.isnan(v) else v


def _per_group(ds: Dataset, ev: MetricEval, mapping: str) -> dict[str, tuple[int, float, float]]:
    groups = np.array(ds.groups)[ev.mask]
    y = ds.scores[ev.mask]
    out = {}
    for g in sorted(set(groups.tolist()) - {""}):
        sel = groups == g
        if sel.sum() < MIN_GROUP:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = evaluate(ev.q[sel], y[sel], mapping=mapping)
        out[g] = (int(sel.sum()), r.srcc, r.plcc)
    return out


def _per_system(ds: Dataset, ev: MetricEval, raw: np.ndarray, mapping: str) -> dict | None:
    """Per-algorithm analysis (Figure 4): mean label and mean score of each system, correlated across systems."""
    systems = np.array([r.system for r in ds.rows])[ev.mask]
    if not systems.size or (systems == "").all():
        return None
    names = sorted(set(systems.tolist()) - {""})
    if len(names) < MIN_GROUP:
        return None
    y, x = ds.scores[ev.mask], raw[ev.mask]
    idx = {s: i for i, s in enumerate(names)}
    code = np.array([idx.get(s, -1) for s in systems])
    keep = code >= 0
    count = np.bincount(code[keep], minlength=len(names))
    mean_y = np.bincount(code[keep], y[keep], minlength=len(names)) / count
    mean_x = np.bincount(code[keep], x[keep], minlength=len(names)) / count
    groups = {}
    for s, g in zip(systems, np.array(ds.groups)[ev.mask]):
        groups.setdefault(s, g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = evaluate(orient(mean_x, ev.higher_better, ds.higher_better), mean_y, mapping=mapping)
    return {"n": len(names), "srcc": r.srcc, "plcc": r.plcc, "names": names, "mean_score": mean_x.tolist(),
            "mean_label": mean_y.tolist(), "group": [groups.get(s, "") for s in names], "mapping": r.mapping}


def _comparisons(ds: Dataset, evals: list[MetricEval], mapping: str, n_boot: int, seed: int, level: float,
                 clusters_all) -> list[Comparison]:
    if len(evals) < 2:
        return []
    pairs = list(combinations(evals, 2)) if len(evals) <= ALL_PAIRS_UP_TO else list(zip(evals, evals[1:]))
    y_all = ds.scores
    out = []
    for a, b in pairs:
        both = a.mask & b.mask
        qa = orient(_values(a, both), True, True)
        qb = orient(_values(b, both), True, True)
        y = y_all[both]
        if both.all() or (both == a.mask).all() and (both == b.mask).all():
            da, db = a.draws, b.draws
        elif n_boot:
            cl = clusters_all[both] if clusters_all is not None else None
            da = bootstrap_draws(qa, y, mapping=mapping, n_boot=n_boot, seed=seed, clusters=cl)
            db = bootstrap_draws(qb, y, mapping=mapping, n_boot=n_boot, seed=seed, clusters=cl)
        else:
            da = db = np.empty((0, 2))
        out.append(compare_oriented(qa, qb, y, da, db, a=a.name, b=b.name, mapping=mapping, level=level))
    return out


def _values(ev: MetricEval, rows: np.ndarray) -> np.ndarray:
    """The oriented scores of ``ev`` on the dataset rows selected by ``rows`` (a subset of its mask)."""
    full = np.full(ev.mask.shape, np.nan)
    full[ev.mask] = ev.q
    return full[rows]


# ---------------------------------------------------------------- writing

def _f(v, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _with_ci(v: float, ci: Interval | None) -> str:
    if ci is None or math.isnan(ci.low):
        return _f(v)
    return f"{_f(v)} [{_f(ci.low, 3)}, {_f(ci.high, 3)}]"


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _kind(ev: MetricEval) -> str:
    return {"fr": "FR", "nr": "NR"}.get(ev.kind, "external")


def table_markdown(rep: Report) -> str:
    level = int(round(rep.settings["level"] * 100))
    ci = f" [{level}% CI]" if rep.settings["bootstrap"] else ""
    head = f"| Rank | Metric | Type | Main Score{ci} | SRCC{ci} | PLCC{ci} | KRCC | RMSE | n |"
    lines = [head, "|" + "---|" * 9]
    for ev in rep.metrics:
        r, c = ev.result, ev.ci or {}
        arrow = "↑" if ev.higher_better else "↓"
        lines.append(f"| {ev.rank} | {ev.name} {arrow} | {_kind(ev)} | {_with_ci(r.main, c.get('main'))} | "
                     f"{_with_ci(r.srcc, c.get('srcc'))} | {_with_ci(r.plcc, c.get('plcc'))} | {_f(r.krcc)} | "
                     f"{_f(r.rmse, 4 if abs(r.rmse) < 10 else 2)} | {r.n} |")
    return "\n".join(lines) + "\n"


def table_rows(rep: Report) -> tuple[list[str], list[list]]:
    header = ["rank", "metric", "kind", "higher_better", "n", "dropped", "main", "main_low", "main_high", "srcc",
              "srcc_low", "srcc_high", "plcc", "plcc_low", "plcc_high", "krcc", "rmse", "plcc_raw", "mapping"]
    rows = []
    for ev in rep.metrics:
        r, c = ev.result, ev.ci or {}
        cells = [ev.rank, ev.name, ev.kind, ev.higher_better, r.n, ev.dropped]
        for key, v in (("main", r.main), ("srcc", r.srcc), ("plcc", r.plcc)):
            iv = c.get(key)
            cells += [v, iv.low if iv else "", iv.high if iv else ""]
        cells += [r.krcc, r.rmse, r.plcc_raw, r.mapping.kind]
        rows.append(cells)
    return header, rows


def significance_markdown(rep: Report) -> str:
    if not rep.comparisons:
        return "Only one method: nothing to compare.\n"
    lines = ["| A | B | Δ main (A−B) | paired bootstrap CI | p (bootstrap) | p (Williams, PLCC) | p (Williams, SRCC) |",
             "|---|---|---|---|---|---|---|"]
    floor = 2 / (rep.settings["bootstrap"] + 1)  # the smallest p-value B resamples can give
    for c in rep.comparisons:
        iv = c.diff_interval
        ci = "" if math.isnan(iv.low) else f"[{_f(iv.low, 3)}, {_f(iv.high, 3)}]"
        boot = f"≤{floor:.4f}" if c.p_bootstrap <= floor * (1 + 1e-9) else _p(c.p_bootstrap)
        lines.append(f"| {c.a} | {c.b} | {_f(c.diff_main)} | {ci} | {boot} | {_p(c.p_plcc)} | {_p(c.p_srcc)} |")
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return ""
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def groups_markdown(rep: Report) -> str:
    groups = sorted({g for ev in rep.metrics for g in ev.groups})
    if not groups:
        return ""
    lines = ["| Metric | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for ev in rep.metrics:
        cells = [f"{_f(ev.groups[g][1], 3)}" if g in ev.groups else "" for g in groups]
        lines.append(f"| {ev.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def systems_markdown(rep: Report) -> str:
    rows = [ev for ev in rep.metrics if ev.systems]
    if not rows:
        return ""
    lines = ["| Metric | systems | SRCC | PLCC |", "|---|---|---|---|"]
    for ev in sorted(rows, key=lambda e: -_key(e.systems["srcc"])):
        s = ev.systems
        lines.append(f"| {ev.name} | {s['n']} | {_f(s['srcc'])} | {_f(s['plcc'])} |")
    return "\n".join(lines) + "\n"


def report_json(rep: Report) -> dict:
    ds = rep.dataset
    out = {"dataset": {"name": ds.name, "split": ds.split, "root": str(ds.root), "images": len(ds),
                       "labels": ds.score_name, "labels_higher_better": ds.higher_better},
           "settings": rep.settings, "notes": rep.notes, "metrics": [], "comparisons": []}
    for ev in rep.metrics:
        item = {"rank": ev.rank, "metric": ev.name, "kind": ev.kind, "higher_better": ev.higher_better,
                "dropped": ev.dropped, "dropped_why": ev.dropped_why, **ev.result.as_dict(),
                "ci": {k: v.as_dict() for k, v in (ev.ci or {}).items()},
                "groups": {g: {"n": n, "srcc": s, "plcc": p} for g, (n, s, p) in ev.groups.items()}}
        if ev.systems:
            item["systems"] = {k: v for k, v in ev.systems.items() if k != "mapping"}
        out["metrics"].append(item)
    out["comparisons"] = [c.as_dict() for c in rep.comparisons]
    return _clean(out)


def _clean(x):
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


REPORT_FILES = ("report.md", "table.md", "table.csv", "table.json", "significance.csv", "groups.csv", "systems.csv",
                "scatter.png", "groups.png", "systems.png")


def write_report(rep: Report, folder: Path, *, command: str = "", plots: bool = True) -> list[Path]:
    """Write every report file into ``folder``; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        (folder / name).write_text(text)
        written.append(folder / name)

    put("table.md", table_markdown(rep))
    put("table.csv", _csv(*table_rows(rep)))
    put("table.json", json.dumps(report_json(rep), indent=1) + "\n")
    if rep.comparisons:
        put("significance.csv", _csv(["a", "b", "n", "diff_main", "diff_low", "diff_high", "p_bootstrap", "t_plcc",
                                      "p_plcc", "t_srcc", "p_srcc"],
                                     [[c.a, c.b, c.n, c.diff_main, c.diff_interval.low, c.diff_interval.high,
                                       c.p_bootstrap, c.t_plcc, c.p_plcc, c.t_srcc, c.p_srcc] for c in rep.comparisons]))
    if any(ev.groups for ev in rep.metrics):
        put("groups.csv", _csv(["metric", "group", "n", "srcc", "plcc"],
                               [[ev.name, g, n, s, p] for ev in rep.metrics for g, (n, s, p) in ev.groups.items()]))
    if any(ev.systems for ev in rep.metrics):
        put("systems.csv", _csv(["metric", "system", "group", "mean_score", "mean_label"],
                                [[ev.name, n, g, x, y] for ev in rep.metrics if ev.systems
                                 for n, g, x, y in zip(ev.systems["names"], ev.systems["group"],
                                                       ev.systems["mean_score"], ev.systems["mean_label"])]))
    figures = []
    if plots:
        from . import plots as P

        figures.append(P.scatter(rep, folder / "scatter.png"))
        if any(ev.groups for ev in rep.metrics):
            figures.append(P.groups(rep, folder / "groups.png"))
        if any(ev.systems for ev in rep.metrics):
            figures.append(P.systems(rep, folder / "systems.png"))
        written += figures
    put("report.md", report_markdown(rep, command, {p.name for p in figures}))
    return written


def report_markdown(rep: Report, command: str = "", figures: set[str] = frozenset()) -> str:
    ds, st = rep.dataset, rep.settings
    mapping = {"poly3": "third-order polynomial (NTIRE 2021)", "logistic4": "4-parameter logistic (VQEG)",
               "logistic5": "5-parameter logistic (VQEG)", "linear": "straight line", "none": "no mapping"}[st["mapping"]]
    out = [f"# {ds.name}{' ' + ds.split if ds.split else ''}: metric benchmark", ""]
    out.append(f"{ds.describe()}.")
    out.append("")
    out.append(f"Protocol: SRCC; PLCC after a {mapping} fitted from each metric's scores to the "
               f"{ds.score_name}; main score = SRCC + PLCC (NTIRE 2021). Lower-is-better metrics are negated "
               "before the statistics, so every correlation is positive for a good metric.")
    if st["bootstrap"]:
        out.append(f"Intervals: {int(round(st['level'] * 100))}% percentile bootstrap, {st['bootstrap']} resamples "
                   f"by {st['bootstrap_unit']}, seed {st['seed']}, mapping refitted on every resample.")
    out += ["", "## Table 1", "", table_markdown(rep)]
    if rep.comparisons:
        out += ["## Significance", "",
                f"Differences between metrics on the same images ({st['comparisons']}): the paired bootstrap "
                "of the main score, and Williams' test for dependent correlations on the fitted PLCC and on "
                "SRCC (n − 3 degrees of freedom). Not corrected for multiple comparisons.", "",
                significance_markdown(rep)]
    if "scatter.png" in figures:
        out += ["## Scores against labels (Figure 3)", "", "![scatter plots](scatter.png)", ""]
    g = groups_markdown(rep)
    if g:
        out += ["## SRCC per distortion group (Figure 4, by group)", "", g]
        if "groups.png" in figures:
            out += ["![per-group SRCC](groups.png)", ""]
    s = systems_markdown(rep)
    if s:
        out += ["## Per algorithm (Figure 4)", "",
                "Each system (algorithm and setting, the same across contents) is one point: its mean score "
                "against its mean label.", "", s]
        if "systems.png" in figures:
            out += ["![per-algorithm analysis](systems.png)", ""]
    if rep.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    if command:
        out += ["## Reproduce", "", "```bash", command, "```", ""]
    return "\n".join(out)
