"""Training losses for learned IQA models, by name: ``build_loss("plcc+0.1*l1")``.

Every loss takes ``pred`` (N,) and ``target`` (N,) float tensors (targets are MOS or Elo scores,
higher is better) and returns a scalar that is differentiable in ``pred``. Pairwise losses also take
``groups`` (N,): only images of the same group (reference id) are compared; ``None`` compares all.

=================  ================================================================================
name               loss
=================  ================================================================================
``l1``, ``mse``    mean absolute / squared error
``plcc``           (1 - PLCC) / 2
``norm_in_norm``   Li, Jiang, Jiang, "Norm-in-Norm Loss ...", ACM MM 2020
``srcc``           1 - PLCC(soft rank of pred, mid-ranks of target), pairwise-sigmoid soft rank
``fidelity``       fidelity loss on in-batch pairs (Zhang et al., UNIQUE, TIP 2021), logistic model
``bradley_terry``  cross-entropy of the Bradley-Terry probability against the label probability
``elo_ce``         cross-entropy of Elo probabilities, base 10 and 400 points (NTIRE 2021 teams)
``elo_mse``        squared error of the Bradley-Terry probability against the Elo probability on every
                   in-batch pair, across references (NTIRE 2021 team Huawei Noah's Ark)
``margin``         margin ranking loss on in-batch pairs ordered by target
=================  ================================================================================

docs/losses.md gives each formula and option. Input checks (shapes, too few images, NaN/inf) raise
:class:`~iqarena.errors.InputError`; the NaN check reads one boolean back from the device per call
and can be turned off with ``check=False``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..registry import Registry

LOSSES: Registry[type] = Registry("loss", listing="`iqarena.models.losses.LOSSES.names()`")

_LN10_OVER_400 = math.log(10.0) / 400.0  # Elo: 10 ** (d / 400) = exp(d * ln 10 / 400)


# ---------------------------------------------------------------- input checks

def _as_groups(groups, n: int, device: torch.device) -> torch.Tensor | None:
    """``groups`` as an integer tensor (N,): a tensor, or any sequence of hashable labels (e.g. file names)."""
    if groups is None:
        return None
    if not isinstance(groups, torch.Tensor):
        labels = list(groups)
        codes: dict[Any, int] = {}
        groups = torch.tensor([codes.setdefault(g, len(codes)) for g in labels], dtype=torch.long)
    if groups.dim() != 1 or groups.shape[0] != n:
        raise InputError(f"groups must give one label per image ({n}), got shape {tuple(groups.shape)}.")
    return groups.to(device)


def _flat(x, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch tensor of shape (N,), got {type(x).__name__}.")
    if x.dim() == 2 and x.shape[1] == 1:  # a regression head's (N, 1) output
        x = x[:, 0]
    if x.dim() != 1:
        raise InputError(f"{what} must have shape (N,) (or (N, 1)), got {tuple(x.shape)}.")
    return x


def check_inputs(pred, target, groups=None, *, min_n: int = 1, name: str = "loss", finite: bool = True):
    """``(pred, target, groups)`` checked and aligned: 1-D, same length, ``target`` in ``pred``'s dtype and
    device, ``groups`` as integer codes. InputError names the problem: shape mismatch, fewer than ``min_n``
    images, an integer ``pred``, or (``finite``) NaN/inf values."""
    pred, target = _flat(pred, "pred"), _flat(target, "target")
    if not pred.is_floating_point():
        raise InputError(f"pred must be a floating-point tensor (the model's output), got {pred.dtype}.")
    if pred.shape != target.shape:
        raise InputError(f"pred and target differ in length: {pred.shape[0]} vs {target.shape[0]}. "
                         "Give one prediction per label.")
    n = pred.shape[0]
    if n < min_n:
        raise InputError(f"{name} needs at least {min_n} images in a batch, got {n}"
                         + (" (it compares pairs of images)." if min_n >= 2 else "."))
    target = target.to(device=pred.device, dtype=pred.dtype)
    if finite and not bool(torch.isfinite(pred).all() & torch.isfinite(target).all()):
        bad_p, bad_t = int((~torch.isfinite(pred)).sum()), int((~torch.isfinite(target)).sum())
        raise InputError(f"{name}: non-finite values, {bad_p} in pred and {bad_t} in target. "
                         "Check the labels, the learning rate and the model's output for NaN or inf.")
    return pred, target, _as_groups(groups, n, pred.device)


# ---------------------------------------------------------------- shared pieces

def _pearson(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Pearson correlation; the denominator is clamped at ``eps`` (a constant side gives 0)."""
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm() * yc.norm()).clamp_min(eps)


def soft_rank(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Pairwise-sigmoid soft ranks: ``rank_i = 0.5 + sum_j sigmoid((x_i - x_j) / temperature)``.

    The sum includes ``j = i`` (``sigmoid(0) = 1/2``), so as ``temperature -> 0`` this tends to the
    1-based rank, and tied values to their average rank (the same convention as :func:`average_rank`).
    O(N^2) memory in the batch size.
    """
    if not temperature > 0:
        raise InputError(f"temperature must be > 0, got {temperature}.")
    return 0.5 + torch.sigmoid((x[:, None] - x[None, :]) / temperature).sum(dim=1)


def average_rank(x: torch.Tensor) -> torch.Tensor:
    """Exact 1-based ranks, ties given their average rank (scipy.stats.rankdata's default), in x's dtype."""
    d = x[:, None] - x[None, :]
    return 0.5 + (d > 0).to(x.dtype).sum(dim=1) + 0.5 * (d == 0).to(x.dtype).sum(dim=1)


def _pair_mask(target: torch.Tensor, groups: torch.Tensor | None, distinct: bool = False) -> torch.Tensor:
    """(N, N) float mask of the pairs compared: i < j, same group, and (``distinct``) different targets."""
    n = target.shape[0]
    mask = torch.ones(n, n, dtype=torch.bool, device=target.device).triu(diagonal=1)
    if groups is not None:
        mask &= groups[:, None] == groups[None, :]
    if distinct:
        mask &= target[:, None] != target[None, :]
    return mask.to(target.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the pairs in ``mask``; 0 (still attached to the graph) when there are none.

    A weighted sum rather than boolean indexing, so no device sync."""
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


# ---------------------------------------------------------------- the base class

class Loss(nn.Module):
    """A registered loss: ``loss(pred, target, groups=None)`` -> scalar.

    Subclasses implement :meth:`compute` on checked inputs; ``min_n`` is the fewest images a batch may
    hold. ``check=False`` skips the NaN/inf check (shape checks stay), which saves one device sync.
    """

    name = "loss"
    min_n = 1

    def __init__(self, check: bool = True):
        super().__init__()
        self.check = check

    def forward(self, pred: torch.Tensor, target: torch.Tensor, groups=None) -> torch.Tensor:
        pred, target, groups = check_inputs(pred, target, groups, min_n=self.min_n, name=self.name,
                                            finite=self.check)
        return self.compute(pred, target, groups)

    def compute(self, pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        sig = inspect.signature(type(self).__init__)
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in list(sig.parameters)[1:]
                         if k != "check" and hasattr(self, k))


def _register(name: str, aliases: tuple[str, ...] = ()):
    def deco(cls: type[Loss]) -> type[Loss]:
        cls.name = name
        LOSSES.add(name, cls, aliases=aliases)
        return cls
    return deco


# ---------------------------------------------------------------- pointwise

@_register("l1", aliases=("mae",))
class L1Loss(Loss):
    """Mean absolute error, ``mean |pred_i - target_i|``."""

    def compute(self, pred, target, groups):
        return (pred - target).abs().mean()


@_register("mse", aliases=("l2",))
class MSELoss(Loss):
    """Mean squared error, ``mean (pred_i - target_i)^2``."""

    def compute(self, pred, target, groups):
        return (pred - target).pow(2).mean()


@_register("smooth_l1", aliases=("huber",))
class SmoothL1Loss(Loss):
    """Smooth L1 (IQMA's regression loss): ``0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta``,
    averaged, with ``d = pred - target`` (torch's formula; ``beta`` in label units)."""

    def __init__(self, beta: float = 1.0, check: bool = True):
        super().__init__(check)
        self.beta = _positive("beta", beta)

    def compute(self, pred, target, groups):
        return nn.functional.smooth_l1_loss(pred, target, beta=self.beta)


# ---------------------------------------------------------------- correlation

@_register("plcc")
class PLCCLoss(Loss):
    """``(1 - PLCC(pred, target)) / 2`` in [0, 1], with PLCC = <p_c, t_c> / max(||p_c|| ||t_c||, eps)
    (p_c, t_c: centred). Invariant to ``pred -> a * pred + b`` for a > 0. A constant side gives PLCC 0."""

    min_n = 2

    def __init__(self, eps: float = 1e-8, check: bool = True):
        super().__init__(check)
        self.eps = _positive("eps", eps)

    def compute(self, pred, target, groups):
        return (1 - _pearson(pred, target, self.eps)) / 2


@_register("norm_in_norm", aliases=("norm-in-norm", "nin"))
class NormInNormLoss(Loss):
    """Norm-in-Norm loss (Li, Jiang, Jiang, "Norm-in-Norm Loss with Faster Convergence and Better
    Performance for Image Quality Assessment", ACM MM 2020).

    Normalise both sides: ``x' = (x - mean x) / max(||x - mean x||_q, eps)``. With ``e = pred' - target'``::

        loss0 = ||e||_p^p / c,      loss1 = ||rho * pred' - target'||_p^p / c,
        c = (2^max(1, 1/q) * N^max(0, 1/p - 1/q))^p,           rho = PLCC(pred, target),
        loss = (alpha0 * loss0 + alpha1 * loss1) / (alpha0 + alpha1)

    ``c`` bounds each term by 1 (||x'||_q = 1 on both sides). For p = q = 2, ``loss0 = (1 - rho) / 2``
    (the ``plcc`` loss) and ``loss1 = (1 - rho^2) / 4``. ``detach``: the mean and norm of ``pred`` are
    treated as constants (the authors' option). The authors' code trains with p = 1, q = 2,
    alpha = (1, 0); the default here is p = q = 2. Their code computes ``rho`` per element of an (N, 1)
    tensor (a sign); here it is the batch PLCC, as the paper writes it. They divide by ``norm + eps``;
    the clamp here keeps the loss exactly invariant to ``pred -> a * pred + b`` (a > 0).
    """

    min_n = 2

    def __init__(self, p: float = 2.0, q: float = 2.0, alpha: Sequence[float] = (1.0, 0.0), detach: bool = False,
                 eps: float = 1e-8, check: bool = True):
        super().__init__(check)
        self.p, self.q = _positive("p", p), _positive("q", q)
        if self.p < 1 or self.q < 1:
            raise InputError(f"norm_in_norm needs p >= 1 and q >= 1 (|e|^p has no gradient at 0 below 1), "
                             f"got p={p}, q={q}.")
        alpha = tuple(float(a) for a in alpha)
        if len(alpha) != 2 or min(alpha) < 0 or sum(alpha) <= 0:
            raise InputError(f"alpha must be two weights >= 0, not both 0, got {alpha}.")
        self.alpha, self.detach, self.eps = alpha, bool(detach), _positive("eps", eps)

    def _normalise(self, x: torch.Tensor, detach: bool) -> torch.Tensor:
        mean = x.detach().mean() if detach else x.mean()
        x = x - mean
        norm = x.detach().norm(p=self.q) if detach else x.norm(p=self.q)
        return x / norm.clamp_min(self.eps)

    def compute(self, pred, target, groups):
        n = pred.shape[0]
        pn, tn = self._normalise(pred, self.detach), self._normalise(target, False)
        c = (2 ** max(1.0, 1 / self.q) * n ** max(0.0, 1 / self.p - 1 / self.q)) ** self.p
        a0, a1 = self.alpha
        loss = pred.new_zeros(())
        if a0 > 0:
            loss = loss + a0 * (pn - tn).abs().pow(self.p).sum() / c
        if a1 > 0:
            rho = _pearson(pn, tn, self.eps)
            loss = loss + a1 * (rho * pn - tn).abs().pow(self.p).sum() / c
        return loss / (a0 + a1)


@_register("srcc", aliases=("soft_srcc",))
class SoftSRCCLoss(Loss):
    """Differentiable SRCC: ``1 - PLCC(soft_rank(z, temperature), average_rank(target))``, in [0, 2].

    ``z`` is ``pred`` standardised over the batch (mean 0, population std 1), so ``temperature`` is in
    standard deviations and the loss is invariant to ``pred -> a * pred + b`` (a > 0); scaling the
    outputs up cannot sharpen the ranks. :func:`soft_rank` is the pairwise-sigmoid relaxation
    ``0.5 + sum_j sigmoid((z_i - z_j) / temperature)``; target ranks are exact, ties averaged. As
    ``temperature -> 0`` the loss tends to ``1 - SRCC`` (scipy.stats.spearmanr), hence invariance to any
    increasing transform of ``pred``; the gradient vanishes in that limit, so train with a moderate value.
    """

    min_n = 2

    def __init__(self, temperature: float = 0.1, eps: float = 1e-8, check: bool = True):
        super().__init__(check)
        self.temperature, self.eps = _positive("temperature", temperature), _positive("eps", eps)

    def compute(self, pred, target, groups):
        z = (pred - pred.mean()) / pred.std(correction=0).clamp_min(self.eps)
        return 1 - _pearson(soft_rank(z, self.temperature), average_rank(target), self.eps)


# ---------------------------------------------------------------- pairwise

_LABELS = ("mos", "elo", "binary")


class _PairwiseLoss(Loss):
    """Pairs (i < j) of the same group. Model: ``P_ij = sigmoid((pred_i - pred_j) / scale)``, the
    Bradley-Terry (logistic) model rather than Thurstone's Phi. Labels: ``mos`` gives
    ``p_ij = sigmoid((t_i - t_j) / target_scale)``, ``elo`` gives ``1 / (1 + 10^((t_j - t_i) / 400))``,
    ``binary`` gives 1, 1/2 or 0 as t_i >, =, < t_j. A batch without any pair in a group gives 0."""

    min_n = 2

    def __init__(self, scale: float = 1.0, target_scale: float = 1.0, labels: str = "mos", check: bool = True):
        super().__init__(check)
        self.scale, self.target_scale = _positive("scale", scale), _positive("target_scale", target_scale)
        if labels not in _LABELS:
            raise InputError(f"labels must be one of {', '.join(_LABELS)}, got {labels!r}.")
        self.labels = labels

    def _target_prob(self, target: torch.Tensor) -> torch.Tensor:
        dt = target[:, None] - target[None, :]
        if self.labels == "elo":
            return torch.sigmoid(dt * _LN10_OVER_400)
        if self.labels == "binary":
            return (torch.sign(dt) + 1) / 2
        return torch.sigmoid(dt / self.target_scale)

    def compute(self, pred, target, groups):
        logit = (pred[:, None] - pred[None, :]) / self.scale
        return _masked_mean(self._pair_loss(logit, self._target_prob(target)), _pair_mask(target, groups))

    def _pair_loss(self, logit: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@_register("fidelity", aliases=("fid",))
class FidelityLoss(_PairwiseLoss):
    """Fidelity loss (Zhang et al., "Uncertainty-Aware Blind Image Quality Assessment in the Laboratory
    and Wild" (UNIQUE), IEEE TIP 2021; Tsai et al., "FRank", SIGIR 2007) on in-batch pairs:
    ``1 - sqrt(p P) - sqrt((1 - p)(1 - P))`` averaged over the pairs, with ``P`` and ``p`` as in the
    pairwise models above. ``sqrt(P)`` is computed as ``exp(logsigmoid(logit) / 2)``, so the
    gradient stays finite when ``P`` saturates; zero at p = P."""

    def _pair_loss(self, logit, p):
        sqrt_P, sqrt_not_P = torch.exp(0.5 * F.logsigmoid(logit)), torch.exp(0.5 * F.logsigmoid(-logit))
        return 1 - p.sqrt() * sqrt_P - (1 - p).sqrt() * sqrt_not_P


@_register("bradley_terry", aliases=("bt",))
class BradleyTerryLoss(_PairwiseLoss):
    """Cross-entropy of the Bradley-Terry probability ``P`` against the label probability ``p`` on
    in-batch pairs (Bradley and Terry, Biometrika 1952; RankNet, Burges et al., ICML 2005):
    ``-(p log P + (1 - p) log(1 - P))`` averaged over the pairs, computed with logsigmoid."""

    def _pair_loss(self, logit, p):
        return -(p * F.logsigmoid(logit) + (1 - p) * F.logsigmoid(-logit))


@_register("elo_ce", aliases=("elo",))
class EloCELoss(_PairwiseLoss):
    """Elo-probability cross-entropy for Elo-scale predictions and labels (the pairwise losses of NTIRE
    2021 Perceptual IQA teams, Gu et al., CVPR-W 2021; Elo's 1978 rating formula): with
    ``P_ij = 1 / (1 + 10^((pred_j - pred_i) / 400))`` and ``p_ij = 1 / (1 + 10^((t_j - t_i) / 400))``,
    ``-(p log P + (1 - p) log(1 - P))`` averaged over in-batch pairs (same group). The base 10 and the
    400 points are fixed: this is ``bradley_terry`` with ``scale = 400 / ln 10`` and ``labels = "elo"``."""

    def __init__(self, check: bool = True):
        super().__init__(scale=1 / _LN10_OVER_400, labels="elo", check=check)

    def _pair_loss(self, logit, p):
        return -(p * F.logsigmoid(logit) + (1 - p) * F.logsigmoid(-logit))


@_register("elo_mse", aliases=("bt_any", "noah_pairwise"))
class EloMSELoss(_PairwiseLoss):
    """Reference-agnostic pairwise loss of Huawei Noah's Ark (NTIRE 2021 Perceptual IQA, Gu et al., CVPR-W 2021,
    Section 5.6): ``(P_ij - p_ij)^2`` averaged over every in-batch pair i < j, with the Bradley-Terry
    probability ``P_ij = sigmoid((pred_i - pred_j) / scale)`` and the Elo probability
    ``p_ij = 1 / (1 + 10^((t_j - t_i) / 400))`` of the labels. ``across=True`` (default) pairs images of
    different references too (``groups`` is ignored); ``across=False`` keeps the same-group pairs only. The
    default ``scale = 400 / ln 10`` puts Elo-scale predictions on the labels' Elo curve (``P = p`` when
    ``pred_i - pred_j = t_i - t_j``)."""

    def __init__(self, scale: float = 1 / _LN10_OVER_400, across: bool = True, check: bool = True):
        super().__init__(scale=scale, labels="elo", check=check)
        self.across = bool(across)

    def compute(self, pred, target, groups):
        return super().compute(pred, target, None if self.across else groups)

    def _pair_loss(self, logit, p):
        return (torch.sigmoid(logit) - p).pow(2)


@_register("margin", aliases=("margin_ranking", "rank"))
class MarginLoss(Loss):
    """Margin ranking loss on in-batch pairs (i < j, same group, t_i != t_j), torch's formula
    ``max(0, -sign(t_i - t_j) (pred_i - pred_j) + margin)`` averaged over those pairs. ``margin`` is in
    prediction units; with margin 0 a constant prediction already has zero loss. Tied labels are
    not pairs (their term would be a constant ``margin``). No pair gives 0."""

    min_n = 2

    def __init__(self, margin: float = 0.1, check: bool = True):
        super().__init__(check)
        if not (isinstance(margin, numbers.Real) and not isinstance(margin, bool) and math.isfinite(margin)
                and margin >= 0):
            raise InputError(f"margin must be a finite number >= 0, got {margin!r}.")
        self.margin = float(margin)

    def compute(self, pred, target, groups):
        sign = torch.sign(target[:, None] - target[None, :])
        hinge = F.relu(-sign * (pred[:, None] - pred[None, :]) + self.margin)
        return _masked_mean(hinge, _pair_mask(target, groups, distinct=True))


# ---------------------------------------------------------------- weighted sums by name

_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"\s*(?:({_NUMBER})\s*\*\s*)?([A-Za-z_][A-Za-z0-9_\-]*)\s*(\+|$)")


def parse_spec(spec: str) -> list[tuple[float, str]]:
    """``"0.5*plcc + l1"`` -> ``[(0.5, "plcc"), (1.0, "l1")]``, names resolved to their canonical form.

    Grammar: terms ``[weight *] name`` joined by ``+``; weights are positive decimal numbers.
    InputError for a malformed spec, an unknown name (listing the known ones) or a name given twice.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"a loss spec is a string such as 'plcc+0.1*l1', got {spec!r}. "
                         f"Known losses: {', '.join(LOSSES.names())}.")
    terms: list[tuple[float, str]] = []
    pos = 0
    while pos < len(spec):
        m = _TERM.match(spec, pos)
        if m is None or m.end() == pos:
            raise InputError(f"cannot read loss spec {spec!r} at {spec[pos:]!r}: write terms as "
                             "'[weight*]name' joined by '+', e.g. 'plcc+0.1*l1'.")
        weight = float(m.group(1)) if m.group(1) else 1.0
        if not (math.isfinite(weight) and weight > 0):
            raise InputError(f"loss weight must be a finite number > 0, got {m.group(1)!r} in {spec!r}.")
        name = LOSSES.resolve(m.group(2))
        if any(name == n for _, n in terms):
            raise InputError(f"loss {name!r} appears twice in {spec!r}; give it once with one weight.")
        terms.append((weight, name))
        pos = m.end()
        if m.group(3) == "+" and pos >= len(spec.rstrip()):
            raise InputError(f"loss spec {spec!r} ends with '+'; a term is missing.")
    return terms


class CombinedLoss(nn.Module):
    """A weighted sum of registered losses, ``sum_k w_k loss_k(pred, target, groups)``.

    Inputs are checked once, for the strictest term; ``groups`` reaches every term (only pairwise losses
    use it). :meth:`components` gives each term's unweighted value too, for logging.
    """

    def __init__(self, terms: Sequence[tuple[float, str, nn.Module]], check: bool = True):
        super().__init__()
        self.weights = [float(w) for w, _, _ in terms]
        self.names = [n for _, n, _ in terms]
        self.terms = nn.ModuleList([m for _, _, m in terms])
        self.check = check
        self.min_n = max(getattr(m, "min_n", 1) for m in self.terms)

    @property
    def spec(self) -> str:
        return "+".join(n if w == 1 else f"{w:g}*{n}" for w, n in zip(self.weights, self.names))

    def components(self, pred, target, groups=None) -> dict[str, torch.Tensor]:
        """``{name: unweighted value, ..., "total": weighted sum}``."""
        pred, target, groups = check_inputs(pred, target, groups, min_n=self.min_n, name=f"loss {self.spec!r}",
                                            finite=self.check)
        out: dict[str, torch.Tensor] = {}
        total = pred.new_zeros(())
        for w, n, term in zip(self.weights, self.names, self.terms):
            value = term.compute(pred, target, groups) if isinstance(term, Loss) else term(pred, target)
            out[n] = value
            total = total + w * value
        out["total"] = total
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor, groups=None) -> torch.Tensor:
        return self.components(pred, target, groups)["total"]

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}"


def _options_of(cls) -> list[str]:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return [k for k, p in params.items() if k != "check" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def build_loss(spec: str, *, check: bool = True, **options) -> CombinedLoss:
    """One module for a loss spec such as ``"plcc+0.1*l1"`` or ``"0.5*srcc + fidelity"``.

    ``options``: ``name=value`` goes to every term that has that option (``temperature=0.05``);
    ``<loss>={...}`` (a dict keyed by a term's name) goes to that term only
    (``build_loss("fidelity+margin", margin={"margin": 0.5})``). An option no term takes is an InputError
    naming each term's options. ``check=False`` skips the NaN/inf check.
    """
    terms = parse_spec(spec)
    per_term: dict[str, dict] = {n: {} for _, n in terms}
    shared: dict[str, Any] = {}
    for key, value in options.items():
        if key in LOSSES and LOSSES.resolve(key) in per_term and isinstance(value, dict):
            per_term[LOSSES.resolve(key)].update(value)
        else:
            shared[key] = value
    accepts = {n: _options_of(LOSSES.get(n)) for n in per_term}

    def describe() -> str:
        return "; ".join(f"{n}: {', '.join(accepts[n]) or '(none)'}" for n in per_term)

    for key in shared:
        if not any(key in accepts[n] for n in per_term):
            raise InputError(f"no loss in {spec!r} has an option {key!r}; their options: {describe()}.", option=key)
    built = []
    for weight, name in terms:
        own = per_term[name]
        for key in own:
            if key not in accepts[name]:
                raise InputError(f"loss {name!r} has no option {key!r}; its options: "
                                 f"{', '.join(accepts[name]) or '(none)'}.", option=key)
        kwargs = {k: v for k, v in shared.items() if k in accepts[name]} | own
        cls = LOSSES.get(name)
        if "check" in inspect.signature(cls).parameters:
            kwargs["check"] = check
        built.append((weight, name, cls(**kwargs)))
    return CombinedLoss(built, check=check)
