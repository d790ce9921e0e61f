"""SR-SIM: spectral residual based similarity.

Zhang and Li, "SR-SIM: A fast and high performance IQA index based on spectral residual", ICIP 2012.
Original code: SR_SIM.m, https://sse.tongji.edu.cn/linzhang/IQA/SR-SIM/SR-SIM.htm

Follows SR_SIM.m: luminance Y = 0.299 R + 0.587 G + 0.114 B on 0..255 values (grey input is used as
it is); automatic downsampling by F = max(1, round(min(H, W) / 256)) with an F x F average filter
(conv2 'same', zero padding) and every F-th sample; spectral-residual visual saliency (Hou and Zhang)
of the image imresize'd by 0.25 (bicubic, antialiased), with a 3 x 3 average of the log amplitude
('replicate' borders), a 10 x 10 Gaussian (sigma 3.8, zero padding), mat2gray, and imresize back to
the downsampled size; Scharr gradients (conv2 'same'); C1 = 0.40, C2 = 225, alpha = 0.50; the
similarity map pooled with weight max(saliency1, saliency2).

Computed in float64 (the maps are small, so it costs little). Reproduces the published MATLAB values
(goldhill 0.94652679, I01 0.9659730) and SR_SIM.m run in Octave (five TID2013 pairs) to 1.2e-8.
Known deviation: where MATLAB returns NaN (constant images: zero Fourier magnitudes, mat2gray of a
constant map; black images: zero weights), amplitudes are floored at 1e-30, a constant saliency map
becomes 0 and an all-zero weight falls back to the unweighted mean, so such pairs get a defined score.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.filters import fspecial_gaussian, imfilter
from ..ops.phase import safe_sqrt
from ..ops.resize import imresize
from .fsim import box_decimate, yiq255
from .registry import register

def downsample_factor(h: int, w: int) -> int:
    """F = max(1, round(min(H, W) / 256)) with MATLAB's round (half away from zero)."""
    return max(1, int(min(h, w) / 256 + 0.5))


def scharr_magnitude(x: torch.Tensor) -> torch.Tensor:
    """sqrt(conv2(x, dx, 'same')^2 + conv2(x, dy, 'same')^2) with the Scharr kernels of SR_SIM.m / VSI.m,
    dx = [3 0 -3; 10 0 -10; 3 0 -3] / 16 and dy = dx' (zero padding), as shifted differences."""
    p = F.pad(x, (1, 1, 1, 1))
    dcol = p[..., :, 2:] - p[..., :, :-2]  # horizontal difference, rows still padded
    drow = p[..., 2:, :] - p[..., :-2, :]
    gx = (3 * dcol[..., :-2, :] + 10 * dcol[..., 1:-1, :] + 3 * dcol[..., 2:, :]) / 16
    gy = (3 * drow[..., :, :-2] + 10 * drow[..., :, 1:-1] + 3 * drow[..., :, 2:]) / 16
    return safe_sqrt(gx * gx + gy * gy)


def saliency_pool(sim: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(sim * weight) / sum(weight) per image (SR_SIM.m, VSI.m). The weight sum is 0 only for black images
    (NaN in the originals): the unweighted mean then."""
    num = (sim * weight).sum(dim=(1, 2, 3))
    den = weight.sum(dim=(1, 2, 3))
    return torch.where(den > 0, num / den.clamp_min(1e-300), sim.mean(dim=(1, 2, 3)))


def mat2gray(x: torch.Tensor) -> torch.Tensor:
    """(x - min) / (max - min) per image; a constant map gives zeros."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))


@functools.lru_cache(maxsize=8)
def _sr_kernels(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    box = torch.full((3, 3), 1.0 / 9, dtype=dtype, device=device)
    return box, fspecial_gaussian(10, 3.8, dtype, device)


def spectral_residual_saliency(y: torch.Tensor, scale: float = 0.25) -> torch.Tensor:
    """SR_SIM.m's spectralResidueSaliency: (N, 1, H, W) luminance -> saliency map in [0, 1], same size."""
    box, gauss = _sr_kernels(y.dtype, y.device)
    small = imresize(y, scale=scale)
    spec = torch.fft.fft2(small)
    log_amp = torch.log(spec.abs().clamp_min(1e-30))
    residual = log_amp - imfilter(log_amp, box, "replicate")
    # exp(residual + i * phase) = spectrum / |spectrum| * exp(residual)
    sal = torch.fft.ifft2(spec * torch.exp(residual - log_amp)).abs() ** 2
    sal = mat2gray(imfilter(sal, gauss, "zeros"))
    return imresize(sal, size=tuple(y.shape[-2:]))


@register("srsim", kind="fr", higher_better=True, score_range=(0, 1),
          paper="Zhang and Li, SR-SIM: A fast and high performance IQA index based on spectral residual, ICIP 2012",
          code="https://sse.tongji.edu.cn/linzhang/IQA/SR-SIM/SR-SIM.htm (SR_SIM.m)",
          colour="Y = 0.299 R + 0.587 G + 0.114 B (not rounded), as SR_SIM.m; grey used as it is",
          min_size=8, size_note="iqarena's bound (SR_SIM.m sets none): a smaller image's saliency comes from a 1-2 pixel "
                    "quarter-size copy")
def srsim(dist: torch.Tensor, ref: torch.Tensor, *, c1: float = 0.40, c2: float = 225.0,
          alpha: float = 0.50) -> torch.Tensor:
    """Spectral residual based similarity (SR_SIM.m)."""
    h, w = ref.shape[-2:]
    if min(h, w) < 8:
        raise InputError(f"srsim needs images of at least 8 x 8 pixels, got {h} x {w}.")
    n = ref.shape[0]
    # SR_SIM.m luminance: the Y row of rgb2ntsc on 0..255 values, not rounded
    f = downsample_factor(h, w)
    y = torch.cat([box_decimate(img, f, lambda t: yiq255(t, 1, torch.float64)) for img in (ref, dist)])
    sal = spectral_residual_saliency(y)
    grad = scharr_magnitude(y)
    s1, s2 = sal[:n], sal[n:]
    g1, g2 = grad[:n], grad[n:]
    sal_sim = (2 * s1 * s2 + c1) / (s1 * s1 + s2 * s2 + c1)
    grad_sim = (2 * g1 * g2 + c2) / (g1 * g1 + g2 * g2 + c2)
    weight = torch.maximum(s1, s2)
    return saliency_pool(sal_sim * grad_sim ** alpha, weight).to(ref.dtype)
