"""MS-SSIM: multi-scale structural similarity.

Wang, Simoncelli, Bovik, "Multi-scale structural similarity for image quality assessment", Asilomar
Conference on Signals, Systems and Computers, 2003. Original code: msssim.m with ssim_index_new.m,
https://ece.uwaterloo.ca/~z70wang/research/ssim/ (msssim.zip).

Follows msssim.m: five scales; at each, SSIM with an 11x11 Gaussian window (sigma 1.5), 'valid'
filtering, K = (0.01, 0.03), L = 255; between scales a 2x2 average (imfilter 'symmetric', 'same')
keeping every second sample; contrast-structure means at scales 1-4 and the full SSIM mean at
scale 5; weights 0.0448 0.2856 0.3001 0.2363 0.1333. Colour input: MATLAB rgb2gray rounded to 8 bits.

Pooling: the calibration values (official_scores.csv) are reproduced by msssim.m's
``method = 'wtd_sum'`` (weights normalised to sum one, sum of w_i mcs_i + w_5 mssim_5), so that is
the default here. msssim.m's own default and the paper's formula, ``method = 'product'``
(prod mcs_i^w_i * mssim_5^w_5), is an option; it gives 0.669979 / 0.841789 on I03 / I19 where the
official values are 0.6733 / 0.8462. In 'product' a negative mean contrast-structure term (MATLAB:
a complex number) is clamped to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.color import rgb2gray
from ..ops.filters import gaussian_kernel1d, imfilter
from .registry import register
from .ssim import ssim_means

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _half(x: torch.Tensor) -> torch.Tensor:
    """msssim.m's downsampling: imfilter(x, ones(2) / 4, 'symmetric', 'same'), then x(1:2:end, 1:2:end)."""
    if x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0:
        return F.avg_pool2d(x, 2)
    box = torch.full((2, 2), 0.25, dtype=x.dtype, device=x.device)
    return imfilter(x, box, "symmetric", "same")[..., ::2, ::2]


@register("ms_ssim", kind="fr", higher_better=True, score_range=(0, 1),
          paper="Wang, Simoncelli, Bovik, Multi-scale structural similarity for image quality assessment, Asilomar 2003",
          code="https://ece.uwaterloo.ca/~z70wang/research/ssim/ (msssim.m)",
          colour="MATLAB rgb2gray rounded to 8 bits (options: quantize=False; colour='rgb', mean over channels)",
          min_size=lambda o: o["window_size"] * 2 ** (len(o["weights"]) - 1),
          size_note="the 11x11 window ('valid') at the 5th scale (one scale per weight)")
def ms_ssim(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = True,
            method: str = "wtd_sum", weights: tuple[float, ...] = WEIGHTS, window_size: int = 11, sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Multi-scale SSIM (msssim.m); ``method`` 'wtd_sum' (calibrated default) or 'product' (the paper)."""
    if colour == "gray":
        x, y = rgb2gray(ref, quantize, 255), rgb2gray(dist, quantize, 255)
    elif colour == "rgb":
        x, y = ref * 255, dist * 255
    else:
        raise InputError(f"colour must be 'gray' or 'rgb', got {colour!r}.")
    if method not in ("wtd_sum", "product"):
        raise InputError(f"method must be 'wtd_sum' or 'product', got {method!r}.")
    levels = len(weights)
    if levels < 1 or sum(weights) == 0:
        raise InputError("weights must hold one non-negative weight per scale, not all zero.")
    if min(x.shape[-2:]) / 2 ** (levels - 1) < window_size:
        raise InputError(f"ms_ssim with {levels} scales needs images of at least {window_size * 2 ** (levels - 1)} "
                         f"pixels per side, got {tuple(x.shape[-2:])}; give fewer weights (scales) or a larger image.")
    g = gaussian_kernel1d(window_size, sigma, x.dtype, x.device)
    c1, c2 = (k1 * 255) ** 2, (k2 * 255) ** 2
    cs_means = []
    for level in range(levels):
        s_mean, cs_mean = ssim_means(x, y, (g, g), c1, c2)
        if level == levels - 1:
            last = s_mean
        else:
            cs_means.append(cs_mean)
            x, y = _half(torch.cat([x, y], 1)).split(x.shape[1], 1)
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    if not cs_means:
        return last if method == "wtd_sum" else last ** w[0]
    cs = torch.stack(cs_means, 1)
    if method == "wtd_sum":
        w = w / w.sum()
        return (cs * w[:-1]).sum(1) + last * w[-1]
    return (cs.clamp(min=0) ** w[:-1]).prod(1) * last.clamp(min=0) ** w[-1]
