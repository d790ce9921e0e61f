"""Simulated studies with known true ratings: judgements drawn from the Davidson/Elo model."""

from __future__ import annotations

import numpy as np

from .judgements import Judgements
from .ratings import INITIAL, SCALE


def study(n_refs: int, n_images: int, *, sd: float = 120.0, initial: float = INITIAL, seed: int = 0,
          prefix: str = "R") -> tuple[Judgements, np.ndarray]:
    """An empty study: ``n_refs`` references with ``n_images`` images each, and true ratings drawn
    from ``N(initial, sd^2)`` then centred to mean ``initial`` per reference (the fitted gauge).
    Names: ``R0003_017`` for image 17 of reference ``R0003``. Returns (judgements without rows, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, sd, (n_refs, n_images))
    truth = truth - truth.mean(axis=1, keepdims=True) + initial
    refs = np.array([f"{prefix}{r:04d}" for r in range(n_refs)], dtype=object)
    images = np.array([f"{prefix}{r:04d}_{i:03d}" for r in range(n_refs) for i in range(n_images)], dtype=object)
    empty = np.zeros(0, np.int64)
    j = Judgements(images, np.repeat(np.arange(n_refs), n_images), refs, empty, empty, np.zeros(0))
    return j, truth.ravel()


def outcomes(truth: np.ndarray, a: np.ndarray, b: np.ndarray, *, nu: float = 0.0,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Draw results for pairs (a, b): 1 when A wins, 0 when B wins, 0.5 for a tie (Davidson ``nu``)."""
    rng = rng or np.random.default_rng(0)
    x = (truth[a] - truth[b]) / SCALE
    d = 2 * np.cosh(x / 2) + nu
    p_a, p_tie = np.exp(x / 2) / d, nu / d
    u = rng.random(len(a))
    return np.where(u < p_a, 1.0, np.where(u < p_a + p_tie, 0.5, 0.0))


def add(j: Judgements, truth: np.ndarray, a: np.ndarray, b: np.ndarray, *, nu: float = 0.0,
        rng: np.random.Generator | None = None) -> Judgements:
    """``j`` with new rows for the pairs (a, b), results drawn from the truth; rows get increasing times."""
    s = outcomes(truth, a, b, nu=nu, rng=rng)
    t0 = len(j)
    time = np.arange(t0, t0 + len(a), dtype=float)
    old_t = j.time if j.time is not None else np.arange(t0, dtype=float)
    return Judgements(j.images, j.image_ref, j.refs, np.r_[j.a, a].astype(np.int64), np.r_[j.b, b].astype(np.int64),
                      np.r_[j.outcome, s], None, np.r_[old_t, time])
