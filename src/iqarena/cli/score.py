"""`iqarena metrics`, `iqarena score` and `iqarena demo`."""

from __future__ import annotations

import csv
import io
import json
import math
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..execution import EXECUTORS, ScoreRow, get_executor, pair_items, score_pairs
from ..io import collect_pairs, output_path
from ..metrics import available_metrics, expand_metrics, get_info, list_metrics


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def executor_options(executor: str, address: str | None, workers: int | None) -> dict:
    """--address and --workers as executor options (only those given, so any plugin executor still fits)."""
    if address is not None and EXECUTORS.resolve(executor) == "local":
        raise InputError("--address names a Ray cluster; add --executor ray (the local executor scores here).")
    return {k: v for k, v in (("address", address), ("workers", workers)) if v is not None}


def _note(r: ScoreRow) -> str:
    """Why a score is NaN or infinite (the metric's documented cause), or "" for a finite score."""
    return "" if math.isfinite(r.score) else get_info(r.metric).nonfinite_cause(r.score)


def _render(rows: list[ScoreRow], fmt: Format) -> str:
    if fmt is Format.json:
        return json.dumps([{**r.as_dict(), **({"note": _note(r)} if _note(r) else {})} for r in rows], indent=1)
    if fmt is Format.csv:
        buf = io.StringIO()
        noted = any(not math.isfinite(r.score) for r in rows)  # a 'note' column only where a score needs one
        w = csv.DictWriter(buf, ["dist", "ref", "metric", "score"] + ["note"] * noted, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r.as_dict(), "score": repr(r.score), **({"note": _note(r)} if noted else {})})
        return buf.getvalue()
    metrics = list(dict.fromkeys(r.metric for r in rows))
    table = Table(show_header=True, header_style="bold")
    table.add_column("dist")
    for m in metrics:
        arrow = "↑" if get_info(m).higher_better else "↓"
        table.add_column(f"{m} {arrow}", justify="right")
    by_image: dict[str, dict[str, float]] = {}
    for r in rows:
        by_image.setdefault(r.dist, {})[r.metric] = r.score
    for dist, scores in by_image.items():
        table.add_row(Path(dist).name, *(_fmt(scores.get(m)) for m in metrics))
    buf = io.StringIO()
    Console(file=buf, width=max(100, 14 * (len(metrics) + 1)), force_terminal=False).print(table)
    notes = {(r.metric, _fmt(r.score)): _note(r) for r in rows if not math.isfinite(r.score)}
    for (m, v), why in notes.items():  # one footnote per metric and kind of value
        buf.write(f"{v} {m}: {why}\n")
    return buf.getvalue()


def _min_size(info) -> str:
    """The smallest image the metric scores with its default options, e.g. ``11x11``."""
    try:
        m = info.min_side()
    except (KeyError, TypeError, ValueError):
        return "?"
    return f"{m}x{m}"


def _fmt(v: float | None) -> str:
    """A table cell; NaN and infinities carry a * that a footnote under the table explains."""
    if v is None:
        return ""
    if not math.isfinite(v):
        return "nan*" if math.isnan(v) else "inf*" if v > 0 else "-inf*"
    return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def register(app: typer.Typer) -> None:
    @app.command("metrics")
    def metrics_cmd() -> None:
        """List every metric: kind, direction, score range, smallest image (height and width), parameter files."""
        from ..weights import is_present

        table = Table(show_header=True, header_style="bold")
        for col in ("name", "kind", "better", "range", "min size", "parameter files", "colour"):
            table.add_column(col, no_wrap=col == "min size", min_width=36 if col == "parameter files" else None)
        for n in list_metrics():
            i = get_info(n)
            files = ", ".join(w if is_present(w) else f"{w} (missing)" for w in i.weights) or "none"
            if not i.trained:
                files += " (untrained: train it, then use its checkpoint)"
            lo, hi = i.score_range
            table.add_row(n, "full-reference" if i.kind == "fr" else "no-reference",
                          "higher" if i.higher_better else "lower", f"[{lo:g}, {hi:g}]", _min_size(i), files,
                          i.colour)
        Console(width=160).print(table)

    @app.command("score")
    def score_cmd(
        metric: List[str] = typer.Option(..., "-m", "--metric", help="metric name, repeatable; 'all' for every available one"),
        dist: Optional[Path] = typer.Option(None, "--dist", help="distorted image file or folder"),
        ref: Optional[Path] = typer.Option(None, "--ref", help="reference image file or folder (paired by file name)"),
        pairs: Optional[Path] = typer.Option(None, "--pairs", help="CSV with columns dist,ref"),
        fmt: Format = typer.Option(Format.table, "--format", help="output format"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        batch_size: int = typer.Option(8, "--batch-size", min=1, help="images per batch"),
        executor: str = typer.Option("local", "--executor", help="where to score: local, ray (more by plugins)"),
        address: Optional[str] = typer.Option(None, "--address", help="ray: a running cluster (auto, HOST:PORT, "
                                              "ray://HOST:10001); without it, a local one of --workers CPUs"),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="ray: worker processes; local: "
                                              "image-reading threads"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="write to this file instead of the screen"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing an existing --output file"),
    ) -> None:
        """Score distorted images (against references) with one or more metrics."""
        if output is not None:
            output_path(output, overwrite)
        items = pair_items(collect_pairs(dist, ref, pairs))
        names = expand_metrics(metric, have_ref=all(it.ref is not None for it in items))
        ex_options = executor_options(executor, address, workers)
        with get_executor(executor, device=device, batch_size=batch_size, **ex_options) as ex:
            rows = score_pairs(items, names, executor=ex, progress=len(items) > 1)
        text = _render(rows, fmt)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)
            typer.echo(f"wrote {len(rows)} scores to {output}", err=True)

    @app.command("demo")
    def demo_cmd(device: str = typer.Option("cpu", "--device")) -> None:
        """Score the bundled sample (five TID2013 pairs) with every available metric."""
        sample = resources.files("iqarena") / "sample"
        with resources.as_file(sample) as root:
            items = pair_items(collect_pairs(root / "dist", root / "ref"))
            names = available_metrics()
            typer.echo(f"scoring {len(items)} sample pairs with {len(names)} metrics: {', '.join(names)}", err=True)
            rows = score_pairs(items, names, device=device, batch_size=8)
        typer.echo(_render(rows, Format.table), nl=False)
