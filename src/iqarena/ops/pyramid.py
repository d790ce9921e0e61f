"""Steerable pyramids of matlabPyrTools (Simoncelli et al.) on (N, C, H, W) tensors.

- :func:`corr_dn`: matlabPyrTools ``corrDn`` (correlation, then subsampling) with its edge handling;
  'reflect1' reflects about the edge sample without repeating it (torch 'reflect' padding).
- :func:`build_spyr`: ``buildSpyr(im, height, 'sp5Filters', 'reflect1')``, the real steerable pyramid
  with the six-orientation sp5 filters (Simoncelli & Freeman 1995; Karasaridis & Simoncelli 1996) used by
  VIF and IFC. All six band filters of a level run as one convolution.
- :func:`scf_bands`: the oriented bands of one level of ``buildSCFpyr(im, height, order)``, the complex
  (analytic) steerable pyramid built in the Fourier domain, used by CW-SSIM. The masks of every level up
  to the requested one are folded into one cached mask per band, so only the requested level is
  transformed back.

Code: https://github.com/LabForComputationalVision/matlabPyrTools (sp5Filters.m, buildSpyr.m,
corrDn.m / MEX/edges.c, buildSCFpyr.m, buildSCFpyrLevs.m, rcosFn.m, pointOp.c). The filter taps below
are the published sp5Filters values.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..errors import InputError
from .filters import conv_rows

_HI0 = """
-0.00033429 -0.00113093 -0.00171484 -0.00133542 -0.00080639 -0.00133542 -0.00171484 -0.00113093 -0.00033429
-0.00113093 -0.00350017 -0.00243812  0.00631653  0.01261227  0.00631653 -0.00243812 -0.00350017 -0.00113093
-0.00171484 -0.00243812 -0.00290081 -0.00673482 -0.00981051 -0.00673482 -0.00290081 -0.00243812 -0.00171484
-0.00133542  0.00631653 -0.00673482 -0.07027679 -0.11435863 -0.07027679 -0.00673482  0.00631653 -0.00133542
-0.00080639  0.01261227 -0.00981051 -0.11435863  0.81380200 -0.11435863 -0.00981051  0.01261227 -0.00080639
-0.00133542  0.00631653 -0.00673482 -0.07027679 -0.11435863 -0.07027679 -0.00673482  0.00631653 -0.00133542
-0.00171484 -0.00243812 -0.00290081 -0.00673482 -0.00981051 -0.00673482 -0.00290081 -0.00243812 -0.00171484
-0.00113093 -0.00350017 -0.00243812  0.00631653  0.01261227  0.00631653 -0.00243812 -0.00350017 -0.00113093
-0.00033429 -0.00113093 -0.00171484 -0.00133542 -0.00080639 -0.00133542 -0.00171484 -0.00113093 -0.00033429
"""
_LO0 = """
 0.00341614 -0.01551246 -0.03848215 -0.01551246  0.00341614
-0.01551246  0.05586982  0.15925570  0.05586982 -0.01551246
-0.03848215  0.15925570  0.40304148  0.15925570 -0.03848215
-0.01551246  0.05586982  0.15925570  0.05586982 -0.01551246
 0.00341614 -0.01551246 -0.03848215 -0.01551246  0.00341614
"""
# lofilt as printed in sp5Filters.m, which multiplies it by 2
_LO = """
 0.00085404 -0.00244917 -0.00387812 -0.00944432 -0.00962054 -0.00944432 -0.00387812 -0.00244917  0.00085404
-0.00244917 -0.00523281 -0.00661117  0.00410600  0.01002988  0.00410600 -0.00661117 -0.00523281 -0.00244917
-0.00387812 -0.00661117  0.01396746  0.03277038  0.03981393  0.03277038  0.01396746 -0.00661117 -0.00387812
-0.00944432  0.00410600  0.03277038  0.06426333  0.08169618  0.06426333  0.03277038  0.00410600 -0.00944432
-0.00962054  0.01002988  0.03981393  0.08169618  0.10096540  0.08169618  0.03981393  0.01002988 -0.00962054
-0.00944432  0.00410600  0.03277038  0.06426333  0.08169618  0.06426333  0.03277038  0.00410600 -0.00944432
-0.00387812 -0.00661117  0.01396746  0.03277038  0.03981393  0.03277038  0.01396746 -0.00661117 -0.00387812
-0.00244917 -0.00523281 -0.00661117  0.00410600  0.01002988  0.00410600 -0.00661117 -0.00523281 -0.00244917
 0.00085404 -0.00244917 -0.00387812 -0.00944432 -0.00962054 -0.00944432 -0.00387812 -0.00244917  0.00085404
"""
_BANDS = """
 0.00277643 -0.00986904 -0.01021852  0.00000000  0.01021852  0.00986904 -0.00277643
 0.00496194 -0.00893064 -0.03075356  0.00000000  0.03075356  0.00893064 -0.00496194
 0.01026699  0.01189859 -0.08226445  0.00000000  0.08226445 -0.01189859 -0.01026699
 0.01455399  0.02755155 -0.11732297  0.00000000  0.11732297 -0.02755155 -0.01455399
 0.01026699  0.01189859 -0.08226445  0.00000000  0.08226445 -0.01189859 -0.01026699
 0.00496194 -0.00893064 -0.03075356  0.00000000  0.03075356  0.00893064 -0.00496194
 0.00277643 -0.00986904 -0.01021852  0.00000000  0.01021852  0.00986904 -0.00277643

-0.00343249 -0.00358461  0.01047717  0.00790407  0.00459034 -0.00128000 -0.01166982
-0.00640815 -0.01977507  0.01486305  0.04435647 -0.00853965 -0.01161195 -0.00285723
-0.00073141 -0.04084211 -0.04819057  0.09454202  0.05394139 -0.03930573 -0.00182078
 0.01124321 -0.00228219 -0.12227230 -0.00000000  0.12227230  0.00228219 -0.01124321
 0.00182078  0.03930573 -0.05394139 -0.09454202  0.04819057  0.04084211  0.00073141
 0.00285723  0.01161195  0.00853965 -0.04435647 -0.01486305  0.01977507  0.00640815
 0.01166982  0.00128000 -0.00459034 -0.00790407 -0.01047717  0.00358461  0.00343249

 0.00343249  0.00640815  0.00073141 -0.01124321 -0.00182078 -0.00285723 -0.01166982
 0.00358461  0.01977507  0.04084211  0.00228219 -0.03930573 -0.01161195 -0.00128000
-0.01047717 -0.01486305  0.04819057  0.12227230  0.05394139 -0.00853965  0.00459034
-0.00790407 -0.04435647 -0.09454202 -0.00000000  0.09454202  0.04435647  0.00790407
-0.00459034  0.00853965 -0.05394139 -0.12227230 -0.04819057  0.01486305  0.01047717
 0.00128000  0.01161195  0.03930573 -0.00228219 -0.04084211 -0.01977507 -0.00358461
 0.01166982  0.00285723  0.00182078  0.01124321 -0.00073141 -0.00640815 -0.00343249

-0.00277643 -0.00496194 -0.01026699 -0.01455399 -0.01026699 -0.00496194 -0.00277643
 0.00986904  0.00893064 -0.01189859 -0.02755155 -0.01189859  0.00893064  0.00986904
 0.01021852  0.03075356  0.08226445  0.11732297  0.08226445  0.03075356  0.01021852
-0.00000000 -0.00000000 -0.00000000 -0.00000000 -0.00000000 -0.00000000 -0.00000000
-0.01021852 -0.03075356 -0.08226445 -0.11732297 -0.08226445 -0.03075356 -0.01021852
-0.00986904 -0.00893064  0.01189859  0.02755155  0.01189859 -0.00893064 -0.00986904
 0.00277643  0.00496194  0.01026699  0.01455399  0.01026699  0.00496194  0.00277643

-0.01166982 -0.00285723 -0.00182078 -0.01124321  0.00073141  0.00640815  0.00343249
-0.00128000 -0.01161195 -0.03930573  0.00228219  0.04084211  0.01977507  0.00358461
 0.00459034 -0.00853965  0.05394139  0.12227230  0.04819057 -0.01486305 -0.01047717
 0.00790407  0.04435647  0.09454202 -0.00000000 -0.09454202 -0.04435647 -0.00790407
 0.01047717  0.01486305 -0.04819057 -0.12227230 -0.05394139  0.00853965 -0.00459034
-0.00358461 -0.01977507 -0.04084211 -0.00228219  0.03930573  0.01161195  0.00128000
-0.00343249 -0.00640815 -0.00073141  0.01124321  0.00182078  0.00285723  0.01166982

-0.01166982 -0.00128000  0.00459034  0.00790407  0.01047717 -0.00358461 -0.00343249
-0.00285723 -0.01161195 -0.00853965  0.04435647  0.01486305 -0.01977507 -0.00640815
-0.00182078 -0.03930573  0.05394139  0.09454202 -0.04819057 -0.04084211 -0.00073141
-0.01124321  0.00228219  0.12227230 -0.00000000 -0.12227230 -0.00228219  0.01124321
 0.00073141  0.04084211  0.04819057 -0.09454202 -0.05394139  0.03930573  0.00182078
 0.00640815  0.01977507 -0.01486305 -0.04435647  0.00853965  0.01161195  0.00285723
 0.00343249  0.00358461 -0.01047717 -0.00790407 -0.00459034  0.00128000  0.01166982

"""


def _parse(text: str, size: int) -> torch.Tensor:
    vals = torch.tensor([float(v) for v in text.split()], dtype=torch.float64)
    return vals.view(-1, size, size)


@functools.lru_cache(maxsize=None)
def _sp5_cpu() -> dict[str, torch.Tensor]:
    return {"hi0": _parse(_HI0, 9), "lo0": _parse(_LO0, 5), "lo": 2 * _parse(_LO, 9), "bands": _parse(_BANDS, 7)}


@functools.lru_cache(maxsize=32)
def sp5_filters(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """sp5Filters as (K, h, w) tensors: 'hi0' (1, 9, 9), 'lo0' (1, 5, 5), 'lo' (1, 9, 9), 'bands' (6, 7, 7).
    Band k is MATLAB's ``reshape(bfilts(:, k), 7, 7)``; band 1 is the horizontal derivative."""
    return {k: v.to(dtype=dtype, device=device) for k, v in _sp5_cpu().items()}


_EDGES = {"reflect1": "reflect", "repeat": "replicate", "zero": "constant", "circular": "circular"}


def corr_dn(x: torch.Tensor, filt: torch.Tensor, edges: str = "reflect1", step: tuple[int, int] = (1, 1),
            start: tuple[int, int] = (0, 0), stop: tuple[int, int] | None = None) -> torch.Tensor:
    """matlabPyrTools corrDn: correlate every channel of (N, C, H, W) ``x`` with each of the (K, h, w)
    filters ``filt`` (origin at floor(size / 2)) and keep samples start, start + step, ... < stop
    (0-based; MATLAB's START minus one, STOP as in MATLAB). Returns (N, C, K, h', w')."""
    if filt.ndim == 2:
        filt = filt[None]
    if edges not in _EDGES:
        raise ValueError(f"edges must be one of {sorted(_EDGES)}, got {edges!r}")
    n, c, h, w = x.shape
    k, fh, fw = filt.shape
    if fh > h or fw > w:
        raise InputError(f"image of {h}x{w} pixels is smaller than the {fh}x{fw} pyramid filter; "
                         "use a larger image or fewer pyramid levels.")
    stop_h, stop_w = stop if stop is not None else (h, w)
    t, l = fh // 2, fw // 2
    xp = F.pad(x.reshape(n * c, 1, h, w), (l, fw - 1 - l, t, fh - 1 - t), mode=_EDGES[edges])
    xp = xp[..., start[0]: stop_h - 1 + fh, start[1]: stop_w - 1 + fw]
    out = conv_rows(xp, filt.to(x.dtype).unsqueeze(1), step)
    return out.view(n, c, k, *out.shape[-2:])



def max_spyr_height(h: int, w: int, filt_size: int = 9) -> int:
    """matlabPyrTools maxPyrHt for a 2-D image and a square filter."""
    height = 0
    while h >= filt_size and w >= filt_size:
        height += 1
        h, w = h // 2, w // 2
    return height


def build_spyr(x: torch.Tensor, height: int, orientations: tuple[int, ...] | None = None,
               highpass: bool = True) -> tuple[torch.Tensor | None, list[torch.Tensor], torch.Tensor]:
    """buildSpyr(x, height, 'sp5Filters', 'reflect1') on (N, C, H, W) ``x``.

    Returns (hi0, bands, lowpass): hi0 (N, C, H, W) (None when ``highpass`` is False), ``bands[l]`` the
    oriented bands of level l + 1 as (N, C, K, H_l, W_l) for the 0-based ``orientations`` (all six by
    default), and the lowpass residual. Level l + 1 is the lowpass of level l subsampled by two
    (corrDn with step [2 2], start [1 1]).
    """
    max_ht = max_spyr_height(*x.shape[-2:])
    if height > max_ht:
        raise InputError(f"a {height}-level steerable pyramid needs a larger image than {x.shape[-2]}x{x.shape[-1]} "
                         f"(at most {max_ht} levels fit); use an image of at least {9 * 2 ** (height - 1)} pixels "
                         "on each side.")
    f = sp5_filters(x.dtype, x.device)
    bfilts = f["bands"] if orientations is None else f["bands"][list(orientations)]
    hi0 = corr_dn(x, f["hi0"])[:, :, 0] if highpass else None
    lo = corr_dn(x, f["lo0"])[:, :, 0]
    bands = []
    for _ in range(height):
        bands.append(corr_dn(lo, bfilts))
        lo = corr_dn(lo, f["lo"], step=(2, 2))[:, :, 0]
    return hi0, bands, lo


# ---- complex steerable pyramid in the Fourier domain (buildSCFpyr) ----

def _point_op(x: torch.Tensor, lut: torch.Tensor, origin: float, increment: float) -> torch.Tensor:
    """pointOp.c: linear interpolation in an equispaced table, extrapolating from the end segments."""
    pos = (x - origin) / increment
    idx = torch.floor(pos).clamp(0, lut.numel() - 2)
    i = idx.long()
    return lut[i] + (lut[i + 1] - lut[i]) * (pos - idx)


def _rcos(width: float, position: float) -> tuple[torch.Tensor, torch.Tensor]:
    """rcosFn(width, position, [0 1]): raised-cosine table (X, Y), 259 samples."""
    sz = 256
    xs = math.pi * torch.arange(-sz - 1, 2, dtype=torch.float64) / (2 * sz)
    y = torch.cos(xs) ** 2
    y[0] = y[1]
    y[sz + 2] = y[sz + 1]
    return position + (2 * width / math.pi) * (xs + math.pi / 4), y


def _centre(n: int) -> int:
    """1-based index of the zero frequency after fftshift: ceil((n + 0.5) / 2)."""
    return math.ceil((n + 0.5) / 2)


def polar_grid(h: int, w: int, twidth: float):
    """What buildSCFpyr and buildSFpyr share: the fftshifted polar grid (angle, log2 radius, the centre's
    radius copied from its left neighbour as the code does) and the radial raised cosine (its high-pass
    values ``yrc``, low-pass ``yirc``, first abscissa ``x0`` and step ``inc``), all float64."""
    cy, cx = _centre(h), _centre(w)
    xr = ((torch.arange(1, w + 1, dtype=torch.float64) - cx) / (w / 2)).expand(h, w)
    yr = ((torch.arange(1, h + 1, dtype=torch.float64) - cy) / (h / 2))[:, None].expand(h, w)
    angle = torch.atan2(yr, xr)
    rad = torch.sqrt(xr ** 2 + yr ** 2)
    rad[cy - 1, cx - 1] = rad[cy - 1, cx - 2]
    log_rad = torch.log2(rad)
    xrc, yrc = _rcos(twidth, -twidth / 2)
    yrc = torch.sqrt(yrc)
    yirc = torch.sqrt(1.0 - yrc ** 2)
    return angle, log_rad, yrc, yirc, float(xrc[0]), float(xrc[1] - xrc[0])


def half_crop(dh: int, dw: int) -> tuple[int, int, int, int]:
    """The next level's spectrum inside this one's: 0-based crop start and size (sh, sw, lh, lw)."""
    lh, lw = math.ceil((dh - 0.5) / 2), math.ceil((dw - 0.5) / 2)
    return _centre(dh) - _centre(lh), _centre(dw) - _centre(lw), lh, lw


def angle_table(order: int, halved: bool) -> tuple[torch.Tensor, float, float]:
    """The angular lookup table (values, first abscissa, step) of the pyramids' oriented masks; ``halved``:
    buildSCFpyr's one-sided masks (twice the height, zero beyond pi/2), else buildSFpyr's."""
    nb = order + 1
    lutsize = 1024
    xcosn = math.pi * torch.arange(-(2 * lutsize + 1), lutsize + 2, dtype=torch.float64) / lutsize
    const = (2 ** (2 * order)) * (math.factorial(order) ** 2) / (nb * math.factorial(2 * order))
    if halved:
        alfa = torch.remainder(math.pi + xcosn, 2 * math.pi) - math.pi
        ycosn = 2 * math.sqrt(const) * torch.cos(xcosn) ** order * (alfa.abs() < math.pi / 2)
    else:
        ycosn = math.sqrt(const) * torch.cos(xcosn) ** order
    return ycosn, float(xcosn[0]), float(xcosn[1] - xcosn[0])


@functools.lru_cache(maxsize=16)
def _scf_masks_cpu(h: int, w: int, level: int, order: int, twidth: float):
    nb = order + 1
    angle, log_rad, yrc, yirc, x00, inc = polar_grid(h, w, twidth)
    mask = _point_op(log_rad, yirc, x00, inc)  # lo0mask
    top, left = 0, 0
    for lev in range(1, level + 1):
        x0 = x00 - lev  # Xrcos shifted one octave per level
        if lev == level:
            break
        sh, sw, lh, lw = half_crop(*mask.shape)
        top, left = top + sh, left + sw
        log_rad = log_rad[sh: sh + lh, sw: sw + lw]
        angle = angle[sh: sh + lh, sw: sw + lw]
        mask = mask[sh: sh + lh, sw: sw + lw] * _point_op(log_rad, yirc, x0, inc)
    himask = _point_op(log_rad, yrc, x0, inc)
    ycosn, a0, xinc = angle_table(order, halved=True)
    angmasks = torch.stack([_point_op(angle, ycosn, a0 + math.pi * b / nb, xinc) for b in range(nb)])
    masks = ((-1j) ** order) * (mask * himask * angmasks).to(torch.complex128)
    return (top, left, mask.shape[0], mask.shape[1]), masks


@functools.lru_cache(maxsize=16)
def scf_masks(h: int, w: int, level: int, order: int, twidth: float = 1.0,
              dtype: torch.dtype = torch.complex64, device: str | torch.device = "cpu"):
    """Crop (top, left, h_l, w_l) of the centred spectrum and the (order + 1, h_l, w_l) complex masks whose
    inverse transforms are the oriented bands of ``level`` (1-based) of buildSCFpyr(im, height, order)."""
    crop, masks = _scf_masks_cpu(h, w, level, order, twidth)
    return crop, masks.to(dtype=dtype, device=device)


def scf_bands(x: torch.Tensor, height: int, order: int = 3, level: int | None = None, twidth: float = 1.0) -> torch.Tensor:
    """Complex oriented bands of one level (default: the coarsest, ``height``) of
    buildSCFpyr(x, height, order, twidth) for (N, C, H, W) real ``x``: (N, C, order + 1, H_l, W_l)."""
    h, w = x.shape[-2:]
    max_ht = math.floor(math.log2(min(h, w))) - 2
    if height > max_ht:
        raise InputError(f"a {height}-level complex steerable pyramid needs a larger image than {h}x{w} "
                         f"(at most {max_ht} levels fit); use an image of at least {2 ** (height + 2)} pixels on each side.")
    level = height if level is None else level
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    (top, left, lh, lw), masks = scf_masks(h, w, level, order, twidth, cdtype, x.device)
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))[..., top: top + lh, left: left + lw]
    return torch.fft.ifft2(torch.fft.ifftshift(spec.unsqueeze(2) * masks, dim=(-2, -1)))
