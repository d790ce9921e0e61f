"""`iqarena ensemble fit / predict / average / features / presets` (docs/ensembles.md)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError

DATASET = typer.Option(None, "--dataset", "-d", help="a dataset reader (pipal, clive, csv ...)")
ROOT = typer.Option(None, "--root", help="the dataset's folder")
SPLIT = typer.Option(None, "--split", help="train, val, test or all")
LABELS = typer.Option(None, "--labels", help="a label file (name,score[,ref] rows): the csv dataset")


def _dataset(dataset, root, split, labels, features: Path | None = None):
    """The labelled images: --dataset/--root, --labels, or the dataset of an evaluate run in --features."""
    from ..datasets import load_dataset
    from ..evaluate.run import read_run_file

    if dataset is not None:
        return load_dataset(dataset, root, split=split, labels=labels)
    if labels is not None:
        return load_dataset("csv", root, labels=labels)
    run = read_run_file(features) if features is not None and features.is_dir() else {}
    if run.get("identity", {}).get("dataset"):
        ident = run["identity"]
        return load_dataset(ident["dataset"], run.get("root"), split=ident.get("split") or None)
    raise InputError("no labels: give --labels FILE, or --dataset NAME --root DIR (a run folder in --features "
                     "names its own dataset).", option="labels")


def _params(pairs: list[str]) -> dict:
    import json

    out = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(f"--param takes KEY=VALUE, got {p!r}.", option="params")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def register(app: typer.Typer) -> None:
    ens = typer.Typer(help="Ensembles over metric scores and deep features (docs/ensembles.md).",
                      no_args_is_help=True)
    app.add_typer(ens, name="ensemble")

    @ens.command("fit")
    def fit_cmd(
        output: Path = typer.Option(..., "--output", "-o", help="the model folder to write"),
        model: str = typer.Option("xgboost", "--model", "-m", help="a preset (debut.kele, egb) or a learner "
                                  "(xgboost, lightgbm, catboost, ridge, svr, mean-rank); `iqarena ensemble presets`"),
        features: Optional[Path] = typer.Option(None, "--features", "-f", help="an `iqarena evaluate` output "
                                                "folder or a name,feature... table; default: computed for the "
                                                "preset from --dataset"),
        columns: Optional[str] = typer.Option(None, "--columns", help="comma-separated feature columns, or 'all' "
                                              "(default: the preset's metrics where it names them, else all)"),
        metric: List[str] = typer.Option([], "--metric", help="score these metrics as the features (repeat)"),
        extractor: Optional[str] = typer.Option(None, "--extractor", help="deep features: vgg16_egb, "
                                                "efficientnet_lite0"),
        dataset: Optional[str] = DATASET, root: Optional[Path] = ROOT, split: Optional[str] = SPLIT,
        labels: Optional[Path] = LABELS,
        folds: Optional[int] = typer.Option(None, "--folds", min=2, help="bagging folds (default: the preset's)"),
        seed: int = typer.Option(0, "--seed"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="booster threads (default: all)"),
        param: List[str] = typer.Option([], "--param", help="a learner setting KEY=VALUE (repeat), e.g. "
                                        "n_estimators=500"),
        permutation: bool = typer.Option(True, "--permutation/--no-permutation", help="permutation importance"),
        device: str = typer.Option("cpu", "--device", help="for computed features"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace a model folder iqarena wrote"),
    ) -> None:
        """Fit an ensemble with k-fold bagging (folds grouped by reference content); writes the models,
        report.md, importance.csv/png and the out-of-fold predictions."""
        from ..ensemble import dataset_features, fit_ensemble, get_preset, read_features, write_report

        preset = get_preset(model)
        ds = _dataset(dataset, root, split, labels, features)
        if features is not None:
            table = read_features(features)
        else:
            # features named on the command line replace the preset's own
            chosen = extractor or (None if metric else preset.extractor)
            table = dataset_features(ds, metrics=metric or preset.metrics, extractor=chosen, device=device,
                                     progress=True)
        if columns == "all":
            pass
        elif columns:
            table = table.select([c.strip() for c in columns.split(",") if c.strip()])
        elif preset.metrics and not metric:
            table = table.select([c for c in table.columns if c in preset.metrics] if features is None
                                 else list(preset.metrics))
        x = table.rows_for([r.dist for r in ds.rows])
        from ..ensemble.features import FeatureTable

        aligned = FeatureTable(tuple(r.dist for r in ds.rows), table.columns, x, table.sources, table.origin)
        say = lambda m: typer.echo(m, err=True)  # noqa: E731
        say(f"{preset.name}: {preset.describe()}; {len(ds)} images x {len(table.columns)} features")
        fitted = fit_ensemble(aligned, ds.scores, [r.content for r in ds.rows], preset=preset, folds=folds,
                              seed=seed, threads=threads, params=_params(param),
                              label_higher_better=ds.higher_better, permutation=permutation, log=say)
        fitted.save(output, overwrite=overwrite)
        write_report(fitted, output)
        cv = fitted.cv
        say(f"cross-validated SRCC {cv['mean']['srcc']:.4f} PLCC {cv['mean']['plcc']:.4f} (mean of folds; pooled "
            f"{cv['pooled']['srcc']:.4f} / {cv['pooled']['plcc']:.4f}); best single feature "
            f"{cv['best_feature'].get('feature')}: {cv['best_feature'].get('srcc', float('nan')):.4f} / "
            f"{cv['best_feature'].get('plcc', float('nan')):.4f}")
        say(f"wrote {output} (report.md, importance.png); use it as a metric: iqarena score -m {output} ...")

    @ens.command("predict")
    def predict_cmd(
        model_dir: Path = typer.Argument(..., help="a folder written by `iqarena ensemble fit`"),
        features: Optional[Path] = typer.Option(None, "--features", "-f", help="a feature table or evaluate run"),
        dataset: Optional[str] = DATASET, root: Optional[Path] = ROOT, split: Optional[str] = SPLIT,
        labels: Optional[Path] = LABELS,
        dist: Optional[Path] = typer.Option(None, "--dist", help="distorted image file or folder"),
        ref: Optional[Path] = typer.Option(None, "--ref", help="reference file or folder (paired by name)"),
        output: Path = typer.Option(Path("output.txt"), "--output", "-o", help="the name,score file to write"),
        submission: Optional[Path] = typer.Option(None, "--submission", help="also write this zip"),
        extra_data: bool = typer.Option(False, "--extra-data/--no-extra-data", help="readme: trained with extra data"),
        device: str = typer.Option("cpu", "--device"),
        batch_size: int = typer.Option(8, "--batch-size", min=1),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace existing output files"),
    ) -> None:
        """Predict with a fitted ensemble: from a feature table, or from images (its features computed)."""
        import time

        from ..datasets import load_dataset
        from ..ensemble import Ensemble, read_features
        from ..execution import dataset_items, pair_items
        from ..io import collect_pairs, output_path
        from ..models.predict import predict, write_predictions

        output_path(output, overwrite)
        if submission is not None:
            output_path(submission, overwrite)
        if features is not None:
            started = time.perf_counter()
            ens = Ensemble.load(model_dir)
            table = read_features(features)
            scores = ens.predict_table(table)
            seconds = (time.perf_counter() - started) / max(len(scores), 1)
            keys = list(table.names)
        else:
            if dataset is not None or labels is not None:
                items = dataset_items(_dataset(dataset, root, split, labels))
            elif dist is not None:
                items = pair_items(collect_pairs(dist, ref))
            else:
                raise InputError("nothing to predict: give --features, --dataset/--root, or --dist (and --ref).")
            scores, seconds = predict(str(model_dir), items, device=device, batch_size=batch_size,
                                      progress=len(items) > 1)
            keys = [it.key for it in items]
        names = write_predictions(output, keys, scores, seconds=seconds, submission=submission,
                                  gpu=device.startswith("cuda"), extra_data=extra_data,
                                  description=f"iqarena ensemble {model_dir.name}", overwrite=overwrite)
        typer.echo(f"wrote {len(names)} predictions to {output}", err=True)
        if submission is not None:
            typer.echo(f"wrote {submission}", err=True)

    @ens.command("average")
    def average_cmd(
        predictors: List[str] = typer.Argument(..., help="prediction files or submission zips, metric names, "
                                               "checkpoints or ensemble folders"),
        normalise: str = typer.Option("none", "--normalise", help="none, rank or zscore (per predictor)"),
        weight: List[float] = typer.Option([], "--weight", help="one weight per predictor, in order"),
        dataset: Optional[str] = DATASET, root: Optional[Path] = ROOT, split: Optional[str] = SPLIT,
        labels: Optional[Path] = LABELS,
        output: Path = typer.Option(Path("output.txt"), "--output", "-o", help="the name,score file to write"),
        device: str = typer.Option("cpu", "--device"),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """Average several predictors per image (MT-GTD's ensemble), optionally rank- or z-normalised.
        Models and metrics score --dataset's images; prediction files must name the same images."""
        import numpy as np

        from ..ensemble import average_predictions
        from ..execution import dataset_items, score_items
        from ..execution.local import LocalExecutor
        from ..io import output_path
        from ..metrics import METRICS, MetricSpec
        from ..models.predict import output_names, write_output
        from ..submission import match_submission, read_submission

        output_path(output, overwrite)
        if weight and len(weight) != len(predictors):
            raise InputError(f"{len(weight)} weights for {len(predictors)} predictors; give one per predictor.")
        ds = _dataset(dataset, root, split, labels) if (dataset or labels) else None
        files = [p for p in predictors if Path(p).is_file() and p not in METRICS and Path(p).suffix != ".pt"]
        if ds is None:
            if len(files) != len(predictors):
                raise InputError("metrics and models need images to score: give --dataset/--root or --labels.")
            names = list(read_submission(files[0]).names)
        else:
            names = [r.dist for r in ds.rows]
        columns, direction = {}, {}
        specs = [MetricSpec.of(p) for p in predictors if p not in files]
        if specs:
            with LocalExecutor(device=device) as ex:
                got = score_items(dataset_items(ds), specs, ex, progress=True)
            for j, s in enumerate(specs):
                columns[s.name], direction[s.name] = got[:, j], s.info.higher_better
        for p in files:
            columns[p], direction[p] = match_submission(read_submission(p), names), True
        order = [p if p in files else MetricSpec.of(p).name for p in predictors]
        columns = {k: columns[k] for k in order}
        mean = average_predictions(columns, normalise=normalise, higher_better=direction,
                                   weights=dict(zip(order, weight)) if weight else None)
        write_output(output, output_names(names), np.asarray(mean), overwrite=overwrite)
        typer.echo(f"wrote the {normalise} average of {len(columns)} predictors for {len(names)} images to {output}",
                   err=True)

    @ens.command("features")
    def features_cmd(
        output: Path = typer.Option(..., "--output", "-o", help="the CSV table to write (name,feature...)"),
        extractor: str = typer.Option("vgg16_egb", "--extractor", help="vgg16_egb (FR) or efficientnet_lite0 (NR)"),
        dataset: Optional[str] = DATASET, root: Optional[Path] = ROOT, split: Optional[str] = SPLIT,
        labels: Optional[Path] = LABELS,
        device: str = typer.Option("cpu", "--device"),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """Extract deep features of a dataset's images into a table for `ensemble fit --features`."""
        from ..ensemble import extract_features
        from ..io import atomic_output, output_path

        output_path(output, overwrite)
        table = extract_features(_dataset(dataset, root, split, labels), extractor, device=device, progress=True)
        with atomic_output(output) as tmp:
            table.save_csv(tmp)
        typer.echo(f"wrote {len(table.names)} x {len(table.columns)} features to {output}", err=True)

    @ens.command("presets")
    def presets_cmd() -> None:
        """The presets and learners, with their settings and sources."""
        from ..ensemble import PRESETS

        for name, p in PRESETS.items():
            typer.echo(f"{name}: {p.describe()}")
            for learner, params in p.learners:
                if params:
                    typer.echo(f"    {learner}: {', '.join(f'{k}={v}' for k, v in params.items())}")
            if p.source:
                typer.echo(f"    source: {p.source}")
