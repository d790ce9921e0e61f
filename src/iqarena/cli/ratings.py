"""`iqarena ratings fit | extend | next-pairs`: scores from pairwise judgements, and the next pairs to ask."""

from __future__ import annotations

import csv
import io
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..io import output_path


class Method(str, Enum):
    elo = "elo"
    bt = "bt"


class Rule(str, Enum):
    random = "random"
    swiss = "swiss"
    active = "active"


class Mode(str, Enum):
    fixed = "fixed"
    anchored = "anchored"
    continue_ = "continue"


def _check_free(*paths: Optional[Path], overwrite: bool) -> None:
    for p in paths:
        if p is not None:
            output_path(p, overwrite)


def _emit(r, output: Optional[Path], table: Optional[Path], overwrite: bool) -> None:
    if table is not None:
        r.write_table(table, overwrite=overwrite)
        typer.echo(f"wrote the ratings table (name,reference,score,se,lower,upper,n) to {table}", err=True)
    if output is None:
        for name, score in sorted(r.as_dict().items()):
            typer.echo(f"{name},{score:.4f}")
    else:
        r.write_labels(output, overwrite=overwrite)
        typer.echo(f"wrote {len(r)} labels (name,score) to {output}", err=True)


def _judgements(path: Path, images: Optional[Path]):
    from ..subjective import read_images, read_judgements

    return read_judgements(path, images=read_images(images) if images is not None else None)


def register(app: typer.Typer) -> None:
    ratings = typer.Typer(help="Scores from pairwise judgements (Elo as PIPAL, Bradley-Terry) and pair selection.",
                          no_args_is_help=True)
    app.add_typer(ratings, name="ratings")

    @ratings.command("fit")
    def fit_cmd(
        judgements: Path = typer.Argument(..., help="CSV or Parquet: reference,image_a,image_b,winner[,rater,time]"),
        method: Method = typer.Option(Method.elo, "--method", help="elo (sequential, as PIPAL) or bt (Bradley-Terry ML)"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="label file name,score (default: print)"),
        table: Optional[Path] = typer.Option(None, "--table", help="also write name,reference,score,se,lower,upper,n"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing existing output files"),
        images: Optional[Path] = typer.Option(None, "--images", help="image list name,reference: every image to rate"),
        initial: float = typer.Option(1450.0, "--initial", help="initial rating = mean score of each reference"),
        k: float = typer.Option(32.0, "--k", help="Elo K factor"),
        orders: int = typer.Option(10, "--orders", min=0, help="Elo: average over this many shuffled orders (0: collected order)"),
        seed: int = typer.Option(0, "--seed", help="seed for shuffles and bootstrap"),
        prior_sd: float = typer.Option(400.0, "--prior-sd", help="BT: sd of the weak prior on ratings (Elo points)"),
        bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="standard errors from N bootstrap refits (any method)"),
    ) -> None:
        """Fit scores to pairwise judgements and write a name,score label file."""
        from ..subjective import bootstrap as boot
        from ..subjective import fit_bt, fit_elo

        _check_free(output, table, overwrite=overwrite)
        j = _judgements(judgements, images)
        if method is Method.elo:
            fit = lambda jj: fit_elo(jj, k=k, initial=initial, orders=orders, seed=seed)  # noqa: E731
        else:
            fit = lambda jj: fit_bt(jj, initial=initial, prior_sd=prior_sd, ci=bootstrap == 0)  # noqa: E731
        r = boot(j, fit, n=bootstrap, seed=seed) if bootstrap else fit(j)
        typer.echo(f"{method.value}: {len(r)} images, {len(j.refs)} references, {len(j)} judgements", err=True)
        _emit(r, output, table, overwrite)

    @ratings.command("extend")
    def extend_cmd(
        base: Path = typer.Argument(..., help="existing ratings: label file name,score or a --table file"),
        judgements: Path = typer.Argument(..., help="new judgements comparing new images with rated ones"),
        method: Method = typer.Option(Method.bt, "--method", help="bt or elo"),
        mode: Mode = typer.Option(Mode.fixed, "--mode", help="fixed: old scores unchanged; anchored (bt): old may move "
                                  "within their standard errors; continue (elo): old ratings keep updating"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="label file name,score (default: print)"),
        table: Optional[Path] = typer.Option(None, "--table", help="also write name,reference,score,se,lower,upper,n"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing existing output files"),
        k: float = typer.Option(32.0, "--k", help="Elo K factor"),
        orders: int = typer.Option(10, "--orders", min=0, help="Elo: shuffled orders averaged (0: collected order)"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Rate new images on the scale of existing ratings, from new judgements only."""
        from ..subjective import extend, read_judgements, read_ratings

        _check_free(output, table, overwrite=overwrite)
        old = read_ratings(base)
        r = extend(old, read_judgements(judgements), method=method.value, mode=mode.value, k=k, orders=orders, seed=seed)
        typer.echo(f"{r.method} ({mode.value}): {r.params['new_images']} new images on the scale of {len(old)} rated ones",
                   err=True)
        _emit(r, output, table, overwrite)

    @ratings.command("next-pairs")
    def next_pairs_cmd(
        judgements: Optional[Path] = typer.Argument(None, help="judgements so far (omit for a new study)"),
        images: Optional[Path] = typer.Option(None, "--images", help="image list name,reference (needed for a new study)"),
        budget: int = typer.Option(..., "--budget", min=1, help="number of pairs to propose"),
        rule: Rule = typer.Option(Rule.active, "--rule", help="random, swiss (similar ratings) or active (information)"),
        seed: int = typer.Option(0, "--seed"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="CSV reference,image_a,image_b (default: print)"),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """Propose the next batch of pairs for a study (CSV reference,image_a,image_b)."""
        from ..subjective import from_columns, next_pairs, read_images

        _check_free(output, overwrite=overwrite)
        if judgements is None and images is None:
            raise InputError("give the judgements so far, or --images name,reference for a new study.")
        if judgements is not None:
            j = _judgements(judgements, images)
        else:
            empty = {"reference": [], "image_a": [], "image_b": [], "winner": []}
            j = from_columns(empty, images=read_images(images), source=str(images))
        pairs = next_pairs(j, budget, rule.value, seed=seed)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["reference", "image_a", "image_b"])
        w.writerows(pairs)
        if output is None:
            typer.echo(buf.getvalue(), nl=False)
        else:
            output.write_text(buf.getvalue())
            typer.echo(f"wrote {len(pairs)} pairs ({rule.value}) to {output}", err=True)
