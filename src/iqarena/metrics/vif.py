"""VIF: visual information fidelity, wavelet domain (``vif``) and pixel domain (``vifp``).

Sheikh & Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006.
Original code (LIVE, H. R. Sheikh): http://live.ece.utexas.edu/research/Quality/vifvec_release.zip
(vifvec.m, with vifsub_est_M.m, refparams_vecgsm.m, ind2wtree.m) and vifp_mscale.m (pixel domain).

``vif`` follows vifvec.m: buildSpyr(im, 4, 'sp5Filters', 'reflect1'); the subbands 4 7 10 13 16 19
22 25 of ind2wtree (orientations 1 and 4 of all four levels); each subband cropped to a multiple of
M = 3; the distortion channel (gain g, noise variance vv) estimated in a (2^lev + 1)-square window
sampled at the centre of every 3x3 block (corrDn 'reflect1'); the reference GSM covariance from all
overlapping 3x3 blocks, the multiplier field s from the non-overlapping ones; ``ceil(2^(lev - 1) / 3)``
blocks dropped at each border; sigma_nsq = 0.4; VIF = sum of distorted information / sum of reference
information. ``vifp`` follows vifp_mscale.m: four scales with Gaussian windows of 17, 9, 5, 3 taps
(sigma = size / 5), 'valid' filtering, sigma_nsq = 2.

Colour input is converted with MATLAB rgb2gray rounded to 8 bits (``quantize=False`` keeps the
unrounded grey, differentiable), data range 255 as in the original. The pyramid runs in the input's
float precision; the GSM statistics run in float64: in float32 the GSM covariance alone moves I19
from 0.174511 to 0.174605 (official 0.1745).
Known deviations: none measured beyond the official values' printed precision (see docs/metrics-pyramid.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.color import rgb2gray
from ..ops.filters import gaussian_kernel1d, imfilter, row_blocks
from ..ops.pyramid import build_spyr
from .registry import register

_TOL = 1e-15
_STATS_DTYPE = torch.float64
_VIF_CODE = "http://live.ece.utexas.edu/research/Quality/vifvec_release.zip"


def _grey255(x: torch.Tensor, colour: str, quantize: bool) -> torch.Tensor:
    if colour != "gray":
        raise InputError(f"colour must be 'gray' (MATLAB rgb2gray), got {colour!r}.")
    return rgb2gray(x, quantize, 255)


def channel_gain(cov: torch.Tensor, ssx: torch.Tensor, ssy: torch.Tensor, tol: float,
                 n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The distortion channel yn = g y + v of the LIVE code: gain g = cov / ssx and noise variance
    vv = (ssy - g cov) / n, with its guards in the original order: g = 0 and vv = ssy where ssx < tol,
    g = vv = 0 where ssy < tol, vv = ssy and g = 0 where g < 0, vv >= tol."""
    g = cov / (ssx + tol)
    vv = (ssy - g * cov) / n
    zero = torch.zeros_like(g)
    flat_x = ssx < tol
    g = torch.where(flat_x, zero, g)
    vv = torch.where(flat_x, ssy, vv)
    flat_y = ssy < tol
    g = torch.where(flat_y, zero, g)
    vv = torch.where(flat_y, zero, vv)
    neg = g < 0
    vv = torch.where(neg, ssy, vv)
    g = torch.where(neg, zero, g)
    return g, vv.clamp(min=tol)


#: elements per block of rows in the window and GSM statistics: the float64 working set stays a few MB at
#: any image size (whole-band statistics held 20 band-sized float64 copies: 3 GB for a 4K pair)
_CHUNK = 1 << 18


def _strided_window_sums(x: torch.Tensor, win: int, start: int, step: int, count: int, dim: int) -> torch.Tensor:
    """Sums of ``win`` consecutive samples along ``dim`` starting at start, start + step, ... (count windows),
    from one cumulative sum."""
    c = torch.cumsum(x, dim)
    last = start + step * (count - 1)
    hi = c.narrow(dim, start + win - 1, last - start + 1)
    if start > 0:
        lo = c.narrow(dim, start - 1, last - start + 1)
    else:
        lo = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c.narrow(dim, 0, last)], dim)
    idx = torch.arange(0, last - start + 1, step, device=x.device)
    return (hi - lo).index_select(dim, idx)


def _channel(y: torch.Tensor, yn: torch.Tensor, win: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """vifsub_est_M / distsub_est_M: gain g and noise variance vv of the distortion channel, one value
    per block; the win x win window sums are taken at block centres with 'reflect1' edges, in float64,
    a block of rows at a time."""
    b, k, h, w = y.shape
    p = win // 2
    # reflect-pad first (padding commutes with pointwise products), in the bands' precision
    pair = F.pad(torch.stack([y, yn], 2).view(b * k, 2, h, w), (p, p, p, p), mode="reflect")
    rows, cols = h // block, w // block
    parts = []
    for r0, r1 in row_blocks(rows, 5 * b * k * pair.shape[-1] * block, _CHUNK):
        top = block // 2 + block * r0  # the first window's top row, in padded coordinates
        yp, ynp = pair[..., top:block * (r1 - 1) + block // 2 + win, :].to(_STATS_DTYPE).unbind(1)
        st = torch.stack([yp, ynp, yp * yp, ynp * ynp, yp * ynp], 1)
        st = _strided_window_sums(st, win, 0, block, r1 - r0, -2)
        parts.append(_strided_window_sums(st, win, block // 2, block, cols, -1))
    n = win * win
    sx, sy, sxx, syy, sxy = torch.cat(parts, -2).view(b, k, 5, rows, cols).unbind(2)
    cov = sxy - sx * sy / n
    ssx = (sxx - sx * sx / n).clamp(min=0)
    ssy = (syy - sy * sy / n).clamp(min=0)
    return channel_gain(cov, ssx, ssy, _TOL, n)


def _gsm(y: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """refparams_vecgsm: eigenvalues (B, K, M*M) of the covariance of all overlapping M x M blocks and
    the multiplier field s = u' C^-1 u / M^2 over the non-overlapping blocks (B, K, h / M, w / M).

    Both run a block of rows at a time in float64; the covariance sums are taken about the first block of
    rows' mean (shifted data: as exact as centring on the final mean when the two are close)."""
    b, k, h, w = y.shape
    flat = y.reshape(b * k, 1, h, w)
    positions = h - block + 1
    count = positions * (w - block + 1)
    shift = s1 = s2 = None
    for r0, r1 in row_blocks(positions, block * block * b * k * w, _CHUNK):
        u = F.unfold(flat[..., r0:r1 + block - 1, :].to(_STATS_DTYPE), block)  # (BK, M*M, L) overlapping blocks
        if shift is None:
            shift = u.mean(-1, keepdim=True)
            s1 = torch.zeros_like(shift)
            s2 = u.new_zeros(u.shape[0], u.shape[1], u.shape[1])
        u = u - shift
        s1 = s1 + u.sum(-1, keepdim=True)
        s2 = s2 + u @ u.transpose(1, 2)
    mean = s1 / count
    cov = s2 / count - mean @ mean.transpose(1, 2)
    inv, singular = torch.linalg.inv_ex(cov)  # a flat band: MATLAB's inv gives Inf (the score NaN), torch's raises
    inv = torch.where(singular[:, None, None] != 0, torch.full_like(inv, float("nan")), inv)
    parts = []
    for r0, r1 in row_blocks(h // block, block * b * k * w, _CHUNK):
        v = F.unfold(flat[..., block * r0:block * r1, :].to(_STATS_DTYPE), block, stride=block)  # non-overlapping
        parts.append(((inv @ v) * v).sum(1) / (block * block))
    s = torch.cat(parts, -1)
    lam = torch.linalg.eigvalsh(cov)
    return lam.view(b, k, -1), s.view(b, k, h // block, w // block)


def gsm_subband_terms(ref: torch.Tensor, dist: torch.Tensor, levels: int = 4, orientations: tuple[int, ...] = (0, 3),
                      block: int = 3):
    """Per pyramid level of vifvec.m / ifcvec.m: (g, vv, s, lambda) of the chosen orientations, cropped as
    in the original. ``ref``, ``dist``: (N, 1, H, W) grey images in [0, 255]. Yields tensors of shape
    (N, K, h, w) for g, vv, s and (N, K, M*M) for lambda, in float64 (the pyramid runs in the input's
    precision)."""
    _, bands, _ = build_spyr(torch.cat([ref, dist], 1), levels, orientations, highpass=False)
    for level, band in enumerate(bands, start=1):
        lev = levels + 1 - level  # ind2wtree numbering: the coarsest level has lev = 1
        win = 2 ** lev + 1
        h, w = band.shape[-2:]
        band = band[..., :h // block * block, :w // block * block]
        y, yn = band[:, 0], band[:, 1]
        g, vv = _channel(y, yn, win, block)
        lam, s = _gsm(y, block)
        off = math.ceil(((win - 1) // 2) / block)
        crop = (Ellipsis, slice(off, -off), slice(off, -off))
        yield g[crop], vv[crop], s[crop], lam


def information(gs: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Per image, the sum over blocks and eigenvalues of log2(1 + gs lambda): ``gs`` (N, K, h, w) (gain times
    multiplier over noise), ``lam`` (N, K, M*M); one eigenvalue at a time, no (N, K, h, w, M*M) product."""
    total = 0
    for e in range(lam.shape[-1]):
        total = total + torch.log2(1 + gs * lam[..., e, None, None]).sum((1, 2, 3))
    return total


@register("vif", kind="fr", higher_better=True, score_range=(0, float("inf")),
          paper="Sheikh & Bovik, Image information and visual quality, TIP 2006",
          code=_VIF_CODE + " (vifvec.m)",
          colour="MATLAB rgb2gray rounded to 8 bits; data range 255",
          min_size=lambda o: 9 * 2 ** (o["levels"] - 1),
          size_note="a 4-level sp5 steerable pyramid (levels option): 9-tap filters at the coarsest level",
          nonfinite={"nan": "a flat pyramid band (e.g. a constant reference): its GSM covariance is singular; "
                            "MATLAB's inv gives Inf there and vifvec.m NaN"})
def vif(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = True,
        sigma_nsq: float = 0.4, block: int = 3, levels: int = 4, orientations: tuple[int, ...] = (0, 3)) -> torch.Tensor:
    """Visual information fidelity on a 4-level sp5 steerable pyramid with a vector GSM (vifvec.m)."""
    x, y = _grey255(ref, colour, quantize), _grey255(dist, colour, quantize)
    num = den = 0
    for g, vv, s, lam in gsm_subband_terms(x, y, levels, tuple(orientations), block):
        num = num + information(g * g * s / (vv + sigma_nsq), lam)
        den = den + information(s / sigma_nsq, lam)
    return (num / den).to(dist.dtype)


def _vifp_fits(n: int, scales: int) -> bool:
    """Whether every 'valid' Gaussian filtering of vifp_mscale.m fits an image side of n pixels."""
    for scale in range(1, scales + 1):
        size = 2 ** (scales - scale + 1) + 1
        if scale > 1:
            n = (n - size + 2) // 2  # 'valid', then every second sample
        if n < size:
            return False
    return True


@register("vifp", kind="fr", higher_better=True, score_range=(0, float("inf")),
          paper="Sheikh & Bovik, Image information and visual quality, TIP 2006 (pixel-domain version)",
          code=_VIF_CODE.replace("vifvec_release.zip", "") + " (vifp_mscale.m)",
          colour="MATLAB rgb2gray rounded to 8 bits; data range 255",
          min_size=lambda o: next(n for n in range(1, 1 << 16) if _vifp_fits(n, o["scales"])),
          size_note="four scales of 'valid' Gaussian filtering (17, 9, 5, 3 taps) with halving between them",
          nonfinite={"nan": "a reference without variance (a constant image): its information is 0 at every "
                            "scale, so the ratio is 0/0, as vifp_mscale.m"})
def vifp(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = True,
         sigma_nsq: float = 2.0, scales: int = 4) -> torch.Tensor:
    """Multi-scale pixel-domain VIF with a scalar GSM (vifp_mscale.m)."""
    if not _vifp_fits(min(ref.shape[-2:]), scales):
        least = next(n for n in range(1, 4096) if _vifp_fits(n, scales))
        raise InputError(f"vifp with {scales} scales needs images of at least {least} pixels per side, "
                         f"got {tuple(ref.shape[-2:])}.")
    # A constant offset changes no variance; centring keeps float32 cancellation small.
    x = _grey255(ref, colour, quantize) - 128
    y = _grey255(dist, colour, quantize) - 128
    num = den = 0
    for scale in range(1, scales + 1):
        size = 2 ** (scales - scale + 1) + 1
        g1 = gaussian_kernel1d(size, size / 5, x.dtype, x.device)
        win = (g1, g1)
        if scale > 1:
            x, y = imfilter(torch.cat([x, y], 1), win, "zeros", "valid")[..., ::2, ::2].split(1, 1)
        # the local moments one at a time: a stack of all five held five filtered images at once
        mx, my = imfilter(torch.cat([x, y], 1), win, "zeros", "valid").split(1, 1)
        s1 = (imfilter(x * x, win, "zeros", "valid") - mx * mx).clamp(min=0)
        s2 = (imfilter(y * y, win, "zeros", "valid") - my * my).clamp(min=0)
        s12 = imfilter(x * y, win, "zeros", "valid") - mx * my
        g, sv = channel_gain(s12, s1, s2, 1e-10)
        s1 = torch.where(s1 < 1e-10, torch.zeros_like(s1), s1)
        num = num + torch.log10(1 + g * g * s1 / (sv + sigma_nsq)).sum((1, 2, 3))
        den = den + torch.log10(1 + s1 / sigma_nsq).sum((1, 2, 3))
    return num / den
