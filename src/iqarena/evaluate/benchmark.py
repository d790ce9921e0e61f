"""One benchmark run: metrics and external predictions on a dataset -> scores -> the report.

``benchmark`` is what `iqarena evaluate` runs, and what a trainer's validation or a server calls:

>>> from iqarena.datasets import load_dataset
>>> from iqarena.evaluate.benchmark import Predictions, benchmark
>>> ds = load_dataset("pipal", "/data/PIPAL", split="val")
>>> rep = benchmark(ds, ["psnr", "ssim"], [Predictions("teamA", "teamA.zip")], output="rep")
>>> rep.metrics[0].result.main
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..datasets import Dataset
from ..errors import InputError
from ..execution import Executor, ScoreStore
from ..metrics import MetricSpec, expand_metrics, fingerprint
from ..submission import match_submission, read_submission
from .report import Report, Scores, analyse, dropped_rows, dropped_text, write_report
from .run import dataset_key, prepare_output, read_run_file, score_dataset, write_run_file, write_scores_csv


@dataclass(frozen=True)
class Predictions:
    """An external method's scores: a submission zip, an ``output.txt`` or a label-style table."""

    name: str
    path: Path
    higher_better: bool = True


def rows_hash(ds: Dataset) -> str:
    """What a report folder's results belong to: the labelled rows themselves, wherever the dataset lies."""
    text = "\n".join(f"{r.dist},{r.ref},{r.score!r}" for r in ds.rows)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def benchmark(ds: Dataset, metrics: Sequence[str | MetricSpec] = (), predictions: Sequence[Predictions] = (), *,
              output: str | Path, store: ScoreStore | None = None, executor: Executor | None = None,
              mapping: str = "poly3", n_boot: int = 1000, seed: int = 0, level: float = 0.95,
              cluster_by_reference: bool = False, plots: bool = True, overwrite: bool = False,
              command: str = "", options: dict | None = None, progress: bool = False,
              log: Callable[[str], None] = lambda _: None) -> Report:
    """Score ``ds`` with ``metrics`` (``all`` expands to every available one that fits), read
    ``predictions``, evaluate everything against the labels and write the report into ``output``.

    ``store`` (default: the shared one) keeps the scores: a rerun scores nothing twice. An ``output``
    folder of another run is refused unless ``overwrite``. ``options`` are the reader options that
    made ``ds`` (recorded as part of the run's identity). ``log`` receives progress messages.
    """
    if not metrics and not predictions:
        raise InputError("nothing to evaluate: give metrics and/or external predictions.", option="metrics")
    if len(ds) < 5:
        raise InputError(f"{ds.describe()}: at least 5 labelled images are needed for the statistics.")
    specs: list[MetricSpec] = []
    for m in metrics:
        specs += [m] if isinstance(m, MetricSpec) else [MetricSpec.of(n) for n in expand_metrics([m], ds.has_reference)]
    specs = list(dict.fromkeys(specs))
    store = store if store is not None else ScoreStore()
    output = Path(output)

    identity = {"dataset": ds.name, "split": ds.split, "images": len(ds), "rows": rows_hash(ds),
                "options": dict(options or {})}
    resumed = prepare_output(output, identity, overwrite)
    prints = {str(m): fingerprint(m) for m in specs}
    before = read_run_file(output).get("fingerprints", {}) if resumed else {}
    changed = [name for name, fp in prints.items() if name in before and before[name] != fp]
    run = {"command": command, "root": str(ds.root), "dataset_key": dataset_key(ds), "store": str(store.root),
           "metrics": list(prints), "fingerprints": prints}
    write_run_file(output, identity, run)
    log(f"{ds.describe()}; {'resuming' if resumed else 'writing'} {output}; scores in {store.root}")
    if changed:
        log(f"the code, parameter files or options of {', '.join(changed)} changed since the last run: scoring again")

    columns = []
    dists = [r.dist for r in ds.rows]
    if specs:
        scores = score_dataset(ds, specs, store=store, executor=executor, progress=progress)
        write_scores_csv(output, dists, scores)
        columns += [Scores(str(m), scores[str(m)], m.info.higher_better, m.info.kind, m.info.nonfinite) for m in specs]
    for p in predictions:
        values = match_submission(read_submission(p.path), dists)
        columns.append(Scores(p.name, values, p.higher_better, "external"))

    for col in columns:  # rows a metric cannot use (NaN/inf scores on degenerate images), and why
        why = dropped_rows(col)
        if why:
            log(dropped_text(col.name, why))
            run.setdefault("dropped", {})[col.name] = why
    if "dropped" in run:
        write_run_file(output, identity, run)
    rep = analyse(ds, columns, mapping=mapping, n_boot=n_boot, seed=seed, level=level,
                  cluster_by_reference=cluster_by_reference)
    write_report(rep, output, command=command, plots=plots)
    return rep
