"""NLPD: normalized Laplacian pyramid distance.

Laparra, Ballé, Berardino, Simoncelli, "Perceptual image quality assessment using a normalized
Laplacian pyramid", Human Vision and Electronic Imaging (IS&T EI) 2016. Original code: NLP_dist.m at
https://www.cns.nyu.edu/~lcv/NLPyr/ (its Laplacian pyramid is laplacian_pyramid_s.m, after T. Mertens).

Follows NLP_dist.m: grey image in [0, 1] (MATLAB rgb2gray rounded to 8 bits, divided by 255; the
divisive-normalisation constants were fitted on this scale, not on 0-255), 6 levels of a Laplacian
pyramid with the Burt-Adelson filter [.05 .25 .4 .25 .05] (separable): low pass by imfilter with
'symmetric' padding then every second sample; expansion by replicate padding of one pixel, zero
insertion with gain 4, the same filter with zero padding, and the border cut off (odd sizes kept).
Each band is divided by sigma_b + conv2(|band|, F_b, 'same') with the published per-level sigmas and
5 x 5 filters; the distance is the mean over levels of the root mean squared difference. Lower is
better. Computed in float64: the official values are printed with 15 decimals and are reproduced to
within 4e-16 on the five TID2013 pairs.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..ops.color import rgb2gray
from ..ops.filters import imfilter, pad
from ..ops.phase import safe_sqrt
from .registry import register

LEVELS = 6
_BURT_ADELSON = (0.05, 0.25, 0.4, 0.25, 0.05)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# DN_filters of NLP_dist.m: the nonzero taps (row, col, value) of each level's 5 x 5 filter F2.
_DN_TAPS = (
    ((1, 2, 0.1011), (2, 1, 0.1493), (2, 3, 0.1460), (2, 4, 0.0072), (3, 2, 0.1015)),
    ((1, 2, 0.0757), (2, 1, 0.1986), (2, 3, 0.1846), (3, 2, 0.0837)),
    ((1, 2, 0.0477), (2, 1, 0.2138), (2, 3, 0.2243), (3, 2, 0.0467)),
    ((2, 1, 0.2503), (2, 3, 0.2616)),
    ((2, 1, 0.2598), (2, 3, 0.2552)),
    ((2, 1, 0.2215), (2, 3, 0.0717)),
)


@functools.lru_cache(maxsize=8)
def _filters(device: torch.device, dtype: torch.dtype):
    f = torch.tensor(_BURT_ADELSON, dtype=dtype, device=device)
    dn = []
    for taps in _DN_TAPS:
        k = torch.zeros(5, 5, dtype=torch.float64)
        for r, c, v in taps:
            k[r, c] = v
        dn.append(torch.flip(k, (0, 1)).to(device=device, dtype=dtype))  # conv2 flips; imfilter correlates
    return f, (2 * f).view(1, 1, 5, 1), (2 * f).view(1, 1, 1, 5), dn


def _reduce(j: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """imfilter(J, f' * f, 'symmetric') sampled at (1:2:end, 1:2:end), filtering only the kept samples."""
    x = pad(j, 2, 2, 2, 2, "symmetric")
    x = F.conv2d(x, f.view(1, 1, 5, 1), stride=(2, 1))
    return F.conv2d(x, f.view(1, 1, 1, 5), stride=(1, 2))


def _expand(i: torch.Tensor, size: tuple[int, int], up_col: torch.Tensor, up_row: torch.Tensor) -> torch.Tensor:
    """laplacian_pyramid_s's upsample: replicate-pad 1, insert zeros (gain 4), filter, cut to ``size``.

    Zero insertion followed by the 5-tap filter is a stride-2 transposed convolution per axis; the
    first output sample MATLAB keeps is index 4 of the full result.
    """
    x = pad(i, 1, 1, 1, 1, "replicate")
    x = F.conv_transpose2d(x, up_col, stride=(2, 1))
    x = F.conv_transpose2d(x, up_row, stride=(1, 2))
    return x[..., 4:4 + size[0], 4:4 + size[1]]


def laplacian_pyramid(image: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """laplacian_pyramid_s.m: ``levels - 1`` band-pass images and the low-pass residual."""
    f, up_col, up_row, _ = _filters(image.device, image.dtype)
    bands, j = [], image
    for _ in range(levels - 1):
        low = _reduce(j, f)
        bands.append(j - _expand(low, j.shape[-2:], up_col, up_row))
        j = low
    bands.append(j)
    return bands


@register("nlpd", kind="fr", higher_better=False, score_range=(0, float("inf")),
          paper="Laparra et al., Perceptual image quality assessment using a normalized Laplacian pyramid, "
                "HVEI 2016",
          code="https://www.cns.nyu.edu/~lcv/NLPyr/ (NLP_dist.m)",
          colour="MATLAB rgb2gray rounded to 8 bits, on [0, 1] (quantize=False: not rounded, differentiable)")
def nlpd(dist: torch.Tensor, ref: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """NLPD as NLP_dist.m computes it (its first output), in float64, returned in the input dtype."""
    n = ref.shape[0]
    x = rgb2gray(torch.cat([ref, dist]).double(), quantize=quantize)
    _, _, _, dn = _filters(x.device, x.dtype)
    total = x.new_zeros(n)
    for band, sigma, k in zip(laplacian_pyramid(x), SIGMAS, dn):
        y = band / (sigma + imfilter(band.abs(), k, "zeros", "same"))
        total = total + safe_sqrt(((y[:n] - y[n:]) ** 2).mean(dim=(1, 2, 3)))
    return (total / LEVELS).to(dist.dtype)
