"""`iqarena evaluate`: score a dataset with metrics (cached, resumable) and/or read external
predictions, then write the benchmark report (Table 1, significance, Figures 3 and 4)."""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError
from ..evaluate.stats import MAPPINGS


#: the mappings of the statistics module, as command-line choices
MappingChoice = Enum("MappingChoice", {m: m for m in MAPPINGS}, type=str)


class Unit(str, Enum):
    image = "image"
    reference = "reference"


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise InputError(f"--split-fractions takes numbers separated by commas, e.g. 0.6,0.2,0.2; got "
                         f"{text!r}.") from None


def _prediction_sources(items: list[str]) -> list[tuple[str, Path]]:
    """``FILE`` or ``NAME=FILE``; the name defaults to the file's stem (its folder's name for output.txt/zip)."""
    out = []
    for item in items:
        name, sep, file = item.partition("=")
        path = Path(file if sep else item)
        if not sep:
            name = path.parent.name if path.stem.lower() == "output" and path.parent.name else path.stem
        out.append((name, path))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"two --predictions share a name ({', '.join(names)}); name them with NAME=FILE.")
    return out


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="pipal, tid2013, tid2008, live, csiq, "
                                              "kadid10k, clive, koniq10k or csv"),
        root: Optional[Path] = typer.Option(None, "--root", help="the dataset's folder (official layout)"),
        split: Optional[str] = typer.Option(None, "--split", help="train, val, test (official where the set has "
                                            "them, else a seeded split by reference) or all"),
        labels: Optional[Path] = typer.Option(None, "--labels", help="label file: for --dataset csv, a PIPAL list, "
                                              "or the labels of --predictions"),
        labels_lower_better: bool = typer.Option(False, "--labels-lower-better",
                                                 help="the --labels scores are DMOS-like (lower is better)"),
        metric: List[str] = typer.Option([], "-m", "--metric", help="metric name, repeatable; 'all' for every "
                                         "available one that fits the dataset"),
        predictions: List[str] = typer.Option([], "--predictions", "-p", help="[NAME=]FILE of 'name,score' lines "
                                              "(or a submission zip with output.txt), repeatable"),
        predictions_lower_better: bool = typer.Option(False, "--predictions-lower-better",
                                                      help="the --predictions scores are lower-is-better"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="report folder (default "
                                              "evaluate-DATASET[-SPLIT])"),
        mapping: MappingChoice = typer.Option("poly3", "--mapping", help="fit before PLCC"),
        n_boot: int = typer.Option(1000, "--bootstrap", min=0, help="bootstrap resamples for the intervals (0: none)"),
        unit: Unit = typer.Option(Unit.image, "--bootstrap-by", help="resample images, or whole reference contents"),
        seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
        level: float = typer.Option(0.95, "--level", help="confidence level of the intervals"),
        split_seed: int = typer.Option(0, "--split-seed", help="seed of a split by reference"),
        split_fractions: str = typer.Option("0.6,0.2,0.2", "--split-fractions", help="train,val,test fractions"),
        training_images: bool = typer.Option(False, "--clive-training-images",
                                             help="CLIVE: keep the 7 rater-training images t1..t7"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        batch_size: int = typer.Option(8, "--batch-size", min=1, help="images per batch"),
        executor: str = typer.Option("local", "--executor", help="where to score: local, ray (more by plugins)"),
        address: Optional[str] = typer.Option(None, "--address", help="ray: a running cluster (auto, HOST:PORT, "
                                              "ray://HOST:10001); without it, a local one of --workers CPUs"),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="ray: worker processes; local: "
                                              "image-reading threads"),
        store: Optional[Path] = typer.Option(None, "--store", help="score store folder (default $IQARENA_STORE, "
                                             "else the cache's scores/), shared by every run"),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="draw the figures"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing the report of another run"),
    ) -> None:
        """Benchmark metrics (and external predictions) on a dataset: NTIRE 2021 Table 1 and figures."""
        from ..datasets import DATASETS, load_dataset
        from ..datasets.base import Dataset
        from ..datasets.table import read_rows
        from ..evaluate.benchmark import Predictions, benchmark
        from ..execution import ScoreStore, get_executor
        from .score import executor_options

        options = {}
        key = DATASETS.resolve(dataset) if dataset else None
        if key == "clive" and training_images:
            options["training"] = True
        if dataset is not None:
            ds = load_dataset(dataset, root, split=split, labels=labels, seed=split_seed,
                              fractions=_fractions(split_fractions), **options)
            if key == "csv" and labels_lower_better:
                from dataclasses import replace

                ds = replace(ds, higher_better=False)
        elif labels is not None:
            if metric:
                raise InputError("metrics need images: give --dataset (csv with --labels for any table of images).")
            rows = read_rows(labels)
            ds = Dataset("labels", labels.parent.resolve(), tuple(rows), higher_better=not labels_lower_better,
                         score_name="score", notes=(f"labels from {labels.name}",))
        else:
            raise InputError("no labels: give --dataset NAME --root PATH, or --labels FILE with --predictions.")
        out = output or Path(f"evaluate-{ds.name}" + (f"-{ds.split}" if ds.split else ""))
        preds = [Predictions(n, p, not predictions_lower_better) for n, p in _prediction_sources(predictions)]
        command = "iqarena " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        ex_options = executor_options(executor, address, workers)
        with get_executor(executor, device=device, batch_size=batch_size, **ex_options) as ex:
            benchmark(ds, metric, preds, output=out, store=ScoreStore(store), executor=ex, mapping=mapping.value,
                      n_boot=n_boot, seed=seed, level=level, cluster_by_reference=unit is Unit.reference,
                      plots=plots, overwrite=overwrite, command=command, options=options, progress=True,
                      log=lambda msg: typer.echo(msg, err=True))
        typer.echo((out / "table.md").read_text(), nl=False)
        typer.echo(f"report: {out / 'report.md'}", err=True)
