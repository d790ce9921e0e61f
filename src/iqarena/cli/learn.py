"""`iqarena train` (a config -> a run folder) and `iqarena predict` (a model -> output.txt / submission zip)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train_cmd(
        ctx: typer.Context,
        resume: bool = typer.Option(False, "--resume", help="continue the run in train.out from its last.pt"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace the run files of train.out"),
    ) -> None:
        """Train a model: iqarena train [CONFIG.toml] [--section.key VALUE ...] (docs/learning.md).

        Every config key is also a flag: --optim.lr 1e-3 --train.epochs 5 --data.root D (short: --root, --labels,
        --out, --device, --epochs)."""
        from ..models.config import load_config, parse_flags
        from ..models.train import train

        args = list(ctx.args)
        config = Path(args.pop(0)) if args and not args[0].startswith("--") else None
        cfg = load_config(config, parse_flags(args))
        res = train(cfg, resume=resume, overwrite=overwrite, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"best validation main score {res.best_main:.4f} at epoch {res.best_epoch}; "
                   f"checkpoints in {res.out} (best.pt, last.pt)", err=True)

    @app.command("export")
    def export_cmd(
        checkpoint: Path = typer.Argument(..., help="a run's checkpoint (best.pt or last.pt)"),
        output: Path = typer.Option(..., "--output", "-o", help="the file of the trained part"),
        full_precision: bool = typer.Option(False, "--float32", help="keep float32 (default: float16 weights)"),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """Write the trained part of a checkpoint (what differs from the pretrained trunk): a model's
        trained=FILE option loads it."""
        from ..models.train import export_trained

        path = export_trained(checkpoint, output, half=not full_precision, overwrite=overwrite)
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", err=True)

    @app.command("predict")
    def predict_cmd(
        model: str = typer.Argument(..., help="a checkpoint (run/best.pt) or a registered model or metric name"),
        dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="a dataset reader (pipal, csv ...)"),
        root: Optional[Path] = typer.Option(None, "--root", help="the dataset's folder"),
        split: Optional[str] = typer.Option(None, "--split", help="train, val, test or all"),
        labels: Optional[Path] = typer.Option(None, "--labels", help="label or name list (csv dataset, PIPAL)"),
        dist: Optional[Path] = typer.Option(None, "--dist", help="distorted image file or folder"),
        ref: Optional[Path] = typer.Option(None, "--ref", help="reference file or folder (paired by name)"),
        output: Path = typer.Option(Path("output.txt"), "--output", "-o", help="the name,score file to write"),
        submission: Optional[Path] = typer.Option(None, "--submission", help="also write this zip "
                                                  "(output.txt + readme.txt)"),
        extra_data: bool = typer.Option(False, "--extra-data/--no-extra-data", help="readme: trained with extra data"),
        description: str = typer.Option("", "--description", help="readme: other description"),
        test_crop: Optional[int] = typer.Option(None, "--test-crop", help="crop side for a test-time ensemble "
                                                "(0: whole images); default: the model's own"),
        test_layout: Optional[str] = typer.Option(None, "--test-layout", help="five, centre, random or grid"),
        test_crops: Optional[int] = typer.Option(None, "--test-crops", help="crops for random/grid layouts"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        batch_size: int = typer.Option(8, "--batch-size", min=1),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace existing output files"),
    ) -> None:
        """Predict scores with a trained model and write the challenge's output.txt (and submission zip)."""
        import torch

        from ..datasets import load_dataset
        from ..execution import dataset_items, pair_items
        from ..io import collect_pairs, output_path
        from ..models.predict import predict, write_predictions

        output_path(output, overwrite)
        if submission is not None:
            output_path(submission, overwrite)
        if dataset is not None:
            items = dataset_items(load_dataset(dataset, root, split=split, labels=labels))
        elif dist is not None:
            items = pair_items(collect_pairs(dist, ref))
        else:
            raise InputError("nothing to predict: give --dataset NAME --root DIR, or --dist (and --ref).")
        options = {k: v for k, v in (("test_crop", test_crop), ("test_layout", test_layout),
                                     ("test_crops", test_crops)) if v is not None}
        scores, seconds = predict(model, items, device=device, batch_size=batch_size, options=options,
                                  progress=len(items) > 1)
        names = write_predictions(output, [it.key for it in items], scores, seconds=seconds, submission=submission,
                                  gpu=torch.device(device).type == "cuda", extra_data=extra_data,
                                  description=description, overwrite=overwrite)
        typer.echo(f"wrote {len(names)} predictions to {output} ({seconds * 1000:.1f} ms per image)", err=True)
        if submission is not None:
            typer.echo(f"wrote {submission}", err=True)
