"""GMSD and MS-GMSD: gradient magnitude similarity deviation, single- and multi-scale.

GMSD: Xue, Zhang, Mou, Bovik, "Gradient magnitude similarity deviation: a highly efficient perceptual
image quality index", IEEE TIP 23(2), 2014. Original code: GMSD.m at
https://www4.comp.polyu.edu.hk/~cslzhang/IQA/GMSD/GMSD.htm

Follows GMSD.m: MATLAB rgb2gray rounded to 8 bits on 0-255 (grey input as it is), 2 x 2 average
(conv2 'same') and decimation by 2, Prewitt kernels [1 0 -1] / 3 (conv2 'same', zero padding),
T = 170, score = std2 of the GMS map (N - 1 normalisation). Lower is better. Computed in the input's
dtype: float64 input reproduces the official values, printed with 15 decimals, to within 5e-16 (the
standard deviation sums in MATLAB's order: column-major, four interleaved partial sums, as its
vectorised ``sum``; a plain float64 sum is off by up to 1.4e-14, on I08); float32 input agrees to
float32 precision (measured relative error < 1e-6 on the five pairs).

MS-GMSD: Zhang, Sander, Bermak, "Gradient magnitude similarity deviation on multiple scales for color
image quality assessment", ICASSP 2017 (no official code released). Published constants: 4 scales with
weights (0.096, 0.596, 0.289, 0.019), masking parameter alpha = 0.5 in
GMS = ((2 - alpha) m1 m2 + C) / (m1^2 + m2^2 - alpha m1 m2 + C), C = 170 on 0-255;
MS-GMSD = sqrt(sum_j w_j GMSD_j^2) with GMSD_j the population standard deviation (the 1/N of the
papers' formula) of scale j's GMS map. Luminance is Y of YIQ (not rounded); scale 1 is the full
resolution, each further scale a 2 x 2 average and decimation. ``chromatic=True`` gives MS-GMSDc:
gamma * MS-GMSD + (1 - gamma) * beta1 * CD with gamma = 2 / (1 + beta2 exp(-beta3 MS-GMSD)) - 1,
beta = (0.01, 0.32, 15) and CD the root of the summed mean squared I and Q differences, taken at the
coarsest scale. Without the authors' code, the unstated details (full-resolution first scale, the scale
of CD) follow piq's multi_scale_gmsd, the implementation most users know; measured agreement with piq
0.8.0 is given in docs/metrics-gradient.md.
"""

from __future__ import annotations


import torch

from ..ops.color import GRAY_WEIGHTS, mix_channels
from ..ops.phase import safe_sqrt
from .fsim import box_decimate, gradient_magnitude, yiq255
from .registry import register

MS_GMSD_WEIGHTS = (0.096, 0.596, 0.289, 0.019)


PREWITT = ((1 / 3, 0.0, -1 / 3),) * 3


def _matlab_sum(v: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim in MATLAB's order: four interleaved running sums, combined left to right."""
    n = v.shape[-1]
    m = n - n % 4
    total = v.new_zeros(v.shape[:-1])
    if m:
        lanes = v[..., :m].unflatten(-1, (m // 4, 4)).cumsum(dim=-2)[..., -1, :]
        total = ((lanes[..., 0] + lanes[..., 1]) + lanes[..., 2]) + lanes[..., 3]
    for j in range(m, n):
        total = total + v[..., j]
    return total


def std2(q: torch.Tensor) -> torch.Tensor:
    """MATLAB std2 (N - 1 normalisation) of every (H, W) map in (N, 1, H, W), summed in MATLAB's order."""
    v = q.flatten(0, 1).transpose(-1, -2).flatten(-2)  # column-major, as MATLAB's q(:)
    n = v.shape[-1]
    mu = _matlab_sum(v) / n
    d = v - mu[:, None]
    return safe_sqrt(_matlab_sum(d * d) / max(n - 1, 1))  # MATLAB: std of one value is 0


def gms_map(m1: torch.Tensor, m2: torch.Tensor, c: float, alpha: float = 0.0) -> torch.Tensor:
    """Gradient magnitude similarity; alpha > 0 is MS-GMSD's masking form."""
    if alpha == 0:
        return (2 * m1 * m2 + c) / (m1 * m1 + m2 * m2 + c)
    return ((2 - alpha) * m1 * m2 + c) / (m1 * m1 + m2 * m2 - alpha * m1 * m2 + c)


def grey255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """MATLAB rgb2gray on the 0-255 scale: rounded to integers like its uint8 result when ``quantize``.
    Grey input is only scaled."""
    if x.shape[1] == 1:
        return x * 255
    y = mix_channels(x, (GRAY_WEIGHTS,), 255)
    return torch.floor(y.clamp(0, 255) + 0.5) if quantize else y


@register("gmsd", kind="fr", higher_better=False, score_range=(0, 1),
          paper="Xue et al., Gradient magnitude similarity deviation: a highly efficient perceptual image "
                "quality index, TIP 2014",
          code="https://www4.comp.polyu.edu.hk/~cslzhang/IQA/GMSD/GMSD.htm (GMSD.m)",
          colour="MATLAB rgb2gray rounded to 8 bits (quantize=False: not rounded, differentiable)",
          size_note="any size: 3x3 Prewitt filters with zero padding ('same')")
def gmsd(dist: torch.Tensor, ref: torch.Tensor, *, t: float = 170, quantize: bool = True) -> torch.Tensor:
    """GMSD as GMSD.m computes it (lower is better), in the input dtype (float64 for all 15 decimals)."""
    n = ref.shape[0]
    y = torch.cat([box_decimate(img, 2, lambda t: grey255(t, quantize)) for img in (ref, dist)])
    g = gradient_magnitude(y, PREWITT)
    return std2(gms_map(g[:n], g[n:], t))


@register("ms_gmsd", kind="fr", higher_better=False, score_range=(0, 1),
          paper="Zhang, Sander, Bermak, Gradient magnitude similarity deviation on multiple scales for color "
                "image quality assessment, ICASSP 2017",
          code="no official code; constants from the paper (http://www.cse.ust.hk/~psander/docs/gradsim.pdf)",
          colour="Y of YIQ on 0-255, not rounded; chromatic=True adds I and Q (MS-GMSDc)",
          size_note="any size: 3x3 Prewitt filters with zero padding, box decimation keeps at least one pixel")
def ms_gmsd(dist: torch.Tensor, ref: torch.Tensor, *, chromatic: bool = False,
            weights: tuple[float, ...] = MS_GMSD_WEIGHTS, alpha: float = 0.5, c: float = 170,
            beta1: float = 0.01, beta2: float = 0.32, beta3: float = 15.0) -> torch.Tensor:
    """MS-GMSD (or MS-GMSDc with ``chromatic=True`` on colour input); lower is better."""
    n = ref.shape[0]
    colour = chromatic and ref.shape[1] == 3
    x = torch.cat([yiq255(ref, 3 if colour else 1), yiq255(dist, 3 if colour else 1)])
    total = x.new_zeros(n)
    for j, w in enumerate(weights):
        if j:
            x = box_decimate(x, 2)
        g = gradient_magnitude(x[:, :1], PREWITT)
        q = gms_map(g[:n], g[n:], c, alpha)
        total = total + w * q.var(dim=(1, 2, 3), correction=0)
    score = safe_sqrt(total)
    if colour:
        cd = safe_sqrt(((x[:n, 1:] - x[n:, 1:]) ** 2).mean(dim=(2, 3)).sum(dim=1))
        gamma = 2 / (1 + beta2 * torch.exp(-beta3 * score)) - 1
        score = gamma * score + (1 - gamma) * beta1 * cd
    return score
