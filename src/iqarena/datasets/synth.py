"""Synthetic full-reference training sets in the PIPAL layout, from any folder of photos.

Where no human-labelled full-reference set is at hand, the field distorts pristine photos
synthetically and labels the results with objective metrics (KADIS-700k and DeepFL-IQA: Lin, Hosu,
Saupe 2019/2020). This module does that:

>>> from iqarena.datasets.synth import DISTORTIONS, make_synthetic_set
>>> out = DISTORTIONS["blur"](img, 3, np.random.default_rng(0))      # HxWx3 float in [0, 1] -> same
>>> ds = make_synthetic_set("photos/", "synth/", levels=5, label=["ms_ssim", "fsimc"], seed=0)
>>> ds.describe()       # 'pipal (train): 1300 images, 20 references, ...'; load_dataset("pipal", "synth/") reads it

Each distortion is a pure function ``(img, level, rng, *, levels=5)`` registered in ``DISTORTIONS``
under a name and a two-digit type code, the ``TT`` of PIPAL's ``A0001_TT_LL.bmp``. Its parameter
runs from a mild to a severe value (linearly or geometrically) over ``levels`` grades, so severity
grows with the level. The random draws (noise field, motion angle, colour-cast direction) come from
``rng`` and, in :func:`make_synthetic_set`, from a generator seeded by (seed, reference, type): every
level of one reference shares them, and the same seed writes byte-identical files.

Labels: every label metric scores every distorted image against its reference, from the 8-bit pixels
written to disk. Each metric's scores become z-scores over the whole set, signed so that higher is
better; they are averaged; the mean is mapped affinely onto 1000..2000 (lowest image 1000, highest
2000), an Elo-like scale like PIPAL's. Only full-reference metrics can label: a no-reference score
says nothing about what the distortion did to the reference.

Scoring happens here, through ``iqarena.metrics.create_metric`` in batches of one reference's images,
rather than through ``iqarena.execution`` (a higher layer): the labelling is part of making the set, a
trainer can call one function, and the cheap FR metrics that label need no store or remote executor.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, features
from scipy import ndimage

from ..errors import DegenerateInputWarning, InputError, ResourceError
from ..io import atomic_output, list_images, read_image
from ..ops.resize import imresize
from ..registry import Registry
from .base import Dataset

ELO_LOW, ELO_HIGH = 1000.0, 2000.0
MAX_LEVELS = 10
FORMAT = "iqarena-synth"
MANIFEST = "synth.json"
REFS_TABLE = "refs.csv"
SCORES_TABLE = "scores.csv"
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


# ---------------------------------------------------------------- distortions

@dataclass(frozen=True)
class Distortion:
    """One distortion type: ``self(img, level, rng, levels=5)`` is its pure function.

    ``core(img, value, rng)`` works on an (H, W, 3) float32 array in [0, 1] with the level's parameter
    ``value``; the parameter runs from ``mild`` (level 1) to ``severe`` (level ``levels``), linearly or
    geometrically (``scale``), rounded when ``integer``. ``feature``: the Pillow feature it needs; ``min_side``:
    the smallest image side at which its levels stay apart.
    """

    name: str
    code: str
    title: str
    parameter: str
    mild: float
    severe: float
    core: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    scale: str = "lin"
    integer: bool = False
    feature: str | None = None
    min_side: int = 16

    def value(self, level: int, levels: int = 5) -> float | int:
        """The parameter of ``level`` (1..levels)."""
        _check_level(level, levels)
        t = 0.5 if levels == 1 else (level - 1) / (levels - 1)
        if self.scale == "log":
            v = math.exp(math.log(self.mild) + t * (math.log(self.severe) - math.log(self.mild)))
        else:
            v = self.mild + t * (self.severe - self.mild)
        return round(v) if self.integer else round(v, 6)

    def values(self, levels: int = 5) -> list[float | int]:
        return [self.value(k, levels) for k in range(1, levels + 1)]

    @property
    def available(self) -> bool:
        return self.feature is None or bool(features.check(self.feature))

    def __call__(self, img, level: int, rng: np.random.Generator, *, levels: int = 5):
        """The distorted image: same type (numpy or torch), shape and dtype as ``img``, values in [0, 1]."""
        if not self.available:
            raise ResourceError(f"distortion {self.name} needs Pillow's {self.feature} support, which this Pillow "
                                f"lacks; choose other distortions or install a Pillow built with it.")
        arr = _as_array(img)
        out = self.core(arr, self.value(level, levels), rng)
        out = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
        if isinstance(img, torch.Tensor):
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=img.device, dtype=img.dtype)
        return out.astype(img.dtype, copy=False)


def _check_level(level: int, levels: int) -> None:
    if not isinstance(levels, (int, np.integer)) or not 1 <= levels <= MAX_LEVELS:
        raise InputError(f"levels must be a whole number from 1 to {MAX_LEVELS}, got {levels!r}.", option="levels")
    if not isinstance(level, (int, np.integer)) or not 1 <= level <= levels:
        raise InputError(f"level must be a whole number from 1 to {levels}, got {level!r}.")


def _as_array(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        if not img.is_floating_point():
            raise InputError(f"image has dtype {img.dtype}; give floats in [0, 1].")
        arr = img.detach().to("cpu", torch.float32).numpy()
    elif isinstance(img, np.ndarray):
        if not np.issubdtype(img.dtype, np.floating):
            raise InputError(f"image has dtype {img.dtype}; give floats in [0, 1] (8-bit data / 255).")
        arr = img.astype(np.float32, copy=False)
    else:
        raise InputError(f"image must be a numpy array or a torch tensor, got {type(img).__name__}.")
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"image must have shape (H, W, 3), got {tuple(arr.shape)}.")
    if not np.isfinite(arr).all() or arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise InputError("image values must be finite and in [0, 1].")
    return np.clip(arr, 0.0, 1.0)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _channels(x: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(x[..., c]) for c in range(x.shape[2])], axis=2)


def _gaussian_blur(x, sigma, rng):
    return _channels(x, lambda c: ndimage.gaussian_filter(c, sigma, mode="reflect", truncate=3.0))


def _line_kernel(sigma: float, angle: float) -> np.ndarray:
    """A normalised kernel along a straight line at ``angle`` (radians): a Gaussian profile of ``sigma`` pixels along
    the line, one pixel wide across it (linear fall-off, so every angle is anti-aliased)."""
    r = math.ceil(3 * sigma)
    v, u = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    along = u * math.cos(angle) - v * math.sin(angle)
    across = u * math.sin(angle) + v * math.cos(angle)
    k = np.exp(-0.5 * (along / sigma) ** 2) * np.clip(1 - np.abs(across), 0, None)
    return (k / k.sum()).astype(np.float32)


def _motion_blur(x, sigma, rng):
    # A Gaussian profile, not the box of fspecial('motion'): a box's frequency response has zeros that move with its
    # length, so on periodic texture a longer box can land closer to the reference; the Gaussian's falls monotonically.
    k = _line_kernel(sigma, float(rng.uniform(0.0, math.pi)))
    return _channels(x, lambda c: ndimage.convolve(c, k, mode="reflect"))


def _gaussian_noise(x, sigma, rng):
    return x + np.float32(sigma) * rng.standard_normal(x.shape, dtype=np.float32)


def _pillow_roundtrip(x: np.ndarray, fmt: str, **params) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(x), "RGB").save(buf, format=fmt, **params)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _jpeg(x, quality, rng):
    return _pillow_roundtrip(x, "JPEG", quality=int(quality), subsampling="4:2:0", optimize=False)


def _jpeg2000(x, ratio, rng):
    # Resolutions limited so that the smallest one keeps a few pixels (openjpeg fails otherwise on small images).
    res = max(1, min(6, int(math.log2(min(x.shape[:2]))) - 2))
    return _pillow_roundtrip(x, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True,
                             num_resolutions=res)


def _webp(x, quality, rng):
    return _pillow_roundtrip(x, "WEBP", quality=int(quality), method=4, lossless=False)


def _down_up(method: str):
    def core(x, factor, rng):
        # Padded (mirror) to whole blocks of ``factor`` so that the up-sampled pixels line up with the originals at
        # every image size, as in SR benchmarks whose images are cropped to a multiple of the scale.
        s = int(factor)
        h, w = x.shape[:2]
        ph, pw = -h % s, -w % s
        t = torch.from_numpy(np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="symmetric").transpose(2, 0, 1))[None].double()
        small = imresize(t, scale=1.0 / s, method="bicubic")
        up = imresize(small, size=tuple(t.shape[-2:]), method=method)
        return up[0, :, :h, :w].numpy().transpose(1, 2, 0).astype(np.float32)
    return core


def _ringing(x, cutoff, rng):
    # A truncated sinc with no window: an ideal low-pass whose cut-off makes the Gibbs overshoot at edges.
    radius = math.ceil(4.0 / cutoff)
    n = np.arange(-radius, radius + 1, dtype=np.float64)
    k = 2 * cutoff * np.sinc(2 * cutoff * n)
    k = (k / k.sum()).astype(np.float32)
    return _channels(x, lambda c: ndimage.convolve1d(ndimage.convolve1d(c, k, axis=0, mode="reflect"),
                                                     k, axis=1, mode="reflect"))


def _saturation(x, keep, rng):
    y = (x @ LUMA)[..., None]
    return y + np.float32(keep) * (x - y)


def _colour_cast(x, amount, rng):
    theta = float(rng.uniform(0.0, 2 * math.pi))
    u1 = np.array([1.0, -1.0, 0.0]) / math.sqrt(2)
    u2 = np.array([1.0, 1.0, -2.0]) / math.sqrt(6)
    d = (math.cos(theta) * u1 + math.sin(theta) * u2).astype(np.float32)  # orthogonal to grey: hue, not brightness
    return x + np.float32(amount) * d


def _contrast(x, keep, rng):
    m = np.float32((x @ LUMA).mean())
    return m + np.float32(keep) * (x - m)


def _quantise(x, steps, rng):
    n = int(steps) - 1
    return np.rint(x * n) / np.float32(n)


DISTORTIONS: Registry[Distortion] = Registry("distortion", group="iqarena.distortions",
                                             listing="`iqarena synth --help`")


def register_distortion(d: Distortion, aliases: tuple[str, ...] = ()) -> Distortion:
    """Add a distortion under its name, its aliases and its two-digit code (which must be free)."""
    if not re.fullmatch(r"\d{2}", d.code):
        raise InputError(f"distortion {d.name}: type code must be two digits, got {d.code!r}.")
    return DISTORTIONS.add(d.name, d, aliases=(d.code, *aliases))


for _d, _aliases in (
    (Distortion("blur", "00", "Gaussian blur", "sigma (px)", 0.6, 3.0, _gaussian_blur, "log"), ("gaussian_blur",)),
    (Distortion("motion_blur", "01", "motion blur: a line at a random angle per reference, Gaussian profile",
                "sigma along the line (px)", 1.0, 5.0, _motion_blur, "log"), ("motion",)),
    (Distortion("noise", "02", "additive white Gaussian noise, per channel", "sigma (of [0, 1])", 0.01, 0.12,
                _gaussian_noise, "log"), ("gaussian_noise", "awgn")),
    (Distortion("jpeg", "03", "JPEG (Pillow/libjpeg, 4:2:0)", "quality", 50, 5, _jpeg, "log", True, "jpg"), ("jpg",)),
    (Distortion("jpeg2000", "04", "JPEG 2000 (Pillow/OpenJPEG, 9/7 wavelet)", "compression ratio", 25, 250, _jpeg2000,
                "log", True, "jpg_2000", 128), ("j2k", "jp2")),
    (Distortion("webp", "05", "WebP (Pillow/libwebp, lossy)", "quality", 40, 0, _webp, "lin", True, "webp"), ()),
    (Distortion("downup_bicubic", "06", "bicubic down, bicubic up (MATLAB imresize)", "factor", 2, 8,
                _down_up("bicubic"), "log", True), ("sr_bicubic", "downup")),
    (Distortion("downup_nearest", "07", "bicubic down, nearest-neighbour up (MATLAB imresize)", "factor", 2, 8,
                _down_up("nearest"), "log", True), ("sr_nearest",)),
    (Distortion("ringing", "08", "low-pass by a truncated sinc (Gibbs overshoot)", "cut-off (cycles/px)", 0.3, 0.08,
                _ringing, "log"), ("sinc",)),
    (Distortion("saturation", "09", "desaturation towards BT.601 luma", "chroma kept", 0.8, 0.0, _saturation),
     ("desaturation",)),
    (Distortion("colour_cast", "10", "colour shift along a random hue direction per reference", "shift (of [0, 1])",
                0.03, 0.2, _colour_cast, "log"), ("color_cast", "colour_shift", "color_shift")),
    (Distortion("contrast", "11", "contrast reduction about the mean luma", "contrast kept", 0.85, 0.3, _contrast),
     ()),
    (Distortion("quantisation", "12", "uniform quantisation per channel", "levels per channel", 24, 4, _quantise,
                "log", True), ("quantization", "posterize")),
):
    register_distortion(_d, _aliases)


def available_distortions() -> list[str]:
    """Names of the distortions this machine can apply (JPEG 2000 and WebP need Pillow support), by type code."""
    return [d.name for d in sorted(DISTORTIONS.values(), key=lambda d: d.code) if d.available]


def distortion_table(levels: int = 5) -> list[dict]:
    """Every distortion with its code and the parameter of each level (what docs/synth.md shows)."""
    return [{"code": d.code, "name": d.name, "title": d.title, "parameter": d.parameter, "values": d.values(levels),
             "available": d.available} for d in sorted(DISTORTIONS.values(), key=lambda d: d.code)]


# ---------------------------------------------------------------- labels

def label_metrics(label: str | Sequence[str]) -> list[str]:
    """The label recipe's metric names, checked: known, full-reference, parameter files present."""
    from ..metrics import get_info, is_available, list_metrics

    names = [s.strip() for s in label.split(",")] if isinstance(label, str) else [str(s).strip() for s in label]
    names = [n for n in names if n]
    if not names:
        raise InputError("give at least one label metric (a full-reference metric such as ms_ssim).", option="label")
    fr = list_metrics(kind="fr")
    out = []
    for n in names:
        try:
            info = get_info(n)
        except InputError:
            raise InputError(f"unknown label metric {n!r}; full-reference metrics: {', '.join(fr)}.",
                             option="label") from None
        if info.kind != "fr":
            raise InputError(f"{info.name} is a no-reference metric; a synthetic set's labels say how far each image "
                             f"is from its reference, so they need full-reference metrics: {', '.join(fr)}.",
                             option="label")
        if not is_available(info):
            raise ResourceError(f"label metric {info.name} needs the parameter file(s) {', '.join(info.weights)}, "
                                "which are not installed; `iqarena weights fetch` installs them.")
        out.append(info.name)
    if len(set(out)) != len(out):
        raise InputError(f"label metrics repeat: {', '.join(names)}; name each metric once.", option="label")
    return out


def combine_scores(scores: dict[str, np.ndarray], higher_better: dict[str, bool]) -> tuple[np.ndarray, dict]:
    """Mean over metrics of z-scores (population standard deviation), each signed so that higher is better.

    Infinite scores (PSNR of an unchanged image) are clipped to the metric's finite extremes first; a
    metric with no spread adds zeros. Returns the combined values and, per metric, what was used.
    """
    if not scores:
        raise InputError("no metric scores to combine.")
    total, used = None, {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if np.isnan(s).any():
            raise InputError(f"{name} gave NaN scores for {int(np.isnan(s).sum())} image(s); it cannot label them.")
        finite = s[np.isfinite(s)]
        clipped = int(s.size - finite.size)
        if finite.size:
            s = np.clip(s, finite.min(), finite.max())
        else:
            s = np.zeros_like(s)
        mean, std = float(s.mean()), float(s.std())
        z = (s - mean) / std if std > 0 else np.zeros_like(s)
        sign = 1.0 if higher_better[name] else -1.0
        total = sign * z if total is None else total + sign * z
        used[name] = {"higher_better": bool(higher_better[name]), "mean": mean, "std": std, "clipped_infinite": clipped}
    return total / len(scores), used


def to_elo_scale(values: np.ndarray, low: float = ELO_LOW, high: float = ELO_HIGH) -> np.ndarray:
    """Affine map of ``values`` onto ``low..high``: the smallest gives ``low``, the largest ``high``; all equal:
    the middle."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        return np.full_like(v, (low + high) / 2)
    return low + (v - lo) * (high - low) / (hi - lo)


# ---------------------------------------------------------------- references

def _out_size(w: int, h: int, size) -> tuple[int, int, int, int]:
    """(scaled w, h) and (cropped w, h) of a w x h reference for ``size``: None, a max side, or (height, width)."""
    if size is None:
        return w, h, w, h
    if isinstance(size, (int, np.integer)):
        s = min(1.0, size / max(w, h))
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        return sw, sh, sw, sh
    th, tw = size
    s = max(th / h, tw / w)  # cover, then centre-crop
    sw, sh = max(tw, round(w * s)), max(th, round(h * s))
    return sw, sh, tw, th


def _check_size(size):
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 16:
            raise InputError(f"size (the longest side) must be at least 16 pixels, got {size}.", option="size")
        return int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        if min(size) < 16:
            raise InputError(f"size (height, width) must be at least 16 pixels each, got {tuple(size)}.", option="size")
        return (int(size[0]), int(size[1]))
    raise InputError(f"size must be None, a longest side in pixels, or (height, width); got {size!r}.", option="size")


def _load_ref(path: Path, size) -> np.ndarray:
    """A reference as (H, W, 3) uint8: read, grey made RGB, resized (MATLAB bicubic) and centre-cropped per ``size``."""
    x = read_image(path)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    h, w = x.shape[1:]
    sw, sh, cw, ch = _out_size(w, h, size)
    if (sw, sh) != (w, h):
        x = imresize(x[None].double(), size=(sh, sw))[0].float()
    top, left = (sh - ch) // 2, (sw - cw) // 2
    x = x[:, top:top + ch, left:left + cw]
    return _to_uint8(x.permute(1, 2, 0).numpy())


def _float(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float32) / 255.0  # what iqarena.io.read_image gives for the written 8-bit file


# ---------------------------------------------------------------- the set

def _read_manifest(path: Path) -> dict | None:
    """A synth.json written by this module, or None (missing, unreadable, or someone else's)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def _own_files(out: Path) -> set[str]:
    """The files a previous run recorded as its own in ``out``/synth.json, and synth.json itself (empty if none)."""
    doc = _read_manifest(out / MANIFEST)
    if doc is None:
        return set()
    files = doc.get("files")
    files = files if isinstance(files, list) else []
    return {MANIFEST} | {f for f in files if isinstance(f, str) and not Path(f).is_absolute()
                         and ".." not in Path(f).parts}


def _prepare_out(out: Path, planned: list[str], overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; then remove a previous run's own files, and refuse if one
    we would write is not ours (nothing a user made is replaced)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the synthetic set.", option="out_dir")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{out} is not empty; allow replacing a previous synthetic set there (overwrite=True), "
                         "or choose an empty folder.", option="overwrite")
    ours = _own_files(out)
    foreign = [f for f in (*planned, MANIFEST) if (out / f).exists() and f not in ours]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
        raise InputError(f"{out} holds files that iqarena synth did not make and would replace: {shown}. "
                         "Move them away or choose another folder; nothing was changed.", option="out_dir")
    for f in sorted(ours):
        p = out / f
        if p.is_file() or p.is_symlink():
            p.unlink()


def make_synthetic_set(refs_dir: str | Path, out_dir: str | Path, *, distortions: Sequence[str] | str | None = None,
                       levels: int = 5, per_ref: int | None = None, seed: int = 0,
                       size: int | tuple[int, int] | None = None, label: str | Sequence[str] = "ms_ssim",
                       overwrite: bool = False, device: str = "cpu", batch_size: int = 8,
                       progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Write a PIPAL-layout training set made from the photos in ``refs_dir``; return it as read by the PIPAL reader.

    ``out_dir`` gets ``Train_Ref/A0001.bmp`` ... (references in sorted name order; ``refs.csv`` maps the
    original names), ``Train_Dis/A0001_TT_LL.bmp`` (type code ``TT``, level ``LL`` = 01..levels),
    ``Train_Label/A0001.txt`` (``name,score`` lines, Elo-like 1000..2000, higher is better),
    ``scores.csv`` (every label metric's raw score) and ``synth.json`` (every setting, the label recipe,
    the versions, the files written).

    ``distortions``: names, aliases or codes (default: every one this Pillow can write); ``levels``:
    grades per distortion (1..10); ``per_ref``: a seeded random subset of that many type x level
    combinations per reference (default: all); ``size``: None, the longest side in pixels (larger
    references are shrunk), or (height, width) (scaled to cover, centre-cropped); ``label``: one
    full-reference metric or several (comma-separated or a list), combined as the module docstring says.
    A non-empty ``out_dir`` is refused unless ``overwrite``; then only the files a previous run
    recorded in its synth.json are removed, and a file it did not make is never replaced.
    ``progress(done, total)`` is called with image counts once the checks pass and after each reference.
    """
    from .. import __version__
    from ..metrics import create_metric, get_info
    from .pipal import read_pipal

    # ---- check everything before writing anything
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative whole number, got {seed!r}.", option="seed")
    _check_level(1, levels)
    size = _check_size(size)
    metrics = label_metrics(label)
    kinds = _choose_distortions(distortions)
    combos = [(d, k) for d in kinds for k in range(1, levels + 1)]
    if per_ref is not None and (isinstance(per_ref, bool) or not isinstance(per_ref, (int, np.integer))
                                or not 1 <= per_ref <= len(combos)):
        raise InputError(f"per_ref must be a whole number from 1 to {len(combos)} ({len(kinds)} distortions x "
                         f"{levels} levels), got {per_ref!r}.", option="per_ref")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.", option="batch_size")
    for d in kinds:
        ints = d.values(levels)
        if len(set(ints)) != len(ints):
            raise InputError(f"{levels} levels are too many for {d.name}: its whole-number parameter repeats "
                             f"({ints}). Give fewer levels, or leave {d.name} out.", option="levels")
    refs_dir = Path(refs_dir).expanduser()
    sources = list_images(refs_dir)
    if len(sources) > 9999:
        raise InputError(f"{refs_dir} holds {len(sources)} images; the PIPAL naming (A0001 ...) allows 9999.")
    shapes = []
    for p in sources:
        try:
            with Image.open(p) as im:
                shapes.append(im.size)
        except OSError as exc:
            raise InputError(f"cannot read image {p}: {exc}.") from None
    sides = [min(_out_size(w, h, size)[2:]) for w, h in shapes]
    for d in kinds:
        small = [p.name for p, side in zip(sources, sides) if side < d.min_side]
        if small:
            raise InputError(f"{d.name} needs references of at least {d.min_side} pixels per side (below that its "
                             f"levels come out alike); {len(small)} are smaller after resizing, such as {small[0]} "
                             f"({min(sides)} px). Use larger references or leave {d.name} out.", option="distortions")
    out = Path(out_dir).expanduser()

    selections = []
    for i in range(len(sources)):
        if per_ref is None:
            selections.append(combos)
        else:
            pick = np.random.default_rng([seed, 1, i]).choice(len(combos), size=per_ref, replace=False)
            selections.append([combos[j] for j in sorted(pick)])
    ref_names = [f"A{i + 1:04d}" for i in range(len(sources))]
    dis_names = [[f"{r}_{d.code}_{k:02d}.bmp" for d, k in sel] for r, sel in zip(ref_names, selections)]
    planned = ([f"Train_Ref/{r}.bmp" for r in ref_names] + [f"Train_Dis/{n}" for ns in dis_names for n in ns]
               + [f"Train_Label/{r}.txt" for r in ref_names] + [REFS_TABLE, SCORES_TABLE])

    # every label metric must be able to score the smallest reference (MS-SSIM needs 176 px per side)
    scorers = {m: create_metric(m, device=device) for m in metrics}
    smallest = min(range(len(sources)), key=lambda i: sides[i])
    probe = _load_ref(sources[smallest], size)
    t = torch.from_numpy(_float(probe).transpose(2, 0, 1))[None].to(device)
    for m, fn in scorers.items():
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateInputWarning)  # a probe of the size: inf PSNR is expected
                fn(t, t)
        except InputError as exc:
            raise InputError(f"label metric {m} cannot score reference {sources[smallest].name} "
                             f"({probe.shape[1]}x{probe.shape[0]} after resizing): {exc}", option="label") from None

    _prepare_out(out, planned, overwrite)
    settings = {"refs_dir": str(refs_dir.resolve()), "distortions": [d.name for d in kinds], "levels": int(levels),
                "per_ref": None if per_ref is None else int(per_ref), "seed": int(seed),
                "size": list(size) if isinstance(size, tuple) else size, "label": metrics, "device": str(device)}
    manifest = _manifest(__version__, settings, kinds, levels, planned, status="writing")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / MANIFEST, manifest)  # first: a run killed midway leaves its files marked as ours

    for sub in ("Train_Ref", "Train_Dis", "Train_Label"):
        (out / sub).mkdir(exist_ok=True)
    total = sum(len(n) for n in dis_names)
    if progress is not None:
        progress(0, total)
    raw = {m: [] for m in metrics}
    names_all: list[str] = []
    refs_rows = []
    for i, (src, rname, sel, dnames) in enumerate(zip(sources, ref_names, selections, dis_names)):
        ref = probe if i == smallest else _load_ref(src, size)
        Image.fromarray(ref, "RGB").save(out / "Train_Ref" / f"{rname}.bmp", format="BMP")
        refs_rows.append((f"{rname}.bmp", src.name, *shapes[i], ref.shape[1], ref.shape[0]))
        ref_f = _float(ref)
        dists = []
        for (d, k), dname in zip(sel, dnames):
            rng = np.random.default_rng([seed, 2, i, int(d.code)])  # shared by every level of (reference, type)
            img = _to_uint8(d(ref_f, k, rng, levels=levels))
            Image.fromarray(img, "RGB").save(out / "Train_Dis" / dname, format="BMP")
            dists.append(img)
        ref_t = torch.from_numpy(ref_f.transpose(2, 0, 1))[None].to(device)
        for start in range(0, len(dists), batch_size):
            chunk = np.stack([_float(a) for a in dists[start:start + batch_size]]).transpose(0, 3, 1, 2)
            x = torch.from_numpy(np.ascontiguousarray(chunk)).to(device)
            with torch.no_grad():
                for m, fn in scorers.items():
                    raw[m].extend(fn(x, ref_t.expand(len(x), -1, -1, -1)).double().cpu().tolist())
        names_all.extend(dnames)
        if progress is not None:
            progress(len(names_all), total)

    combined, used = combine_scores({m: np.array(v) for m, v in raw.items()},
                                    {m: get_info(m).higher_better for m in metrics})
    labels = to_elo_scale(combined)
    pos = 0
    for rname, dnames in zip(ref_names, dis_names):
        lines = [f"{n},{labels[pos + j]:.4f}\n" for j, n in enumerate(dnames)]
        pos += len(dnames)
        (out / "Train_Label" / f"{rname}.txt").write_text("".join(lines))
    with (out / REFS_TABLE).open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "source", "source_width", "source_height", "width", "height"])
        w.writerows(refs_rows)
    with (out / SCORES_TABLE).open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", *metrics, "combined_z", "label"])
        for j, n in enumerate(names_all):
            w.writerow([n, *(repr(raw[m][j]) for m in metrics), repr(float(combined[j])), f"{labels[j]:.4f}"])
    manifest = _manifest(__version__, settings, kinds, levels, planned, status="complete")
    manifest["label_recipe"]["metrics"] = used
    manifest["label_recipe"]["combined_range"] = [float(combined.min()), float(combined.max())]
    manifest["counts"] = {"references": len(sources), "images": len(names_all)}
    _write_json(out / MANIFEST, manifest)
    return read_pipal(out, split="train")


def _choose_distortions(distortions) -> list[Distortion]:
    if isinstance(distortions, str):
        distortions = distortions.split(",")
    names = [] if distortions is None else [n for n in (str(s).strip() for s in distortions) if n]
    if distortions is None or names == ["all"]:
        return [DISTORTIONS[n] for n in available_distortions()]
    if not names:
        raise InputError("give at least one distortion.", option="distortions")
    chosen = {}
    for n in names:
        try:
            d = DISTORTIONS.get(n)
        except InputError as exc:
            raise InputError(str(exc), option="distortions") from None
        if not d.available:
            raise ResourceError(f"distortion {d.name} needs Pillow's {d.feature} support, which this Pillow lacks; "
                                f"choose among {', '.join(available_distortions())}.")
        chosen[d.code] = d
    return [chosen[c] for c in sorted(chosen)]


def _manifest(version: str, settings: dict, kinds: list[Distortion], levels: int, files: list[str],
              status: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "status": status,
        "iqarena_version": version,
        "versions": {"pillow": Image.__version__, "numpy": np.__version__, "torch": torch.__version__.split("+")[0],
                     "libjpeg": features.version("jpg"), "openjpeg": features.version("jpg_2000"),
                     "libwebp": features.version("webp")},
        "settings": settings,
        "distortions": [{"code": d.code, "name": d.name, "title": d.title, "parameter": d.parameter,
                         "values": d.values(levels)} for d in kinds],
        "naming": "Train_Dis/AXXXX_TT_LL.bmp: reference AXXXX, distortion code TT, level LL (01 = mildest)",
        "random": "numpy default_rng([seed, 1, reference index]) picks per_ref combinations; "
                  "default_rng([seed, 2, reference index, type code]) draws a distortion's randomness, "
                  "the same for every level",
        "label_recipe": {"metrics": {}, "scored_on": "the 8-bit files written, against Train_Ref",
                         "combine": "per metric z-score over all images (population std; infinite scores clipped "
                                    "to the finite extremes), sign so that higher is better, mean over metrics",
                         "scale": f"affine: lowest combined value -> {ELO_LOW:g}, highest -> {ELO_HIGH:g} "
                                  "(all equal: the middle); printed with 4 decimals"},
        "files": sorted(files),
    }


def _write_json(path: Path, doc: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


__all__ = ["DISTORTIONS", "Distortion", "available_distortions", "combine_scores", "distortion_table",
           "label_metrics", "make_synthetic_set", "register_distortion", "to_elo_scale"]
