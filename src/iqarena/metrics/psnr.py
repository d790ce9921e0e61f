"""PSNR: peak signal-to-noise ratio.

Calibrated convention: MSE over every pixel of every channel (RGB as given), peak 1.0 in [0, 1]
units, as scikit-image's ``peak_signal_noise_ratio`` with data range 255 on 8-bit images.
``colour='y'`` gives the super-resolution convention (Y of YCbCr), ``crop_border`` drops a border.
Identical images give +inf, as scikit-image and MATLAB's ``psnr``; ``eps`` is added to every other MSE
(so those values are unchanged by the rule for identical images).

The squared error is summed in blocks of rows of about a megabyte (the blocks' sums added in float64): no
full-size difference image is made (at 4K that copy and its square cost eight times the arithmetic: fresh
pages for two 100 MB tensors).
"""

from __future__ import annotations

import torch

from ..ops.color import rgb2gray, rgb2y
from ..ops.filters import row_blocks
from .registry import register


#: elements per block of rows in squared_error_sum: small enough to stay in cache, large enough per call
_BLOCK = 1 << 18


def squared_error_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image sum of (a - b)^2 over (C, H, W), in blocks of rows (differentiable); float64 result."""
    n, c, h, w = a.shape
    total = a.new_zeros(n, dtype=torch.float64)
    for i, j in row_blocks(h, n * c * w, _BLOCK):
        e = a[..., i:j, :] - b[..., i:j, :]
        total = total + e.square().sum(dim=(1, 2, 3)).double()
    return total


@register("psnr", kind="fr", higher_better=True, score_range=(0, float("inf")),
          paper="peak signal-to-noise ratio", code="scikit-image metrics.peak_signal_noise_ratio",
          colour="all channels as given (option: y, gray)",
          min_size=lambda o: 2 * o["crop_border"] + 1, size_note="one pixel inside crop_border",
          nonfinite={"inf": "identical images: MSE = 0, so PSNR = +inf (as scikit-image and MATLAB's psnr)"})
def psnr(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "rgb", crop_border: int = 0,
         eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak = 1)."""
    if colour == "y":
        dist, ref = rgb2y(dist), rgb2y(ref)
    elif colour == "gray":
        dist, ref = rgb2gray(dist), rgb2gray(ref)
    elif colour != "rgb":
        raise ValueError(f"colour must be 'rgb', 'y' or 'gray', got {colour!r}")
    if crop_border:
        c = crop_border
        dist, ref = dist[..., c:-c, c:-c], ref[..., c:-c, c:-c]
    mse = (squared_error_sum(dist, ref) / dist[0].numel()).to(dist.dtype)
    out = -10 * torch.log10(mse + eps)
    return torch.where(mse == 0, torch.full_like(out, float("inf")), out)
