"""Elo ratings from pairwise judgements, as PIPAL assigns its scores.

PIPAL (Gu et al., ECCV 2020; NTIRE 2021 report, Sec. 3) rates every distorted image of a reference
with the Elo system (A. Elo, 1978): the expected score of A against B is
``E_A = 1 / (1 + 10**((R_B - R_A) / 400))`` and after a judgement with result ``S_A`` (1 win,
0 loss, 0.5 tie) both ratings move by ``K * (S_A - E_A)`` in opposite directions (zero-sum), so
the mean rating of a reference stays at the initial rating.

Defaults (our choices, documented in docs/subjective.md): initial rating 1450 (the real PIPAL
labels' per-reference mean is 1449.0, median over 200 references, and zero-sum updates keep the
mean fixed), K = 32. The papers do not state K; with PIPAL's number of judgements per reference
and a truth shaped like the real labels, K = 32 returns scores of the same spread (per-reference sd
119 vs 120), K = 16 compresses them to 93 and K = 8 to 64 (docs/subjective.md).

Order effects: sequential Elo depends on the order of the judgements. ``orders=0`` runs one pass
in the collected order (the ``time`` column, else file order); ``orders=n`` averages the final
ratings over ``n`` seeded random orders (the default, 10), which removes most of the order noise.

Vectorised across references: ratings of different references never interact, so step ``t``
updates the ``t``-th judgement of every reference at once; a study with few references falls back
to a scalar loop (same arithmetic, same result).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .judgements import Judgements
from .ratings import INITIAL, Ratings, from_judgements, reference_means

K = 32.0


def expected(r_a, r_b):
    """Elo expected score of A against B: ``1 / (1 + 10**((r_b - r_a) / 400))``."""
    return 1.0 / (1.0 + 10.0 ** ((np.asarray(r_b, float) - np.asarray(r_a, float)) / 400.0))


def update(r_a: float, r_b: float, outcome: float, k: float = K) -> tuple[float, float]:
    """One Elo update; ``outcome`` is 1 when A won, 0 when B won, 0.5 for a tie."""
    d = k * (outcome - float(expected(r_a, r_b)))
    return r_a + d, r_b - d


def _pass(r: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray, ref_of_row: np.ndarray,
          k: float, movable: np.ndarray | None) -> None:
    """Apply the judgements (already in the wanted order) to ``r`` in place."""
    if len(a) == 0:
        return
    grouped = np.argsort(ref_of_row, kind="stable")
    rr = ref_of_row[grouped]
    first = np.r_[0, np.flatnonzero(rr[1:] != rr[:-1]) + 1]
    pos = np.arange(len(rr)) - np.repeat(first, np.diff(np.r_[first, len(rr)]))
    n_steps = int(pos.max()) + 1
    if len(a) / n_steps < 16:  # few references: a scalar loop is faster than tiny numpy steps
        _scalar_pass(r, a, b, s, k, movable)
        return
    step_order = grouped[np.argsort(pos, kind="stable")]
    bounds = np.r_[0, np.cumsum(np.bincount(pos, minlength=n_steps))]
    A, B, S = a[step_order], b[step_order], s[step_order]
    fa = fb = None
    if movable is not None:
        fa, fb = movable[A].astype(float), movable[B].astype(float)
    for t in range(n_steps):
        lo, hi = bounds[t], bounds[t + 1]
        ia, ib = A[lo:hi], B[lo:hi]
        d = k * (S[lo:hi] - 1.0 / (1.0 + 10.0 ** ((r[ib] - r[ia]) / 400.0)))
        if fa is None:
            r[ia] += d
            r[ib] -= d
        else:
            r[ia] += d * fa[lo:hi]
            r[ib] -= d * fb[lo:hi]


def _scalar_pass(r, a, b, s, k, movable) -> None:
    rl = r.tolist()
    mv = [True] * len(rl) if movable is None else movable.tolist()
    for i, j, o in zip(a.tolist(), b.tolist(), s.tolist()):
        d = k * (o - 1.0 / (1.0 + 10.0 ** ((rl[j] - rl[i]) / 400.0)))
        if mv[i]:
            rl[i] += d
        if mv[j]:
            rl[j] -= d
    r[:] = rl


def fit_elo(j: Judgements, *, k: float = K, initial: float = INITIAL, orders: int = 10, seed: int = 0,
            passes: int = 1, start: Ratings | None = None, freeze_start: bool = True) -> Ratings:
    """Elo ratings per reference.

    ``orders``: 0 = one run in the collected order; n >= 1 = mean over n seeded shuffles.
    ``passes``: runs over the judgements per order (1 as PIPAL; more moves ratings further from the
    initial rating). ``start``: ratings to start from (extension): images found there start at their
    score and stay fixed when ``freeze_start``; other images start at their reference's mean score in
    ``start`` (``initial`` when the reference is new). ``params['order_sd']`` is the mean over images
    of the standard deviation across orders (how much the order alone moves a rating).
    """
    if not (k > 0 and np.isfinite(k)):
        raise InputError(f"K factor must be a positive number, got {k}.")
    if orders < 0 or passes < 1:
        raise InputError(f"orders must be >= 0 and passes >= 1, got orders={orders}, passes={passes}.")
    r0, movable = _start(j, initial, start, freeze_start)
    ref_of_row = j.image_ref[j.a]
    runs = []
    rng = np.random.default_rng(seed)
    for o in range(max(orders, 1)):
        perm = j.order() if orders == 0 else rng.permutation(len(j))
        r = r0.copy()
        for _ in range(passes):
            _pass(r, j.a[perm], j.b[perm], j.outcome[perm], ref_of_row[perm], k, movable)
        runs.append(r)
    runs = np.asarray(runs)
    score = runs.mean(axis=0)
    if movable is not None:
        score[~movable] = r0[~movable]  # frozen ratings exactly as given (a mean can differ in the last bit)
    params = {"k": k, "initial": initial, "orders": orders, "seed": seed, "passes": passes,
              "order_sd": float(runs.std(axis=0).mean()) if len(runs) > 1 else 0.0}
    if start is not None:
        params["extended_from"] = start.params.get("source", start.method)
        params["freeze_start"] = freeze_start
    return from_judgements(j, score, None, "elo", params)


def _start(j: Judgements, initial: float, start: Ratings | None, freeze: bool):
    r0 = np.full(j.n_images, float(initial))
    if start is None:
        return r0, None
    idx = {n: i for i, n in enumerate(start.images)}
    known = np.array([n in idx for n in j.images])
    ref_names = j.refs[j.image_ref]
    ref_mean = reference_means(start, j)
    for i, n in enumerate(j.images):
        r0[i] = start.score[idx[n]] if known[i] else ref_mean.get(ref_names[i], initial)
    return r0, (~known if freeze else None)
