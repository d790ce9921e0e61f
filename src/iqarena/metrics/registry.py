"""The metric registry: one entry per metric, and the module that checks input before scoring.

A metric file defines a pure function over NCHW tensors and registers it::

    @register("ssim", kind="fr", higher_better=True, score_range=(0, 1),
              paper="Wang et al., 2004", code="https://...")
    def ssim(dist, ref, *, ...): ...

A metric that holds parameters (a network) registers an ``nn.Module`` subclass instead; its
constructor takes the options, its ``forward`` takes ``(dist, ref)`` or ``(dist,)``.
``create_metric(name)`` returns a :class:`Metric` module that validates inputs (shape, dtype,
range, NaN, size match) and calls the function or the wrapped module.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: Literal["fr", "nr"]
    higher_better: bool
    score_range: tuple[float, float]
    paper: str
    code: str
    colour: str
    target: Callable
    weights: tuple[str, ...] = ()
    defaults: dict = field(default_factory=dict)

    @property
    def needs_ref(self) -> bool:
        return self.kind == "fr"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.target) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, MetricInfo] = {}


def register(name: str, *, kind: Literal["fr", "nr"], higher_better: bool, score_range: tuple[float, float],
             paper: str, code: str, colour: str, weights: tuple[str, ...] = (), **defaults):
    """Decorator registering a metric function or nn.Module class under ``name``.

    ``defaults`` are keyword options bound when the metric is created by name (for variants such as
    ``fsimc`` that share a function with ``fsim``). ``colour`` says how colour input is handled.
    """
    if kind not in ("fr", "nr"):
        raise ValueError("kind must be 'fr' or 'nr'")

    def deco(target):
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} registered twice")
        _REGISTRY[name] = MetricInfo(name, kind, higher_better, tuple(score_range), paper, code, colour,
                                     target, tuple(weights), dict(defaults))
        return target

    return deco


def list_metrics(kind: str | None = None) -> list[str]:
    """Names of the registered metrics, sorted; ``kind='fr'`` or ``'nr'`` filters."""
    return sorted(n for n, i in _REGISTRY.items() if kind is None or i.kind == kind)


def get_info(name: str) -> MetricInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown metric {name!r}. `iqarena metrics` lists the available ones: "
                       f"{', '.join(list_metrics())}.") from None


def check_image(x: torch.Tensor, what: str = "image") -> None:
    """Raise IQAError unless ``x`` is a finite float NCHW tensor with 1 or 3 channels in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4:
        raise InputError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}. "
                       "Add a batch dimension with x.unsqueeze(0).")
    if not x.is_floating_point():
        raise InputError(f"{what} has dtype {x.dtype}; metrics take float tensors in [0, 1]. "
                       "Convert with x.float() / 255 for 8-bit data.")
    if x.shape[1] not in (1, 3):
        raise InputError(f"{what} has {x.shape[1]} channels; give 1 (grey) or 3 (RGB).")
    if x.numel() == 0:
        raise InputError(f"{what} is empty: shape {tuple(x.shape)}.")
    with torch.no_grad():
        lo, hi = (v.item() for v in torch.aminmax(x.detach()))  # one pass; NaN propagates into both
    if lo != lo or hi != hi:
        raise InputError(f"{what} contains NaN values.")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"{what} has values in [{lo:.4g}, {hi:.4g}]; metrics take [0, 1]. "
                       "Divide 8-bit data by 255.")


class Metric(nn.Module):
    """A registered metric as a torch module: ``m(dist, ref)`` or ``m(dist)`` -> scores of shape (N,)."""

    #: images per call on CPU (None: the whole batch at once); every metric scores images independently.
    cpu_chunk: int | None = 1

    def __init__(self, info: MetricInfo, **options):
        super().__init__()
        self.info = info
        opts = {**info.defaults, **options}
        if inspect.isclass(info.target) and issubclass(info.target, nn.Module):
            self.net = info.target(**opts)
            self.fn = None
        else:
            _check_options(info, opts)
            self.net = None
            self.fn = functools.partial(info.target, **opts)

    @property
    def name(self) -> str:
        return self.info.name

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_image(dist, "dist")
        if self.info.needs_ref:
            if ref is None:
                raise InputError(f"{self.name} is a full-reference metric: call it as metric(dist, ref).")
            check_image(ref, "ref")
            if dist.shape != ref.shape:
                raise InputError(f"dist and ref differ in shape: {tuple(dist.shape)} vs {tuple(ref.shape)}. "
                               "A full-reference metric needs images of the same size and channels.")
            args = (dist, ref)
        else:
            args = (dist,)
        target = self.net if self.net is not None else self.fn
        n = dist.shape[0]
        if dist.device.type != "cpu" or self.cpu_chunk is None or n <= self.cpu_chunk:
            return target(*args)
        # On CPU, small chunks keep the working set in cache: 2-6x faster than one large batch.
        c = self.cpu_chunk
        return torch.cat([target(*(a[i:i + c] for a in args)) for i in range(0, n, c)])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.info.kind!r}, higher_better={self.info.higher_better}"


def _check_options(info: MetricInfo, opts: dict) -> None:
    params = inspect.signature(info.target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in opts if k not in params]
    if unknown:
        known = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
        raise InputError(f"{info.name} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(known)}.")


def create_metric(name: str, device: str | torch.device = "cpu", **options) -> Metric:
    """Create a registered metric as a torch module on ``device``; ``options`` override its defaults."""
    metric = Metric(get_info(name), **options)
    return metric.to(device).eval()


def is_available(info: MetricInfo) -> bool:
    """True when every parameter file the metric needs is present (always, for parameter-free metrics)."""
    if not info.weights:
        return True
    from ..weights import is_present  # the parameter-file catalogue

    return all(is_present(w) for w in info.weights)
