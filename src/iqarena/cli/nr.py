"""`iqarena niqe-fit` (a pristine NIQE model from a folder) and `iqarena brisque-train` (a BRISQUE SVR from labels)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress

from ..errors import InputError
from ..io import list_images, output_path


def _read_labels(labels: Path, image_column: str, score_column: str, root: Optional[Path]):
    if not labels.is_file():
        raise InputError(f"label file not found: {labels}.")
    base = root or labels.parent
    with labels.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if image_column not in cols or score_column not in cols:
            raise InputError(f"{labels} needs columns {image_column!r} and {score_column!r}; it has {', '.join(cols)}. "
                           "Use --image-column / --score-column to name yours.")
        files, scores = [], []
        for k, row in enumerate(reader, start=2):
            try:
                scores.append(float(row[score_column]))
            except ValueError:
                raise InputError(f"{labels} line {k}: score {row[score_column]!r} is not a number.") from None
            path = Path(row[image_column])
            files.append(path if path.is_absolute() else base / path)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{len(missing)} image(s) listed in {labels} not found, e.g. {missing[0]}. Image paths are "
                       f"relative to {base} (change with --root).")
    return files, scores


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
