"""SSIM: structural similarity.

Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
similarity", IEEE TIP 2004. Original code: ssim.m (2011 revision) at https://ece.uwaterloo.ca/~z70wang/research/ssim/

Defaults follow ssim.m: MATLAB rgb2gray (rounded to 8 bits) for colour input, 11x11 Gaussian window
with sigma 1.5, 'valid' filtering, K1 = 0.01, K2 = 0.03, L = 255. ssim.m's automatic downsampling
(factor round(min(H, W) / 256), box filter then decimation) is off by default, as in the calibration
values; ``downsample=True`` switches it on.
"""

from __future__ import annotations

import torch

from ..ops.color import rgb2gray
from ..ops.filters import block_mean, gaussian_kernel1d, imfilter, row_blocks
from .registry import register


def _prepare(x: torch.Tensor, colour: str) -> torch.Tensor:
    if colour == "gray":
        return rgb2gray(x, scale=255)
    if colour == "rgb":
        return x * 255
    raise ValueError(f"colour must be 'gray' or 'rgb', got {colour!r}")


def downsample_like_ssim_m(x: torch.Tensor, pointwise=None) -> torch.Tensor:
    """ssim.m's automatic downsampling of ``pointwise(x)`` (x itself when not given; the conversion runs a
    few rows at a time): factor f = max(1, round(min(H, W) / 256)), f x f box filter (imfilter 'symmetric',
    'same'), then every f-th sample.

    Only the kept samples are filtered: f x f means every f pixels, with the symmetric padding imfilter would
    add ((f - 1) // 2 before, the rest after), whose windows are exactly those of the kept samples (the same
    values up to the summation order: a mean instead of a sum of f^2 products by 1 / f^2)."""
    f = max(1, int(min(x.shape[-2:]) / 256 + 0.5))
    return block_mean(x, f, (f - 1) // 2, "symmetric", pointwise)


#: elements of the five local-moment planes per block of rows in ssim_means (8 MB in float32)
_BLOCK = 1 << 21


def ssim_means(x: torch.Tensor, y: torch.Tensor, window: tuple[torch.Tensor, torch.Tensor], c1: float,
               c2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the SSIM and contrast-structure maps ('valid' filtering) of two (N, C, H, W) images with a
    separable window: two (N,) tensors.

    The maps are made a block of rows at a time (each block with the window's rows of overlap) and only
    their sums kept: the working set stays near _BLOCK elements at any image size, where the whole-image
    moments held some 25 image-sized planes (850 MB for a 4K pair)."""
    kc, kr = window
    kh, kw = kc.numel(), kr.numel()
    n, c, h, w = x.shape
    rows = h - kh + 1
    s_sum = cs_sum = 0
    for r0, r1 in row_blocks(rows, 5 * n * c * w, _BLOCK, least=8 * kh):
        smap, csmap = _maps(x[..., r0:r1 + kh - 1, :], y[..., r0:r1 + kh - 1, :], window, c1, c2)
        s_sum = s_sum + smap.sum(dim=(1, 2, 3)).double()
        cs_sum = cs_sum + csmap.sum(dim=(1, 2, 3)).double()
    count = c * rows * (w - kw + 1)
    return (s_sum / count).to(x.dtype), (cs_sum / count).to(x.dtype)


def _maps(x: torch.Tensor, y: torch.Tensor, window: tuple[torch.Tensor, torch.Tensor], c1: float,
          c2: float) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    mu_x, mu_y, xx, yy, xy = imfilter(stack, window, "zeros", "valid").split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sxx, syy, sxy = xx - mu_xx, yy - mu_yy, xy - mu_xy
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return lum * cs, cs


@register("ssim", kind="fr", higher_better=True, score_range=(-1, 1),
          paper="Wang et al., Image quality assessment: from error visibility to structural similarity, TIP 2004",
          code="https://ece.uwaterloo.ca/~z70wang/research/ssim/ (ssim.m)",
          colour="MATLAB rgb2gray rounded to 8 bits (option: rgb, mean over channels)",
          min_size=lambda o: o["window_size"],
          size_note="the 11x11 Gaussian window with 'valid' filtering; ssim.m returns -Inf below it")
def ssim(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", downsample: bool = False,
         window_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM over the 'valid' region (ssim.m)."""
    if downsample:  # the conversion a few rows at a time inside the downsampling: no full-size grey images
        x, y = (downsample_like_ssim_m(img, lambda t: _prepare(t, colour)) for img in (ref, dist))
    else:
        x, y = _prepare(ref, colour), _prepare(dist, colour)
    g = gaussian_kernel1d(window_size, sigma, x.dtype, x.device)
    return ssim_means(x, y, (g, g), (k1 * 255) ** 2, (k2 * 255) ** 2)[0]
