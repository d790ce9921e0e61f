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
better. Computed in the input's dtype: float64 input reproduces the official values, printed with 15
decimals, to within 5e-16 on the five TID2013 pairs; float32 input to float32 precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.filters import pad
from ..ops.phase import safe_sqrt
from .gmsd import grey255
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


def _reduce(j: torch.Tensor) -> torch.Tensor:
    """imfilter(J, f' * f, 'symmetric') sampled at (1:2:end, 1:2:end), filtering only the kept samples.

    Float64 convolutions take PyTorch's slow path on CPU; weighted strided slices are much faster.
    """
    h, w = j.shape[-2:]
    ho, wo = (h + 1) // 2, (w + 1) // 2
    x = pad(j, 2, 2, 2, 2, "symmetric")
    x = sum(c * x[..., t:t + 2 * ho - 1:2, :] for t, c in enumerate(_BURT_ADELSON))
    return sum(c * x[..., t:t + 2 * wo - 1:2] for t, c in enumerate(_BURT_ADELSON))


def _normalise(band: torch.Tensor, sigma: float, taps) -> torch.Tensor:
    """band / (sigma + conv2(|band|, F2, 'same')), the sparse 5 x 5 F2 applied tap by tap."""
    h, w = band.shape[-2:]
    a = F.pad(band.abs(), (2, 2, 2, 2))
    # conv2 flips F2: tap (r, c) weighs the sample at offset (2 - r, 2 - c)
    return band / (sigma + sum(v * a[..., 4 - r:4 - r + h, 4 - c:4 - c + w] for r, c, v in taps))


def _expand_rows(i: torch.Tensor, size: int) -> torch.Tensor:
    """One axis of laplacian_pyramid_s's upsample: replicate-pad 1, zeros between samples (gain 2),
    the 5-tap filter, border cut to ``size`` rows. In polyphase form: even outputs 0.1, 0.8, 0.1 of
    three neighbours, odd outputs 0.5, 0.5 of two."""
    h = i.shape[-2]
    p = torch.cat([i[..., :1, :], i, i[..., -1:, :]], dim=-2)
    even = 0.1 * p[..., :h, :] + 0.8 * p[..., 1:h + 1, :] + 0.1 * p[..., 2:, :]
    odd = 0.5 * p[..., 1:h + 1, :] + 0.5 * p[..., 2:, :]
    return torch.stack([even, odd], dim=-2).flatten(-3, -2)[..., :size, :]


def _expand(i: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """laplacian_pyramid_s's upsample (separable filter, zero padding after the replicate border)."""
    x = _expand_rows(i, size[0])
    return _expand_rows(x.transpose(-1, -2), size[1]).transpose(-1, -2)


def laplacian_pyramid(image: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """laplacian_pyramid_s.m: ``levels - 1`` band-pass images and the low-pass residual."""
    bands, j = [], image
    for _ in range(levels - 1):
        low = _reduce(j)
        bands.append(j - _expand(low, j.shape[-2:]))
        j = low
    bands.append(j)
    return bands


@register("nlpd", kind="fr", higher_better=False, score_range=(0, float("inf")),
          paper="Laparra et al., Perceptual image quality assessment using a normalized Laplacian pyramid, "
                "HVEI 2016",
          code="https://www.cns.nyu.edu/~lcv/NLPyr/ (NLP_dist.m)",
          colour="MATLAB rgb2gray rounded to 8 bits, on [0, 1] (quantize=False: not rounded, differentiable)",
          size_note="any size: the pyramid's symmetric padding works down to one pixel")
def nlpd(dist: torch.Tensor, ref: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """NLPD as NLP_dist.m computes it (its first output), in the input dtype (float64 for all 15 decimals)."""
    n = ref.shape[0]
    x = torch.cat([grey255(ref, quantize), grey255(dist, quantize)]) / 255
    total = x.new_zeros(n)
    for band, sigma, taps in zip(laplacian_pyramid(x), SIGMAS, _DN_TAPS):
        y = _normalise(band, sigma, taps)
        total = total + safe_sqrt(((y[:n] - y[n:]) ** 2).mean(dim=(1, 2, 3)))
    return total / LEVELS
