"""The metric registry and the module that checks input before scoring.

Everything that scores images registers here, in one :class:`~iqarena.registry.Registry`: the
calibrated metrics, the learned models, trained checkpoints and fitted ensembles (``family`` tells
them apart). A metric file defines a pure function over NCHW tensors and registers it::

    @register("ssim", kind="fr", higher_better=True, score_range=(0, 1),
              paper="Wang et al., 2004", code="https://...")
    def ssim(dist, ref, *, ...): ...

An entry that holds parameters registers an ``nn.Module`` class, or any factory returning a module
(``module=True``; for example one that loads a checkpoint); its keyword arguments are the options.
``create_metric(name)`` returns a :class:`Metric` module that validates inputs (shape, dtype, range,
NaN, size match) and calls the function or the built module. A name that is not registered but is
the path of an iqarena checkpoint file, or of a fitted ensemble's folder, registers it (see
``checkpoint.py``).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from ..errors import DegenerateInputWarning, InputError
from ..registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: Literal["fr", "nr"]
    higher_better: bool
    score_range: tuple[float, float]
    target: Callable  # the scoring function, or a factory (a module class) building an nn.Module
    module: bool = False  # True: ``target(**options)`` builds a module; False: ``target(dist, [ref], **options)``
    paper: str = ""
    code: str = ""
    colour: str = ""
    weights: tuple[str, ...] = ()  # catalogue names of the parameter files it needs
    defaults: dict = field(default_factory=dict)
    family: str = "metric"  # metric | model | checkpoint | ensemble
    files: tuple[str, ...] = ()  # user files this entry was made from (a checkpoint): part of its identity
    trained: bool = True  # False: a model architecture with no trained weights yet (train it, then use its checkpoint)
    #: smallest height and width it scores: a number, or a function of the options (all of them, defaults filled in)
    min_size: int | Callable[[dict], int] = 1
    size_note: str = ""  # what sets min_size (a window, a pyramid, a block), for messages and `iqarena metrics`
    #: why a score can be NaN, +inf or -inf (keys "nan", "inf", "-inf"): the original code's own cases
    nonfinite: dict = field(default_factory=dict)

    @property
    def needs_ref(self) -> bool:
        return self.kind == "fr"

    def min_side(self, options: dict | None = None) -> int:
        """``min_size`` for these options (the entry's defaults, then the target's, where not given)."""
        if not callable(self.min_size):
            return int(self.min_size)
        params = inspect.signature(self.target).parameters.values()
        base = {p.name: p.default for p in params if p.default is not p.empty}
        return int(self.min_size({**base, **self.defaults, **(options or {})}))

    def nonfinite_cause(self, value: float) -> str:
        """Why this metric gives ``value`` (NaN or an infinity): its declared cause, or a note that none is known."""
        kind = "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
        return self.nonfinite.get(kind) or "no documented cause for this metric (please report the image)"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.target) or ""
        return doc.splitlines()[0] if doc else ""


METRICS: Registry[MetricInfo] = Registry("metric", group="iqarena.metrics", listing="`iqarena metrics`")


def register(name: str, *, kind: Literal["fr", "nr"], higher_better: bool, score_range: tuple[float, float],
             paper: str = "", code: str = "", colour: str = "", weights: tuple[str, ...] = (),
             aliases: tuple[str, ...] = (), family: str = "metric", module: bool | None = None, trained: bool = True,
             min_size: int | Callable[[dict], int] = 1, size_note: str = "", nonfinite: dict | None = None,
             **defaults):
    """Decorator registering a metric function, an ``nn.Module`` class or a module factory under ``name``.

    ``defaults`` are keyword options bound when the metric is created by name (for variants such as
    ``fsimc`` that share a function with ``fsim``). ``colour`` says how colour input is handled.
    ``module`` (default: whether the target is an ``nn.Module`` class) says that calling the target
    with the options builds a module. ``trained=False`` marks a model with no trained weights: it can
    be trained and built, but ``all`` leaves it out. ``min_size`` (with ``size_note``, what sets it) is
    the smallest height and width it scores, checked before scoring; ``nonfinite`` maps "nan", "inf" and
    "-inf" to the input that makes the original code return them (docs/robustness.md).
    """
    if kind not in ("fr", "nr"):
        raise InputError(f"metric {name!r}: kind must be 'fr' or 'nr', got {kind!r}.")

    def deco(target):
        is_module = module if module is not None else inspect.isclass(target) and issubclass(target, nn.Module)
        METRICS.add(name, MetricInfo(name, kind, higher_better, tuple(score_range), target, is_module, paper, code,
                                     colour, tuple(weights), dict(defaults), family, trained=trained,
                                     min_size=min_size, size_note=size_note, nonfinite=dict(nonfinite or {})),
                    aliases=aliases)
        return target

    return deco


def register_variant(name: str, base: str, *, replace_existing: bool = False, **options) -> MetricInfo:
    """Register ``base`` with other default options under a new name, at run time: a user's own parameter
    file (``register_variant("niqe_mine", "niqe", model="mine.mat")``). Files named by options are part
    of the variant's fingerprint, so scores cached for another file are never reused."""
    info = get_info(base)
    _check_options(info, options)
    files = tuple(str(v) for v in options.values() if isinstance(v, (str, Path)) and Path(v).is_file())
    new = replace(info, name=name, defaults={**info.defaults, **options}, files=info.files + files)
    return METRICS.add(name, new, replace=replace_existing)


def list_metrics(kind: str | None = None, family: str | None = None) -> list[str]:
    """Names of the registered metrics, sorted; ``kind='fr'``/``'nr'`` and ``family`` filter."""
    return [n for n, i in METRICS.items()
            if (kind is None or i.kind == kind) and (family is None or i.family == family)]


def get_info(name: str | Path) -> MetricInfo:
    """The entry of a registered name or alias, or of a checkpoint file (registered on first use)."""
    from .checkpoint import current, register_path

    key = str(name)
    if key not in METRICS and (Path(key).is_dir() or Path(key).suffix and Path(key).is_file()):
        return register_path(key)
    return current(METRICS.get(key))


def is_available(info: MetricInfo) -> bool:
    """True when the entry can score as it is: trained, and every parameter file it needs present."""
    if not info.trained:
        return False
    if not info.weights:
        return True
    from ..weights import is_present  # the parameter-file catalogue

    return all(is_present(w) for w in info.weights)


def available_metrics(kind: str | None = None) -> list[str]:
    """Registered metrics that can score as they are (trained, parameter files present)."""
    return [n for n in list_metrics(kind) if is_available(get_info(n))]


def expand_metrics(names: list[str], have_ref: bool) -> list[str]:
    """Names as given, ``all`` replaced by every available metric that fits (no-reference ones only when
    there are no references), aliases resolved, duplicates dropped, order kept."""
    out: list[str] = []
    for n in names:
        out += available_metrics(None if have_ref else "nr") if n == "all" else [get_info(n).name]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- one metric with options

@dataclass(frozen=True)
class MetricSpec:
    """A metric and the options it is built with: what a job scores, what a stored score belongs to."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str | Path, **options) -> "MetricSpec":
        info = get_info(name)
        _check_options(info, options)
        return cls(info.name, tuple(sorted(options.items())))

    @property
    def info(self) -> MetricInfo:
        return get_info(self.name)

    @property
    def options_json(self) -> str:
        """The options as canonical JSON (``{}`` for none): the store's ``options`` column."""
        return json.dumps(dict(self.options), sort_keys=True, default=str)

    def build(self, device: str | torch.device = "cpu") -> "Metric":
        return create_metric(self.name, device=device, **dict(self.options))

    def __str__(self) -> str:
        return self.name + (f"({', '.join(f'{k}={v!r}' for k, v in self.options)})" if self.options else "")


# ---------------------------------------------------------------- input checks and the module

def check_image(x: torch.Tensor, what: str = "image", values: bool = True) -> None:
    """Raise InputError unless ``x`` is a float NCHW tensor with 1 or 3 channels, and, with ``values``,
    finite and in [0, 1]. The value check reads the tensor (one device sync); the rest is metadata."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4:
        raise InputError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}. "
                         "Add a batch dimension with x.unsqueeze(0).")
    if not x.is_floating_point():
        raise InputError(f"{what} has dtype {x.dtype}; metrics take float tensors in [0, 1]. "
                         "Convert with x.float() / 255 for 8-bit data.")
    if x.shape[1] not in (1, 3):
        raise InputError(f"{what} has {x.shape[1]} channels; give RGB or grey images (3 or 1 channels).")
    if x.numel() == 0:
        raise InputError(f"{what} is empty: shape {tuple(x.shape)}.")
    if not values:
        return
    with torch.no_grad():
        lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # one pass, one sync; NaN propagates into both
    if lo != lo or hi != hi:
        raise InputError(f"{what} contains NaN values.")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"{what} has values in [{lo:.4g}, {hi:.4g}]; metrics take [0, 1]. "
                         "Divide 8-bit data by 255.")


Check = Literal["auto", "full", "shape"]


class Metric(nn.Module):
    """A registered metric as a torch module: ``m(dist, ref)`` or ``m(dist)`` -> scores of shape (N,).

    ``check``: ``"full"`` checks shapes and values (NaN, range [0, 1]; one device sync per call),
    ``"shape"`` only shapes and dtypes (no sync: for losses in a training loop), ``"auto"`` (default)
    is ``"full"`` unless an input requires grad. Every mode refuses images smaller than the metric's
    ``min_size`` (an InputError naming the size needed). Scores that come out NaN or infinite (the
    original code's value on degenerate input, docs/robustness.md) are returned as they are with one
    :class:`~iqarena.errors.DegenerateInputWarning` per call naming the metric and the cause; on a GPU
    this check runs only where values are checked (it reads the scores back).
    """

    #: images per call on CPU (None: the whole batch at once); every metric scores images independently.
    cpu_chunk: int | None = 1

    def __init__(self, info: MetricInfo, check: Check = "auto", **options):
        super().__init__()
        if check not in ("auto", "full", "shape"):
            raise InputError(f"check must be 'auto', 'full' or 'shape', got {check!r}.")
        self.info = info
        self.check = check
        opts = {**info.defaults, **options}
        _check_options(info, opts)
        if info.module:
            self.net = info.target(**opts)
            self.fn = None
        else:
            self.net = None
            self.fn = functools.partial(info.target, **opts)
        try:
            self.min_size = info.min_side(opts)
        except (KeyError, TypeError, ValueError):  # options the target accepted but the size rule cannot read
            self.min_size = 1

    @property
    def name(self) -> str:
        return self.info.name

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        values = self.check == "full" or (self.check == "auto" and not (
            dist.requires_grad or (isinstance(ref, torch.Tensor) and ref.requires_grad)))
        check_image(dist, "dist", values)
        if self.info.needs_ref:
            if ref is None:
                raise InputError(f"{self.name} is a full-reference metric: call it as metric(dist, ref).")
            check_image(ref, "ref", values)
            if dist.shape != ref.shape:
                raise InputError(f"dist and ref differ in shape: {tuple(dist.shape)} vs {tuple(ref.shape)}. "
                                 "A full-reference metric needs images of the same size and channels.")
            args = (dist, ref)
        elif ref is not None:
            raise InputError(f"{self.name} is a no-reference metric and takes no reference: call it as "
                             "metric(dist).")
        else:
            args = (dist,)
        h, w = dist.shape[-2:]
        if min(h, w) < self.min_size:
            m = self.min_size
            why = f" ({self.info.size_note})" if self.info.size_note else ""
            raise InputError(f"{self.name} needs images of at least {m}x{m} pixels{why}; got {h}x{w} (height x "
                             "width). Use larger images, or a metric for small ones (docs/robustness.md lists "
                             "each metric's minimum size).")
        target = self.net if self.net is not None else self.fn
        n = dist.shape[0]
        if dist.device.type != "cpu" or self.cpu_chunk is None or n <= self.cpu_chunk:
            out = target(*args)
        else:  # On CPU, small chunks keep the working set in cache: 2-6x faster than one large batch.
            c = self.cpu_chunk
            out = torch.cat([target(*(a[i:i + c] for a in args)) for i in range(0, n, c)])
        if out.device.type == "cpu" or values:
            warn_nonfinite(self.info, out, stacklevel=5)  # the caller of the module, past torch's two call frames
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.info.kind!r}, higher_better={self.info.higher_better}"


def warn_nonfinite(info: MetricInfo, scores: torch.Tensor, stacklevel: int = 3) -> None:
    """One DegenerateInputWarning naming the metric and the cause when any of ``scores`` is NaN or infinite."""
    with torch.no_grad():
        bad = scores.detach()[~torch.isfinite(scores.detach())]
        if not bad.numel():
            return
        values = bad.double().cpu().tolist()
    kinds: dict[str, list[float]] = {}
    for v in values:
        kinds.setdefault("nan" if math.isnan(v) else "inf" if v > 0 else "-inf", []).append(v)
    counts = " and ".join(f"{k} for {len(v)}" for k, v in kinds.items())
    causes = "; ".join(f"{k}: {info.nonfinite_cause(v[0])}" for k, v in kinds.items())
    known = all(k in info.nonfinite for k in kinds)
    warnings.warn(f"{info.name} gave {counts} of {scores.numel()} image(s), "
                  f"{'as the original code does on such input' if known else 'returned as they are'}. {causes}.",
                  DegenerateInputWarning, stacklevel=stacklevel)


def _check_options(info: MetricInfo, opts: dict) -> None:
    """InputError naming unknown options (of the function, or of the module factory's constructor)."""
    params = inspect.signature(info.target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    taken = 0 if info.module else 2 if info.needs_ref else 1  # dist (and ref) are not options
    names = [n for i, (n, p) in enumerate(params.items())
             if i >= taken and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in opts if k not in names]
    if unknown:
        raise InputError(f"{info.name} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(names) or 'none'}.")


def create_metric(name: str | Path, device: str | torch.device = "cpu", check: Check = "auto",
                  **options) -> Metric:
    """Create a registered metric (or a checkpoint file) as a torch module on ``device``; ``options``
    override its defaults; ``check`` as in :class:`Metric`."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("a CUDA device was asked for, but torch sees none; use the CPU.", option="device")
    metric = Metric(get_info(name), check=check, **options)
    return metric.to(device).eval()
