"""Bradley-Terry maximum likelihood with ties (Davidson 1970), on the Elo scale.

Model: image ``i`` has rating ``R_i``; with ``x = (R_i - R_j) / SCALE`` (``SCALE = 400 / ln 10``)
and tie parameter ``nu >= 0``::

    P(i better) = e^{x/2} / (2 cosh(x/2) + nu),  P(tie) = nu / (2 cosh(x/2) + nu)

(R. R. Davidson, JASA 65, 1970, 317-328). Without ties (``nu = 0``) this is exactly the Elo
curve ``1 / (1 + 10**(-(R_i - R_j) / 400))``, so BT and Elo scores share one scale. The
log-likelihood is jointly concave in the ratings and ``log nu``.

Fit: judgements are aggregated to counts per distinct pair (``np.unique`` on pair keys), then
damped Newton steps on ratings and ``log nu`` together; the Hessian of the ratings is a sparse
weighted graph Laplacian (block diagonal by reference) solved with a sparse LU, ``nu`` enters by a
Schur complement. A weak normal prior ``N(initial, prior_sd^2)`` on every rating keeps images that
won (or lost) every comparison finite; because the likelihood depends only on differences, the fitted
mean of each reference is exactly ``initial`` (the gauge). The default ``prior_sd = 400`` Elo points
(one 10:1 odds step) shrinks a typical PIPAL image (78 judgements) by about 1 % and tames sparse
studies (docs/subjective.md has the measured effect).

Confidence intervals come from the inverse information matrix per reference (dense block, centred
so that they describe scores with the mean fixed), including the uncertainty of ``nu``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ..errors import InputError
from .judgements import Judgements
from .ratings import INITIAL, SCALE, Ratings, from_judgements

PRIOR_SD = 400.0


@dataclass
class PairCounts:
    """Judgements aggregated per unordered pair ``i < j``: wins of i, wins of j, ties."""

    i: np.ndarray
    j: np.ndarray
    wins_i: np.ndarray
    wins_j: np.ndarray
    ties: np.ndarray


def pair_counts(j: Judgements, ties: str = "davidson") -> PairCounts:
    lo, hi = np.minimum(j.a, j.b), np.maximum(j.a, j.b)
    s_lo = np.where(j.a < j.b, j.outcome, 1.0 - j.outcome)
    keys, inv = np.unique(lo * j.n_images + hi, return_inverse=True)
    m = len(keys)
    win = np.bincount(inv, weights=(s_lo == 1.0), minlength=m)
    loss = np.bincount(inv, weights=(s_lo == 0.0), minlength=m)
    tie = np.bincount(inv, weights=(s_lo == 0.5), minlength=m)
    if ties == "half":
        win, loss, tie = win + tie / 2, loss + tie / 2, np.zeros(m)
    return PairCounts(keys // j.n_images, keys % j.n_images, win, loss, tie)


def _terms(r, u, pc: PairCounts, use_nu: bool):
    x = (r[pc.i] - r[pc.j]) / SCALE
    y = np.abs(x) / 2
    e = np.exp(-y)
    nu = np.exp(u) if use_nu else 0.0
    q = 1.0 + e * e + nu * e
    return x, e, nu, q


def _objective(r, u, pc, n, prior_mean, prior_prec, use_nu) -> float:
    x, e, nu, q = _terms(r, u, pc, use_nu)
    ll = np.sum((pc.wins_i - pc.wins_j) * x / 2 - n * (np.abs(x) / 2 + np.log(q)))
    if use_nu:
        ll += u * pc.ties.sum()
    return float(ll - 0.5 * np.sum(prior_prec * (r - prior_mean) ** 2))


@dataclass
class CoreFit:
    r: np.ndarray
    nu: float
    iterations: int
    objective: float
    se: np.ndarray
    blocks: list  # [(image indices, covariance matrix)] per reference, when asked for


def fit_core(pc: PairCounts, image_ref: np.ndarray, r0: np.ndarray, free: np.ndarray, prior_mean: np.ndarray,
             prior_prec: np.ndarray, *, fit_nu: bool, nu0: float = 0.0, ci: bool = True, keep_cov: bool = False,
             center: np.ndarray | None = None, tol: float = 1e-6, max_iter: int = 100) -> CoreFit:
    """Maximise the penalised Davidson log-likelihood over the ``free`` ratings (others fixed at ``r0``).

    ``center``: per reference, whether its scores are identified by their mean (the covariance is
    then centred); default: references without fixed images."""
    n_img = len(r0)
    fidx = np.flatnonzero(free)
    pos = np.full(n_img, -1)
    pos[fidx] = np.arange(len(fidx))
    use = free[pc.i] | free[pc.j]
    pc = PairCounts(pc.i[use], pc.j[use], pc.wins_i[use], pc.wins_j[use], pc.ties[use])
    n = pc.wins_i + pc.wins_j + pc.ties
    fit_nu = fit_nu and pc.ties.sum() > 0
    if fit_nu and pc.ties.sum() >= n.sum():
        raise InputError("every judgement is a tie; ratings cannot be fitted from ties alone.")
    r = r0.astype(float).copy()
    if fit_nu and nu0 <= 0:
        p = pc.ties.sum() / n.sum()
        nu0 = 2 * p / (1 - p)
    u = float(np.log(nu0)) if fit_nu else 0.0
    pi, pj = pos[pc.i], pos[pc.j]
    both = (pi >= 0) & (pj >= 0)
    f_old = _objective(r, u, pc, n, prior_mean, prior_prec, fit_nu)
    it = 0
    for it in range(1, max_iter + 1):
        lu, g, gu, c, huu = _newton_system(r, u, pc, n, fit_nu, prior_mean, prior_prec, fidx, pi, pj, both)
        if fit_nu:
            z1, z2 = lu.solve(g), lu.solve(c)
            du = (gu - c @ z1) / (huu - c @ z2)
            dr = z1 - z2 * du
        else:
            dr, du = lu.solve(g), 0.0
        step = 1.0
        while True:
            r_new = r.copy()
            r_new[fidx] += step * dr
            u_new = float(np.clip(u + step * du, -30, 30))
            f_new = _objective(r_new, u_new, pc, n, prior_mean, prior_prec, fit_nu)
            if f_new >= f_old - 1e-10 * abs(f_old) or step < 1e-6:
                break
            step /= 2
        r, u, f_old = r_new, u_new, f_new
        if np.max(np.abs(step * dr), initial=0.0) < tol and abs(step * du) < 1e-9:
            break
    else:
        raise InputError(f"Bradley-Terry fit did not converge in {max_iter} Newton steps; "
                         "check the judgements (e.g. a reference whose images were never compared).")
    se = np.full(n_img, np.nan)
    blocks = []
    if ci or keep_cov:
        lu, g, gu, c, huu = _newton_system(r, u, pc, n, fit_nu, prior_mean, prior_prec, fidx, pi, pj, both, want_h=True)
        if center is None:
            center = np.ones(int(image_ref.max(initial=-1)) + 1, bool)
            center[image_ref[~free]] = False
        se, blocks = _covariance(lu, c, huu, fit_nu, fidx, image_ref, center, keep_cov)
    return CoreFit(r, float(np.exp(u)) if fit_nu else 0.0, it, f_old, se, blocks)


def _newton_system(r, u, pc, n, fit_nu, prior_mean, prior_prec, fidx, pi, pj, both, want_h=False):
    x, e, nu, q = _terms(r, u, pc, fit_nu)
    sgn = np.sign(x)
    n_img = len(r)
    gx = (pc.wins_i - pc.wins_j) / 2 - n * sgn * (1 - e * e) / (2 * q)
    h = n * (e * e + nu * e * (1 + e * e) / 4) / (q * q) / SCALE ** 2
    grad = (np.bincount(pc.i, gx, n_img) - np.bincount(pc.j, gx, n_img)) / SCALE - prior_prec * (r - prior_mean)
    diag = np.bincount(pc.i, h, n_img) + np.bincount(pc.j, h, n_img) + prior_prec
    f = len(fidx)
    rows = np.concatenate([np.arange(f), pi[both], pj[both]])
    cols = np.concatenate([np.arange(f), pj[both], pi[both]])
    vals = np.concatenate([diag[fidx], -h[both], -h[both]])
    H = sp.csc_matrix((vals, (rows, cols)), shape=(f, f))
    lu = (H, splu(H)) if want_h else splu(H)
    gu = huu = 0.0
    c = None
    if fit_nu:
        gu = float(pc.ties.sum() - np.sum(n * nu * e / q))
        huu = float(np.sum(n * nu * e * (1 + e * e) / (q * q)))
        dg = n * nu * sgn * (1 - e * e) * e / (2 * q * q)
        c = (-(np.bincount(pc.i, dg, n_img) - np.bincount(pc.j, dg, n_img)) / SCALE)[fidx]
    return lu, grad[fidx], gu, c, huu


def _covariance(lu_h, c, huu, fit_nu, fidx, image_ref, center, keep_cov):
    H, lu = lu_h
    n_img = len(image_ref)
    se = np.full(n_img, np.nan)
    z2 = lu.solve(c) if fit_nu else None
    den = huu - c @ z2 if fit_nu else None
    fref = image_ref[fidx]
    order = np.argsort(fref, kind="stable")
    cuts = np.flatnonzero(np.diff(fref[order])) + 1
    blocks = []
    H = H.tocsr()
    for grp in np.split(order, cuts):
        if len(grp) == 0:
            continue
        C = np.linalg.inv(H[grp][:, grp].toarray())
        if fit_nu:
            C += np.outer(z2[grp], z2[grp]) / den
        if center[fref[grp[0]]]:  # gauge = mean of the reference: centre
            C = C - C.mean(axis=0, keepdims=True)
            C = C - C.mean(axis=1, keepdims=True)
        se[fidx[grp]] = np.sqrt(np.clip(np.diag(C), 0, None))
        if keep_cov:
            blocks.append((fidx[grp], C))
    return se, blocks


def fit_bt(j: Judgements, *, initial: float = INITIAL, prior_sd: float = PRIOR_SD, ties: str = "davidson",
           ci: bool = True, tol: float = 1e-6, max_iter: int = 100) -> Ratings:
    """Bradley-Terry (Davidson ties) ratings on the Elo scale, mean ``initial`` per reference.

    ``ties``: ``"davidson"`` fits the tie parameter ``nu`` when the table has ties; ``"half"`` counts
    a tie as half a win for each image (Elo's convention). ``ci``: standard errors from the inverse
    information matrix (``Ratings.se``; ``Ratings.interval()`` gives normal intervals).
    """
    if ties not in ("davidson", "half"):
        raise InputError(f"ties must be 'davidson' or 'half', got {ties!r}.")
    if not (prior_sd > 0 and np.isfinite(prior_sd)):
        raise InputError(f"prior_sd must be a positive number of Elo points, got {prior_sd}.")
    if len(j) == 0:
        raise InputError("no judgements to fit; add rows reference,image_a,image_b,winner.")
    pc = pair_counts(j, ties)
    r0 = np.full(j.n_images, float(initial))
    prec = np.full(j.n_images, 1.0 / prior_sd ** 2)
    fit = fit_core(pc, j.image_ref, r0, np.ones(j.n_images, bool), r0, prec, fit_nu=ties == "davidson",
                   ci=ci, tol=tol, max_iter=max_iter)
    params = {"initial": initial, "prior_sd": prior_sd, "ties": ties, "nu": fit.nu, "iterations": fit.iterations,
              "log_posterior": fit.objective}
    return from_judgements(j, fit.r, fit.se if ci else None, "bt", params)
