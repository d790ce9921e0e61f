"""CW-SSIM: complex wavelet structural similarity.

Sampat, Wang, Gupta, Bovik, Markey, "Complex wavelet structural similarity: a new image similarity
index", IEEE TIP 18(11), 2009. Original code: cwssim_index.m (Wang, Sampat, Bovik, 2010),
https://www.mathworks.com/matlabcentral/fileexchange/43017 , on matlabPyrTools' buildSCFpyr.

Follows cwssim_index(img1, img2, level, or, guardb, K): complex steerable pyramid
buildSCFpyr(img, level, or - 1); only the ``or`` bands of the coarsest level ``level`` are used;
``guardb / 2^(level - 1)`` samples dropped at each border; local index
(2 |sum c1 c2*| + K) / (sum |c1|^2 + |c2|^2 + K) over a 7x7 box window ('valid'); pooled with a
Gaussian weight of the 'valid' map's size and sigma = band height / 4 (fspecial, sums to one);
mean over orientations. Defaults are the calibration convention: 4 levels, 8 orientations,
guardb = 0, K = 0, MATLAB rgb2gray rounded to 8 bits, data range 255 (K is in those units).
Not differentiable-safe with K = 0 on flat images (0 / 0); give K > 0 for a loss.
Known deviations: none measured beyond the official values' printed precision (docs/metrics-pyramid.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.color import rgb2gray
from ..ops.filters import gaussian_kernel1d
from ..ops.pyramid import scf_bands
from .registry import register


@register("cw_ssim", kind="fr", higher_better=True, score_range=(0, 1),
          paper="Sampat et al., Complex wavelet structural similarity: a new image similarity index, TIP 2009",
          code="https://www.mathworks.com/matlabcentral/fileexchange/43017 (cwssim_index.m)",
          colour="MATLAB rgb2gray rounded to 8 bits; data range 255",
          min_size=lambda o: max(2 ** (o["level"] + 2), o["window"] * 2 ** (o["level"] - 1)),
          size_note="a 4-level complex steerable pyramid (level option) and the 7x7 window on its coarsest bands",
          nonfinite={"nan": "flat images (no structure in either image's coarsest bands): (2|c1 c2*| + K) / "
                            "(|c1|^2 + |c2|^2 + K) is 0/0 with K = 0, as cwssim_index.m; pass k > 0 for a value"})
def cw_ssim(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = True, level: int = 4,
            orientations: int = 8, guardb: int = 0, k: float = 0.0, window: int = 7) -> torch.Tensor:
    """Mean over orientations of the Gaussian-weighted CW-SSIM map of the coarsest pyramid level."""
    if colour != "gray":
        raise InputError(f"colour must be 'gray' (MATLAB rgb2gray), got {colour!r}.")
    x = rgb2gray(ref, quantize, 255)
    y = rgb2gray(dist, quantize, 255)
    bands = scf_bands(torch.cat([x, y], 1), level, orientations - 1)  # (N, 2, or, h, w)
    gb = int(guardb / 2 ** (level - 1))
    if gb:
        bands = bands[..., gb:-gb, gb:-gb]
    b1, b2 = bands[:, 0], bands[:, 1]
    n, nb, h, w = b1.shape
    if min(h, w) < window:
        raise InputError(f"the level-{level} bands of a {tuple(ref.shape[-2:])} image are {h}x{w}, smaller than the "
                         f"{window}x{window} window; use fewer levels or a larger image.")
    corr = b1 * b2.conj()
    power = b1.real ** 2 + b1.imag ** 2 + b2.real ** 2 + b2.imag ** 2
    stats = torch.stack([corr.real, corr.imag, power], 2).view(n * nb, 3, h, w)
    cr, ci, pw = F.avg_pool2d(stats, window, stride=1).view(n, nb, 3, h - window + 1, w - window + 1).unbind(2)
    cmap = (2 * torch.sqrt(cr * cr + ci * ci) + k) / (pw + k)
    sigma = (h + 2 * gb) / 4  # a quarter of the band height before the guard crop
    gy = gaussian_kernel1d(h - window + 1, sigma, cmap.dtype, cmap.device)
    gx = gaussian_kernel1d(w - window + 1, sigma, cmap.dtype, cmap.device)
    return torch.einsum("nkhw,h,w->nk", cmap, gy, gx).mean(1)
