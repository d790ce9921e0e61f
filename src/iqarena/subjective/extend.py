"""Extension: rate new images from new judgements without re-rating the old ones.

PIPAL's validation and test images (3,300, 753k judgements) were added to the existing Elo scale
this way (NTIRE 2021 report, Sec. 3). Two modes:

- ``fixed`` (default): old images keep their scores exactly; only new images are fitted (BT: the
  penalised likelihood over the new images with old ratings as constants; Elo: old ratings frozen,
  new ones start at the mean of their reference). The new images' standard errors are then
  conditional on the old scores.
- ``anchored`` (BT only): old images are free but held by a normal prior at their old score with
  their old standard error (the old posterior summarised by its diagonal), so new evidence may move
  them within their intervals; new images' errors include the old scores' uncertainty.
  ``continue`` (Elo only): old ratings keep updating (zero-sum), as plain Elo would.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .bt import PRIOR_SD, fit_core, pair_counts
from .elo import K, fit_elo
from .judgements import Judgements
from .ratings import INITIAL, Ratings, reference_means


def _merge(base: Ratings, new: Judgements) -> tuple[Judgements, np.ndarray]:
    """New judgements' images plus every base image; returns (judgements over all images, old mask)."""
    idx = {n: i for i, n in enumerate(base.images)}
    new_refs = dict(zip(new.images, new.refs[new.image_ref]))
    for n, ref in new_refs.items():
        if n in idx and base.reference[idx[n]] not in ("", ref):
            raise InputError(f"image {n!r} has reference {base.reference[idx[n]]!r} in the ratings but {ref!r} "
                             "in the new judgements; make them agree.")
    names = list(new.images) + [n for n in base.images if n not in new_refs]
    refs = list(new.refs[new.image_ref]) + [base.reference[idx[n]] or "?" for n in base.images if n not in new_refs]
    order = np.argsort(np.asarray(names, object), kind="stable")
    names_s = np.asarray(names, object)[order]
    ref_names, image_ref = np.unique(np.asarray(refs, object)[order], return_inverse=True)
    where = {n: i for i, n in enumerate(names_s)}
    remap = np.array([where[n] for n in new.images], dtype=np.int64)
    j = Judgements(names_s, image_ref.astype(np.int64), ref_names, remap[new.a], remap[new.b], new.outcome,
                   new.rater, new.time)
    old = np.array([n in idx for n in names_s])
    return j, old


def extend(base: Ratings, new: Judgements, *, method: str = "bt", mode: str = "fixed", k: float = K,
           orders: int = 10, seed: int = 0, prior_sd: float = PRIOR_SD, initial: float | None = None,
           ci: bool = True) -> Ratings:
    """Ratings of ``base`` plus the images first seen in ``new``, on ``base``'s scale.

    ``new`` holds judgements between new images and rated ones (and among new ones). Images of a
    reference without any rated image start from ``initial`` (default: ``base``'s, else 1450).
    """
    if len(new) == 0:
        raise InputError("no new judgements; give judgements that compare the new images with rated ones.")
    initial = float(base.params.get("initial", INITIAL) if initial is None else initial)
    j, old = _merge(base, new)
    if old.all():
        raise InputError("the new judgements contain no new image; every image already has a rating "
                         "(to re-rate, fit all judgements together with `ratings fit`).")
    bidx = {n: i for i, n in enumerate(base.images)}
    base_score = np.array([base.score[bidx[n]] if o else np.nan for n, o in zip(j.images, old)])
    touched = np.zeros(j.n_images, bool)
    touched[j.a] = touched[j.b] = True
    means = reference_means(base, j)
    ref_names = j.refs[j.image_ref]
    start = np.where(old, base_score, [means.get(r, initial) for r in ref_names])
    linked = np.zeros(len(j.refs), bool)
    linked[j.image_ref[old & touched]] = True
    if method == "elo":
        if mode not in ("fixed", "continue"):
            raise InputError(f"Elo extension mode must be 'fixed' or 'continue', got {mode!r}.")
        base_j = Ratings(j.images[old], ref_names[old], base_score[old], np.full(old.sum(), np.nan),
                         np.zeros(old.sum(), np.int64), base.method, base.params)
        out = fit_elo(j, k=k, initial=initial, orders=orders, seed=seed, start=base_j, freeze_start=mode == "fixed")
    elif method == "bt":
        if mode not in ("fixed", "anchored"):
            raise InputError(f"BT extension mode must be 'fixed' or 'anchored', got {mode!r}.")
        base_se = np.array([base.se[bidx[n]] if o else np.nan for n, o in zip(j.images, old)])
        if mode == "anchored" and not np.all(np.isfinite(base_se[old & touched]) & (base_se[old & touched] > 0)):
            raise InputError("mode 'anchored' needs standard errors of the old scores, and these ratings have none "
                             "(a name,score label file or Elo); use mode 'fixed', or give the table written by "
                             "`iqarena ratings fit --method bt --table`.")
        free = ~old if mode == "fixed" else (~old | touched)
        prior_mean = start.copy()
        prec = np.full(j.n_images, 1.0 / prior_sd ** 2)
        if mode == "anchored":
            prec[old] = np.where(np.isfinite(base_se[old]), 1.0 / np.maximum(base_se[old], 1e-9) ** 2, 0.0)
        # a reference without any judged rated image has no anchor: its new images are centred at the
        # reference's old mean (or `initial`), and their intervals describe scores with that mean fixed
        fit = fit_core(pair_counts(j), j.image_ref, start, free, prior_mean, prec, fit_nu=True, ci=ci,
                       center=~linked)
        se = np.where(old & ~free, base_se, fit.se)
        params = {"initial": initial, "prior_sd": prior_sd, "nu": fit.nu, "iterations": fit.iterations}
        out = Ratings(j.images, ref_names, fit.r, se, j.counts(), "bt", params)
    else:
        raise InputError(f"method must be 'elo' or 'bt', got {method!r}.")
    out.method = f"{out.method}+extend"
    out.params = {**out.params, "mode": mode, "extended_from": base.params.get("source", base.method),
                  "new_images": int((~old).sum())}
    return out
