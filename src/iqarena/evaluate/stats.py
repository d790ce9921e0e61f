"""Agreement between predicted quality and subjective scores: the NTIRE 2021 protocol and its relatives.

NTIRE 2021 (Gu et al., "NTIRE 2021 Challenge on Perceptual Image Quality Assessment", CVPR-W 2021):
``main score = SRCC + PLCC``, where PLCC is computed after a third-order polynomial regression from
predicted score to MOS. The polynomial is fitted to standardised predictions (zero mean, unit
variance): the fitted curve is the same cubic, but Elo-scale or dB-scale numbers stay well
conditioned. The VQEG logistic mappings (4 and 5 parameters, VQEG FR-TV Phase I/II; Sheikh et al.
2006) are options.

Direction: a lower-is-better metric (or lower-is-better labels such as DMOS) is handled by
:func:`orient`, so correlations come out positive for a good metric without the caller flipping signs.

Uncertainty: :func:`bootstrap` gives percentile confidence intervals (resampling images, or whole
reference contents with ``clusters``), seeded; :func:`compare` tests whether two metrics scored
on the same images differ (Williams' test for dependent correlations sharing the MOS, and a paired
bootstrap of the difference in main score).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats

from ..errors import InputError

MAPPINGS = ("poly3", "logistic4", "logistic5", "linear", "none")


# ---------------------------------------------------------------- basic coefficients

def _as_pair(pred, mos, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(mos, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise InputError(f"predictions and labels differ in length: {x.size} vs {y.size}. Give one prediction per label.")
    if x.size < min_n:
        raise InputError(f"{x.size} scores given; this statistic needs at least {min_n}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        bad = int((~np.isfinite(x)).sum()), int((~np.isfinite(y)).sum())
        raise InputError(f"non-finite values: {bad[0]} in the predictions, {bad[1]} in the labels. "
                         "Drop those images or fix the scores (an infinite PSNR means identical images).")
    return x, y


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc @ xc) * (yc @ yc))
    return float(xc @ yc / den) if den > 0 else float("nan")


def plcc(pred, mos) -> float:
    """Pearson linear correlation coefficient (no mapping). NaN when either side is constant."""
    return _pearson(*_as_pair(pred, mos))


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation: Pearson on ranks, ties given their average rank."""
    x, y = _as_pair(pred, mos)
    return _pearson(stats.rankdata(x), stats.rankdata(y))


def krcc(pred, mos) -> float:
    """Kendall rank correlation, tau-b (ties corrected), as scipy.stats.kendalltau."""
    x, y = _as_pair(pred, mos)
    return float(stats.kendalltau(x, y).statistic)


def rmse(pred, mos) -> float:
    """Root mean squared error between (mapped) predictions and labels, in label units."""
    x, y = _as_pair(pred, mos, min_n=1)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def orient(pred, higher_better: bool = True, labels_higher_better: bool = True) -> np.ndarray:
    """Predictions turned to the labels' direction: negated when the metric and the labels disagree."""
    x = np.asarray(pred, dtype=np.float64)
    return x if higher_better == labels_higher_better else -x


def metric_direction(metric: str) -> bool:
    """``higher_better`` of a registered metric (``iqarena metrics`` lists them)."""
    from ..metrics import get_info

    return get_info(metric).higher_better


# ---------------------------------------------------------------- mappings

def _logistic4(z, b1, b2, b3, b4):
    return (b1 - b2) * special.expit((z - b3) / (np.abs(b4) + 1e-12)) + b2


def _logistic5(z, b1, b2, b3, b4, b5):
    # VQEG form b1 * (1/2 - 1/(1 + exp(b2 (z - b3)))) + b4 z + b5, written with expit (no overflow).
    return b1 * (special.expit(b2 * (z - b3)) - 0.5) + b4 * z + b5


@dataclass(frozen=True)
class Mapping:
    """A fitted monotone-ish map from predicted score to label scale, applied as ``mapping(pred)``.

    ``kind``: poly3 (NTIRE), logistic4 / logistic5 (VQEG), linear, none. The map acts on the
    standardised prediction ``z = (pred - center) / scale``. ``note`` says when a fit fell back.
    """

    kind: str
    params: tuple[float, ...]
    center: float = 0.0
    scale: float = 1.0
    note: str = ""

    def __call__(self, pred) -> np.ndarray:
        x = np.asarray(pred, dtype=np.float64)
        if self.kind == "none":
            return x
        z = (x - self.center) / self.scale
        if self.kind in ("poly3", "linear"):
            return np.polyval(self.params, z)
        if self.kind == "logistic4":
            return _logistic4(z, *self.params)
        if self.kind == "logistic5":
            return _logistic5(z, *self.params)
        raise InputError(f"unknown mapping {self.kind!r}; choose one of {', '.join(MAPPINGS)}.")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "params": list(self.params), "center": self.center, "scale": self.scale,
                "note": self.note}


def _standardise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    center, scale = float(x.mean()), float(x.std())
    if not scale > 0:
        scale = 1.0
    return (x - center) / scale, center, scale


def _polyfit(z: np.ndarray, y: np.ndarray, degree: int) -> tuple[float, ...]:
    """Least-squares polynomial coefficients, highest power first (np.polyval order)."""
    vander = np.vander(z, degree + 1)
    coef, *_ = np.linalg.lstsq(vander, y, rcond=None)
    return tuple(float(c) for c in coef)


def _default_start(kind: str, z: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    """Logistic start on standardised predictions: the label range, centred, in the trend's direction."""
    slope = np.sign(_pearson(z, y)) or 1.0
    lo, hi, mid = float(y.min()), float(y.max()), float(y.mean())
    if kind == "logistic4":
        return (hi, lo, 0.0, 1.0) if slope > 0 else (lo, hi, 0.0, 1.0)
    return (slope * (hi - lo), 1.0, 0.0, 0.0, mid)


def fit_mapping(pred, mos, kind: str = "poly3", p0: tuple[float, ...] | None = None) -> Mapping:
    """Fit the mapping ``kind`` from predictions to labels by least squares.

    poly3: ``y = a z^3 + b z^2 + c z + d`` (NTIRE 2021). logistic4: ``(b1 - b2) / (1 + exp(-(z - b3)/|b4|))
    + b2``. logistic5: ``b1 (1/2 - 1/(1 + exp(b2 (z - b3)))) + b4 z + b5``. Logistic fits start from
    the label range and the direction of the linear trend (or ``p0``); a fit that does not converge
    falls back to a straight line and says so in ``note`` (and a warning).
    """
    if kind not in MAPPINGS:
        raise InputError(f"unknown mapping {kind!r}; choose one of {', '.join(MAPPINGS)}.")
    x, y = _as_pair(pred, mos, min_n={"poly3": 5, "logistic4": 5, "logistic5": 6}.get(kind, 3))
    if kind == "none":
        return Mapping("none", ())
    z, center, scale = _standardise(x)
    if kind == "poly3":
        return Mapping("poly3", _polyfit(z, y, 3), center, scale)
    if kind == "linear":
        return Mapping("linear", _polyfit(z, y, 1), center, scale)
    func = _logistic4 if kind == "logistic4" else _logistic5
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(func, z, y, p0=p0 or _default_start(kind, z, y), maxfev=20000)
        if not np.isfinite(params).all():
            raise RuntimeError("non-finite parameters")
    except (RuntimeError, optimize.OptimizeWarning) as exc:
        note = f"{kind} fit did not converge ({exc}); a straight line was used instead"
        warnings.warn(note, RuntimeWarning, stacklevel=2)
        return Mapping("linear", _polyfit(z, y, 1), center, scale, note)
    return Mapping(kind, tuple(float(p) for p in params), center, scale)


# ---------------------------------------------------------------- the protocol

@dataclass(frozen=True)
class Result:
    """Agreement of one metric with the labels. ``main = srcc + plcc`` (NTIRE 2021)."""

    n: int
    srcc: float
    krcc: float
    plcc: float          # after the fitted mapping
    rmse: float          # after the fitted mapping, in label units
    plcc_raw: float      # before any mapping
    mapping: Mapping = field(repr=False)

    @property
    def main(self) -> float:
        return self.srcc + self.plcc

    def as_dict(self) -> dict:
        return {"n": self.n, "srcc": self.srcc, "plcc": self.plcc, "main": self.main, "krcc": self.krcc,
                "rmse": self.rmse, "plcc_raw": self.plcc_raw, "mapping": self.mapping.as_dict()}


def _direction(metric: str | None, higher_better: bool | None) -> bool:
    if higher_better is not None:
        return higher_better
    return metric_direction(metric) if metric is not None else True


def evaluate(pred, mos, *, metric: str | None = None, higher_better: bool | None = None,
             labels_higher_better: bool = True, mapping: str = "poly3") -> Result:
    """SRCC, KRCC, PLCC and RMSE after ``mapping`` (default: NTIRE third-order polynomial).

    The metric's direction comes from ``higher_better``, else from the registry entry of ``metric``,
    else higher is better. ``labels_higher_better=False`` for DMOS-like labels.
    """
    x, y = _as_pair(pred, mos, min_n=3)
    q = orient(x, _direction(metric, higher_better), labels_higher_better)
    fitted = fit_mapping(q, y, mapping)
    mapped = fitted(q)
    return Result(n=int(x.size), srcc=_pearson(stats.rankdata(q), stats.rankdata(y)),
                  krcc=float(stats.kendalltau(q, y).statistic), plcc=_pearson(mapped, y),
                  rmse=float(np.sqrt(np.mean((mapped - y) ** 2))), plcc_raw=_pearson(q, y), mapping=fitted)


def main_score(pred, mos, **options) -> float:
    """SRCC + PLCC (after the fitted mapping): the NTIRE 2021 main score."""
    return evaluate(pred, mos, **options).main


# ---------------------------------------------------------------- uncertainty

@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float

    def as_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "level": self.level}


def _weights(n: int, n_boot: int, seed: int, clusters=None):
    """Yield blocks of bootstrap weights, arrays (b, n): how often each image is drawn in each resample.

    Images are drawn with replacement, or, with ``clusters``, whole clusters (every image of a drawn
    cluster counts once per draw). A resample as weights lets every statistic be computed exactly
    without copying the data, and in blocks of resamples at once.
    """
    rng = np.random.default_rng(seed)
    if clusters is None:
        inverse, k = None, n
    else:
        labels = np.asarray(clusters)
        if labels.shape != (n,):
            raise InputError(f"clusters must give one label per image ({n}), got shape {labels.shape}.")
        _, inverse = np.unique(labels, return_inverse=True)
        k = int(inverse.max()) + 1
    block = max(1, min(n_boot, 2_000_000 // max(n, k)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        draws = rng.integers(0, k, (b, k)) + (np.arange(b) * k)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * k).reshape(b, k).astype(np.float64)
        yield counts if inverse is None else counts[:, inverse]
        done += b


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mid-ranks of ``x`` within each weighted resample (rows of ``w``), ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1
    csum = np.cumsum(w[:, order], axis=1)
    before = np.where(starts > 0, csum[:, np.maximum(starts - 1, 0)], 0.0)
    ends = np.r_[starts[1:], xs.size] - 1
    total = csum[:, ends] - before
    ranks = np.empty_like(w)
    ranks[:, order] = (before + (total + 1) / 2)[:, group]
    return ranks


def _wpearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation per row; ``a`` and ``b`` are (n,) or (rows, n)."""
    sw = w.sum(axis=1, keepdims=True)
    ac = a - (w * a).sum(axis=1, keepdims=True) / sw
    bc = b - (w * b).sum(axis=1, keepdims=True) / sw
    num = (w * ac * bc).sum(axis=1)
    den = np.sqrt((w * ac * ac).sum(axis=1) * (w * bc * bc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _wsolve(J: np.ndarray, w: np.ndarray, r: np.ndarray, damping: np.ndarray | None = None,
            ridge: float = 0.0) -> np.ndarray:
    """Per-row weighted least squares: argmin_d sum w (J d - r)^2, with Levenberg-Marquardt ``damping``
    (per row, relative to the diagonal) or a ``ridge`` relative to the trace (for collinear columns)."""
    if J.ndim == 2:  # one design matrix shared by every row
        A = np.einsum("bn,ni,nj->bij", w, J, J, optimize=True)
        g = (w * r) @ J
    else:
        Jw = J * w[..., None]
        A = Jw.transpose(0, 2, 1) @ J
        g = (Jw.transpose(0, 2, 1) @ r[..., None])[..., 0]
    if damping is not None:
        A = A + damping[:, None, None] * (np.eye(A.shape[-1]) * np.diagonal(A, axis1=1, axis2=2)[:, None, :])
    if ridge:
        A = A + ridge * np.trace(A, axis1=1, axis2=2)[:, None, None] / A.shape[-1] * np.eye(A.shape[-1])
    try:
        return np.linalg.solve(A, g[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a resample with too few distinct scores: minimum-norm solution
        return (np.linalg.pinv(A) @ g[..., None])[..., 0]


def _logistic_basis(kind: str, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Columns (b, n, k) that the logistic mapping combines linearly, for nonlinear parameters ``theta`` (b, 2).

    logistic4 = b1 s + b2 (1 - s) with s = expit((z - b3) / |b4|), theta = (b3, b4);
    logistic5 = b1 (s - 1/2) + b4 z + b5 with s = expit(b2 (z - b3)), theta = (b2, b3).
    """
    zz = z[None, :]
    if kind == "logistic4":
        s = special.expit((zz - theta[:, :1]) / (np.abs(theta[:, 1:]) + 1e-12))
        return np.stack([s, 1 - s], axis=-1)
    s = special.expit(theta[:, :1] * (zz - theta[:, 1:]))
    return np.stack([s - 0.5, np.broadcast_to(zz, s.shape), np.ones_like(s)], axis=-1)


def _projected(kind: str, z: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray):
    """Best linear coefficients for ``theta`` (weighted least squares): fitted values (b, n) and SSE (b,)."""
    basis = _logistic_basis(kind, z, theta)
    coef = _wsolve(basis, w, np.broadcast_to(y, w.shape), ridge=1e-10)
    fitted = np.einsum("bnk,bk->bn", basis, coef)
    return fitted, (w * (fitted - y) ** 2).sum(axis=1)


def _fit_logistic_weighted(kind: str, z: np.ndarray, y: np.ndarray, w: np.ndarray, p0, iters: int = 60,
                           tol: float = 1e-10) -> np.ndarray:
    """Refit a logistic mapping on a block of weighted resamples at once, from the full-sample fit ``p0``.

    Variable projection: the linear coefficients are solved exactly for every value of the two
    nonlinear ones, which Levenberg-Marquardt (finite-difference Jacobian) moves; this stays well
    conditioned when the fit uses the far tail of the logistic. Returns the fitted values (b, n).
    """
    b = w.shape[0]
    nonlinear = [2, 3] if kind == "logistic4" else [1, 2]
    theta = np.tile(np.asarray(p0, dtype=np.float64)[nonlinear], (b, 1))
    lam = np.full(b, 1e-3)
    f, sse = _projected(kind, z, y, w, theta)
    active = np.arange(b)
    for _ in range(iters):
        if active.size == 0:
            break
        wa, ta, fa = w[active], theta[active], f[active]
        h = 1e-6 * (1 + np.abs(ta))
        J = np.stack([(_projected(kind, z, y, wa, ta + h[:, [i]] * np.eye(2)[i])[0] - fa) / h[:, [i]]
                      for i in range(2)], axis=-1)
        trial = ta + _wsolve(J, wa, y - fa, damping=lam[active])
        f_new, sse_new = _projected(kind, z, y, wa, trial)
        old = sse[active]
        better = np.isfinite(sse_new) & (sse_new <= old)
        moved = better & (old - sse_new > tol * old)
        upd = active[better]
        theta[upd], f[upd], sse[upd] = trial[better], f_new[better], sse_new[better]
        lam[active] = np.where(better, lam[active] / 3, lam[active] * 4)
        active = active[moved | (~better & (lam[active] < 1e8))]
    return f


def _bootstrap_draws(q: np.ndarray, y: np.ndarray, mapping: str, n_boot: int, seed: int, clusters,
                     p0=None) -> np.ndarray:
    """Array (n_boot, 2): SRCC and fitted PLCC of every resample (the mapping refitted each time)."""
    z = (q - q.mean()) / (q.std() or 1.0)  # the poly3/logistic families are invariant to this affine map
    out = []
    for w in _weights(q.size, n_boot, seed, clusters):
        s = _wpearson(_weighted_ranks(q, w), _weighted_ranks(y, w), w)
        if mapping == "none":
            mapped = np.broadcast_to(q, w.shape)
        elif mapping in ("poly3", "linear"):
            V = np.vander(z, 4 if mapping == "poly3" else 2)
            mapped = _wsolve(V, w, np.broadcast_to(y, w.shape)) @ V.T
        else:
            mapped = _fit_logistic_weighted(mapping, z, y, w, p0)
        out.append(np.stack([s, _wpearson(mapped, np.broadcast_to(y, w.shape), w)], axis=1))
    return np.concatenate(out)


def _start(q: np.ndarray, y: np.ndarray, mapping: str, fitted: Mapping | None = None):
    """Full-sample logistic parameters on the standardised scale, the start of every resample's fit."""
    if not mapping.startswith("logistic"):
        return None
    if fitted is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fitted = fit_mapping(q, y, mapping)
    if fitted.kind != mapping:  # the full-sample fit fell back to a line: start from the default guess
        return _default_start(mapping, _standardise(q)[0], y)
    return fitted.params


def _interval(draws: np.ndarray, level: float) -> Interval:
    d = draws[np.isfinite(draws)]
    if d.size == 0:
        return Interval(float("nan"), float("nan"), level)
    a = (1 - level) / 2
    return Interval(float(np.quantile(d, a)), float(np.quantile(d, 1 - a)), level)


def bootstrap(pred, mos, *, metric: str | None = None, higher_better: bool | None = None,
              labels_higher_better: bool = True, mapping: str = "poly3", n_boot: int = 1000, seed: int = 0,
              level: float = 0.95, clusters=None) -> dict[str, Interval]:
    """Percentile bootstrap intervals for SRCC, PLCC (mapping refitted on every resample) and main score.

    Images are drawn with replacement; with ``clusters`` (for example the reference image of each
    row) whole clusters are drawn instead, which respects the dependence between images of one
    content. The same ``seed`` gives the same resamples for every metric, so intervals of metrics
    on the same images are comparable.
    """
    if n_boot < 10:
        raise InputError(f"n_boot={n_boot} is too few for an interval; use 1000 or more.")
    x, y = _as_pair(pred, mos, min_n=5)
    q = orient(x, _direction(metric, higher_better), labels_higher_better)
    return intervals(bootstrap_draws(q, y, mapping=mapping, n_boot=n_boot, seed=seed, clusters=clusters), level)


def bootstrap_draws(q, y, *, mapping: str = "poly3", n_boot: int = 1000, seed: int = 0, clusters=None,
                    fitted: Mapping | None = None) -> np.ndarray:
    """Bootstrap replicates (n_boot, 2) of SRCC and fitted PLCC for predictions ``q`` already oriented
    to the labels ``y``. The same ``seed`` (and n, clusters) gives the same resamples, so the rows
    of two metrics' draws are paired. ``fitted``: the full-sample mapping, if already at hand.
    """
    if n_boot < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}.")
    if mapping not in MAPPINGS:
        raise InputError(f"unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}.")
    q, y = _as_pair(q, y, min_n=5)
    return _bootstrap_draws(q, y, mapping, n_boot, seed, clusters, _start(q, y, mapping, fitted))


def intervals(draws: np.ndarray, level: float = 0.95) -> dict[str, Interval]:
    """Percentile intervals of SRCC, PLCC and main score from :func:`bootstrap_draws` output."""
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}.")
    return {"srcc": _interval(draws[:, 0], level), "plcc": _interval(draws[:, 1], level),
            "main": _interval(draws.sum(axis=1), level)}


# ---------------------------------------------------------------- significance

def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for two dependent correlations that share variable 1 (Steiger 1980, eq. 7).

    r12, r13: correlation of each metric with the labels; r23: between the two metrics; n images.
    Returns (t, two-sided p) with n - 3 degrees of freedom. H0: r12 == r13.
    """
    if n < 4:
        raise InputError(f"Williams' test needs at least 4 images, got {n}.")
    det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    den = 2 * (n - 1) / (n - 3) * det + rbar ** 2 * (1 - r23) ** 3
    if den <= 0:
        return (0.0, 1.0) if r12 == r13 else (float("inf") * np.sign(r12 - r13), 0.0)
    t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / den)
    return float(t), float(2 * stats.t.sf(abs(t), n - 3))


@dataclass(frozen=True)
class Comparison:
    """Whether metric A agrees with the labels better than metric B on the same images."""

    a: str
    b: str
    n: int
    diff_main: float                 # main(A) - main(B)
    diff_interval: Interval          # paired bootstrap interval of that difference
    p_bootstrap: float               # two-sided paired bootstrap p-value for diff_main == 0
    t_plcc: float                    # Williams' t on the fitted PLCCs
    p_plcc: float
    t_srcc: float                    # Williams' t on ranks (SRCC)
    p_srcc: float

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["diff_interval"] = self.diff_interval.as_dict()
        return d


def compare(pred_a, pred_b, mos, *, a: str = "A", b: str = "B", higher_better_a: bool | None = None,
            higher_better_b: bool | None = None, labels_higher_better: bool = True, mapping: str = "poly3",
            n_boot: int = 1000, seed: int = 0, level: float = 0.95, clusters=None) -> Comparison:
    """Significance of the difference between two metrics scored on the same images.

    ``a``/``b`` name the metrics; when they are registered metric names and ``higher_better_*`` is
    not given, their direction comes from the registry. Williams' test compares the fitted PLCCs
    (and, on ranks, the SRCCs); the paired bootstrap resamples images (or ``clusters``) once for
    both metrics and reports the interval and p-value of the difference in main score.
    """
    xa, y = _as_pair(pred_a, mos, min_n=5)
    xb, _ = _as_pair(pred_b, mos, min_n=5)
    qa = orient(xa, _direction_or_default(a, higher_better_a), labels_higher_better)
    qb = orient(xb, _direction_or_default(b, higher_better_b), labels_higher_better)
    opts = dict(mapping=mapping, n_boot=n_boot, seed=seed, clusters=clusters)
    return compare_oriented(qa, qb, y, bootstrap_draws(qa, y, **opts), bootstrap_draws(qb, y, **opts),
                            a=a, b=b, mapping=mapping, level=level)


def compare_oriented(qa, qb, y, draws_a: np.ndarray, draws_b: np.ndarray, *, a: str = "A", b: str = "B",
                     mapping: str = "poly3", level: float = 0.95) -> Comparison:
    """:func:`compare` for oriented predictions whose paired bootstrap draws are already computed."""
    qa, y = _as_pair(qa, y, min_n=5)
    qb, _ = _as_pair(qb, y, min_n=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ma, mb = fit_mapping(qa, y, mapping)(qa), fit_mapping(qb, y, mapping)(qb)
    n = y.size
    t_p, p_p = williams_test(_pearson(ma, y), _pearson(mb, y), _pearson(ma, mb), n)
    ra, rb, ry = stats.rankdata(qa), stats.rankdata(qb), stats.rankdata(y)
    t_s, p_s = williams_test(_pearson(ra, ry), _pearson(rb, ry), _pearson(ra, rb), n)
    diff = draws_a.sum(axis=1) - draws_b.sum(axis=1)
    diff = diff[np.isfinite(diff)]
    diff_main = (_pearson(ra, ry) + _pearson(ma, y)) - (_pearson(rb, ry) + _pearson(mb, y))
    if diff.size:  # (1 + count) / (B + 1): a bootstrap p-value is never below the resolution of B draws
        tail = min((diff <= 0).sum(), (diff >= 0).sum())
        p_boot = float(min(1.0, 2 * (1 + tail) / (diff.size + 1)))
    else:
        p_boot = float("nan")
    return Comparison(a, b, n, float(diff_main), _interval(diff, level), p_boot, t_p, p_p, t_s, p_s)


def _direction_or_default(name: str, given: bool | None) -> bool:
    if given is not None:
        return given
    from ..metrics import list_metrics

    return metric_direction(name) if name in list_metrics() else True
