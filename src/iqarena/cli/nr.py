"""`iqarena niqe-fit` (a pristine NIQE model from a folder) and `iqarena brisque-train` (a BRISQUE SVR from labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress

from ..datasets.table import read_rows
from ..errors import InputError
from ..io import list_images, output_path


def _read_labels(labels: Path, image_column: str, score_column: str, root: Optional[Path]):
    """Image files (relative to ``root``, default the table's folder) and scores from a label table."""
    rows = read_rows(labels, score_column, image_column=image_column)
    base = root or labels.parent
    files = [Path(r.dist) if Path(r.dist).is_absolute() else base / r.dist for r in rows]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{len(missing)} image(s) listed in {labels} not found, e.g. {missing[0]}. Image paths are "
                         f"relative to {base} (change with --root).")
    return files, [r.score for r in rows]


def register(app: typer.Typer) -> None:
    @app.command("niqe-fit")
    def niqe_fit_cmd(
        folder: Path = typer.Argument(..., help="folder of pristine (undistorted, sharp) images"),
        output: Path = typer.Option(..., "--output", "-o", help="model file to write (.mat, as modelparameters.mat)"),
        block_size: int = typer.Option(96, "--block-size", min=2, help="block size in pixels (the release: 96)"),
        sharpness_threshold: float = typer.Option(0.75, "--sharpness-threshold",
                                                  help="keep blocks sharper than this x the image's sharpest"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing an existing --output file"),
    ) -> None:
        """Fit a NIQE pristine model from a folder of images (the release's estimatemodelparam.m).

        Score with it from Python: iqarena.create_metric("niqe", model="model.mat").
        """
        from ..metrics.niqe import estimate_niqe_model

        output_path(output, overwrite)
        files = list_images(folder)
        with Progress(transient=True) as bar:
            task = bar.add_task("NIQE features", total=len(files))
            model = estimate_niqe_model(files, block_size=block_size, sharpness_threshold=sharpness_threshold,
                                        progress=lambda: bar.advance(task))
        model.save(output, overwrite=overwrite)
        typer.echo(f"wrote a NIQE model fitted on {len(files)} images to {output}", err=True)

    @app.command("brisque-train")
    def brisque_train_cmd(
        labels: Path = typer.Argument(..., help="CSV with an image path column and a score column"),
        output: Path = typer.Option(..., "--output", "-o", help="folder to write allmodel and allrange into"),
        image_column: str = typer.Option("image", "--image-column", help="CSV column with image paths"),
        score_column: str = typer.Option("score", "--score-column", help="CSV column with the target scores"),
        root: Optional[Path] = typer.Option(None, "--root", help="folder the image paths are relative to "
                                                                 "(default: the CSV's folder)"),
        c: float = typer.Option(1024.0, "--c", help="SVR cost C (the release model: 1024)"),
        gamma: float = typer.Option(0.05, "--gamma", help="RBF kernel gamma (the release model: 0.05)"),
        epsilon: float = typer.Option(0.1, "--epsilon", help="SVR epsilon-tube (libsvm default 0.1)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing allmodel/allrange in --output"),
    ) -> None:
        """Train a BRISQUE model (RBF epsilon-SVR on the 36 BRISQUE features) from labelled images.

        The scores are predicted as given: to keep BRISQUE's lower-is-better convention, give DMOS or
        e.g. 100 - MOS. Score with it from Python: iqarena.create_metric("brisque", model="OUTPUT_FOLDER").
        """
        from ..metrics.brisque import train_brisque

        for name in ("allmodel", "allrange"):
            output_path(output / name, overwrite)
        files, scores = _read_labels(labels, image_column, score_column, root)
        with Progress(transient=True) as bar:
            task = bar.add_task("BRISQUE features", total=len(files))
            model = train_brisque(files, scores, c=c, gamma=gamma, epsilon=epsilon, output_dir=output,
                                  overwrite=overwrite, progress=lambda: bar.advance(task))
        typer.echo(f"wrote allmodel ({model.svr.coef.size} support vectors) and allrange to {output}", err=True)
