"""Averaging predictors, as MT-GTD (2nd in NTIRE 2021) averaged nine networks: the mean of several
predictors' scores per image, optionally after turning each into ranks or z-scores so that predictors
on different scales weigh the same."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import stats

from ..errors import InputError

NORMALISE = ("none", "rank", "zscore")


def average_predictions(columns: Mapping[str, np.ndarray], *, normalise: str = "none",
                        higher_better: Mapping[str, bool] | None = None,
                        weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The (weighted) mean of the predictors in ``columns`` (name -> scores of the same images).

    ``normalise``: ``none`` (the raw scores: for predictors of the same labels), ``rank`` (each
    predictor's ranks scaled to (0, 1)), ``zscore`` (each standardised). A predictor whose lower scores
    are better (``higher_better[name]`` False) is turned around first, so the mean rises with quality.
    """
    if normalise not in NORMALISE:
        raise InputError(f"normalise must be one of {', '.join(NORMALISE)}, got {normalise!r}.", option="normalise")
    if not columns:
        raise InputError("nothing to average: give at least one predictor.")
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise InputError(f"the predictors score different numbers of images: {lengths}.")
    total, weight_sum = 0.0, 0.0
    for name, v in columns.items():
        v = np.asarray(v, dtype=np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            raise InputError(f"predictor {name!r} has {int(bad.sum())} NaN or infinite scores; the average is "
                             "undefined for those images.")
        if normalise == "rank":
            v = (stats.rankdata(v) - 0.5) / v.size
        elif normalise == "zscore":
            v = (v - v.mean()) / (v.std() or 1.0)
        if higher_better is not None and not higher_better.get(name, True):
            v = (1.0 - v) if normalise == "rank" else -v
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = total + w * v
        weight_sum += w
    return total / weight_sum
