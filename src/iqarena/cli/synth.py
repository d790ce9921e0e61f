"""`iqarena synth REFS_DIR -o DIR`: a PIPAL-layout training set made from any folder of photos (see docs/synth.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError

#: the flag of each option of make_synthetic_set that an error can name (cli.OPTION_FLAGS holds the shared ones)
FLAGS = {"label": "--label", "levels": "--levels", "per_ref": "--per-ref", "seed": "--seed", "size": "--max-side",
         "distortions": "--distortions", "out_dir": "-o/--output", "overwrite": "--overwrite",
         "batch_size": "--batch-size", "device": "--device"}


def register(app: typer.Typer) -> None:
    from ..datasets.synth import DISTORTIONS

    names = ", ".join(f"{d.code} {d.name}" for d in sorted(DISTORTIONS.values(), key=lambda d: d.code))

    @app.command("synth")
    def synth_cmd(
        refs_dir: Path = typer.Argument(..., help="folder of reference photos (PNG, BMP, JPEG, ...)"),
        output: Path = typer.Option(..., "-o", "--output",
                                    help="folder to write (Train_Ref/, Train_Dis/, Train_Label/)"),
        label: str = typer.Option("ms_ssim", "--label",
                                  help="full-reference metric(s) for the labels, comma-separated (z-scores averaged)"),
        levels: int = typer.Option(5, "--levels", help="levels per distortion (1-10)"),
        per_ref: Optional[int] = typer.Option(
            None, "--per-ref", help="a seeded random subset of this many type x level images per reference"),
        seed: int = typer.Option(0, "--seed", help="random seed: the same seed writes byte-identical files"),
        max_side: Optional[int] = typer.Option(None, "--max-side", help="shrink references to this longest side"),
        distortions: str = typer.Option("all", "--distortions",
                                        help=f"comma-separated names or codes, or all: {names}"),
        device: str = typer.Option("cpu", "--device", help="where the label metrics run: cpu or cuda"),
        batch_size: int = typer.Option(8, "--batch-size", help="images per metric call"),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="replace a previous synthetic set in DIR (files it did not make are kept)"),
    ) -> None:
        """Make a synthetic full-reference training set in the PIPAL layout: distorted copies of REFS_DIR's photos,
        labelled by full-reference metrics on an Elo-like 1000..2000 scale."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from ..datasets.synth import make_synthetic_set

        with Progress(TextColumn("synthesising"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True) as bar:
            task = bar.add_task("synthesising", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                ds = make_synthetic_set(refs_dir, output, distortions=None if distortions == "all" else distortions,
                                        levels=levels, per_ref=per_ref, seed=seed, size=max_side, label=label,
                                        overwrite=overwrite, device=device, batch_size=batch_size, progress=advance)
            except InputError as exc:
                flag = FLAGS.get(exc.option or "")
                if flag is None:
                    raise
                raise InputError(f"{exc} (command line: {flag})") from None
        typer.echo(f"wrote {ds.describe()} to {output}; settings and label recipe in {output / 'synth.json'}",
                   err=True)
