"""Predictions of a trained model (or any metric) for a challenge: ``output.txt`` and the submission zip.

Scoring runs through the executor, like every other scoring in iqarena; test-time crop ensembles are
options of the model (``test_crop``, ``test_layout``, ``test_crops``), so a checkpoint predicts the
same here, in ``iqarena score`` and in ``create_metric``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..execution import Item, LocalExecutor, score_items
from ..io import atomic_output, output_path
from ..metrics import MetricSpec
from ..submission import Readme, pack_submission


def predict(model: str | Path, items: Sequence[Item], *, device: str = "cpu", batch_size: int = 8,
            options: dict | None = None, progress: bool = False) -> tuple[np.ndarray, float]:
    """Scores of ``items`` in their order, and the wall time per image in seconds (model built, images
    read and scored; the model's build is not counted)."""
    spec = MetricSpec.of(str(model), **(options or {}))
    with LocalExecutor(device=device, batch_size=batch_size) as ex:
        ex.metric(spec)  # built before the clock starts
        start = time.perf_counter()
        scores = score_items(items, [spec], ex, progress=progress)[:, 0]
        seconds = (time.perf_counter() - start) / max(1, len(items))
    return scores, seconds


def output_names(keys: Sequence[str]) -> list[str]:
    """The names written to output.txt: bare file names (as the challenge's), or the relative paths
    where two images share a file name (a LIVE-style layout)."""
    bare = [Path(k).name for k in keys]
    counts = Counter(bare)
    return [b if counts[b] == 1 else Path(k).as_posix() for b, k in zip(bare, keys)]


def write_output(path: str | Path, names: Sequence[str], scores: np.ndarray, overwrite: bool = False) -> Path:
    """``name,score`` lines (the challenge's output.txt), written atomically."""
    path = output_path(path, overwrite)
    if not np.isfinite(scores).all():
        bad = [n for n, s in zip(names, scores) if not np.isfinite(s)]
        raise InputError(f"{len(bad)} predictions are not finite (first: {bad[0]}); the model failed on them.")
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{n},{float(s)!r}\n" for n, s in zip(names, scores)))
    return path


def write_submission(path: str | Path, names: Sequence[str], scores: np.ndarray, *, seconds: float, gpu: bool,
                     extra_data: bool, description: str = "", overwrite: bool = False) -> Path:
    """The challenge's zip: output.txt and readme.txt (runtime per image as measured)."""
    readme = Readme(runtime=seconds, gpu=gpu, extra_data=extra_data, description=description)
    return pack_submission(dict(zip(names, map(float, scores))), readme, path, overwrite=overwrite)


def write_predictions(output: str | Path, keys: Sequence[str], scores: np.ndarray, *, seconds: float,
                      submission: str | Path | None = None, gpu: bool = False, extra_data: bool = False,
                      description: str = "", overwrite: bool = False) -> list[str]:
    """output.txt for the images ``keys`` (named as :func:`output_names` says) and, with ``submission``,
    the zip beside it; returns the names written."""
    names = output_names(keys)
    write_output(output, names, scores, overwrite=overwrite)
    if submission is not None:
        write_submission(submission, names, scores, seconds=seconds, gpu=gpu, extra_data=extra_data,
                         description=description, overwrite=overwrite)
    return names
