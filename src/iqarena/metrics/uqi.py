"""UQI: universal image quality index (higher is better, 1 for identical images).

Wang & Bovik, "A universal image quality index", IEEE Signal Processing Letters 9(3), 2002.
Original code: img_qi.m (Zhou Wang, 2001), https://ece.uwaterloo.ca/~z70wang/research/quality_index/

Defaults follow img_qi.m: B x B sliding blocks (B = 8, 'valid' positions), the same special cases for
flat blocks (a block pair with zero variance and non-zero mean scores 2 mu_x mu_y / (mu_x^2 + mu_y^2),
two all-zero blocks score 1), mean over the quality map. img_qi.m takes a grey image; colour input is
converted with MATLAB rgb2gray rounded to 8 bits, on the 0-255 scale.

Block sums come from integral images in float64: exact for 8-bit data, so the flat-block cases are
detected exactly as in MATLAB (float32 sums of squares over 64 pixels would not be exact).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.color import rgb2gray
from .registry import register


def to_255(x: torch.Tensor) -> torch.Tensor:
    """float64 on the 0-255 scale; values within 1e-4 of an integer are snapped to it, so 8-bit images
    given as float32 in [0, 1] become exact integers (as MATLAB's double(uint8))."""
    x = x.double() * 255.0
    r = torch.round(x)
    return x + (torch.where((x - r).abs() < 1e-4, r, x) - x).detach()   # snapped values, identity gradient


def grey_255(x: torch.Tensor) -> torch.Tensor:
    """MATLAB rgb2gray (rounded to 8 bits) of colour input, on the 0-255 scale, float64."""
    return to_255(rgb2gray(x) if x.shape[1] == 3 else x)


def box_sums(x: torch.Tensor, size: int) -> torch.Tensor:
    """filter2(ones(size), x, 'valid') over the last two dims, from an integral image (float64)."""
    x = x.double()
    c = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    return c[..., size:, size:] - c[..., :-size, size:] - c[..., size:, :-size] + c[..., :-size, :-size]


def uqi_map(x: torch.Tensor, y: torch.Tensor, block_size: int = 8) -> torch.Tensor:
    """img_qi.m's quality map (float64) of two (N, C, H, W) images."""
    n_px = block_size * block_size
    sx, sy = box_sums(x, block_size), box_sums(y, block_size)
    sxx, syy, sxy = box_sums(x * x, block_size), box_sums(y * y, block_size), box_sums(x * y, block_size)
    s12 = sx * sy
    sq = sx * sx + sy * sy
    num = 4 * (n_px * sxy - s12) * s12
    den1 = n_px * (sxx + syy) - sq
    den = den1 * sq
    q = torch.ones_like(den)
    flat = (den1 == 0) & (sq != 0)
    q = torch.where(flat, 2 * s12 / torch.where(flat, sq, torch.ones_like(sq)), q)
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), q)


@register("uqi", kind="fr", higher_better=True, score_range=(-1.0, 1.0),
          paper="Wang & Bovik, A universal image quality index, IEEE SPL 2002",
          code="https://ece.uwaterloo.ca/~z70wang/research/quality_index/ (img_qi.m)",
          colour="MATLAB rgb2gray rounded to 8 bits",
          min_size=lambda o: o["block_size"], size_note="one 8x8 block (block_size option)")
def uqi(dist: torch.Tensor, ref: torch.Tensor, *, block_size: int = 8) -> torch.Tensor:
    """Universal quality index: mean of img_qi.m's sliding-block map."""
    if min(dist.shape[-2:]) < block_size:
        raise InputError(f"uqi needs images of at least {block_size}x{block_size} px, got {tuple(dist.shape[-2:])}")
    return uqi_map(grey_255(ref), grey_255(dist), block_size).mean(dim=(1, 2, 3)).to(dist.dtype)
