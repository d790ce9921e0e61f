"""FSIM and FSIMc: feature similarity from phase congruency and gradient magnitude.

Zhang, Zhang, Mou, Zhang, "FSIM: a feature similarity index for image quality assessment",
IEEE TIP 20(8), 2011. Original code: FeatureSIM.m (with Kovesi's phasecong2 inside) at
https://web.comp.polyu.edu.hk/cslzhang/IQA/FSIM/FSIM.htm

Follows FeatureSIM.m: RGB is converted to YIQ on the 0-255 scale (Y = 0.299 R + 0.587 G + 0.114 B,
not rounded; grey input is used as it is, with I = Q = 1 so that FSIMc = FSIM); every channel is
averaged with an F x F box (conv2 'same', zero padding) and decimated by F = max(1, round(min(H, W) /
256)); phase congruency by phasecong2 (4 scales, 4 orientations, minimum wavelength 6, mult 2,
sigmaOnf 0.55, dThetaOnSigma 1.2, k 2, epsilon 1e-4); Scharr gradient (conv2 'same');
T1 = 0.85, T2 = 160, T3 = T4 = 200, lambda = 0.03. FSIM is FeatureSIM.m's first output, FSIMc its
second. Computed in the input's dtype (float32 reproduces the 4 printed decimals of the official
FSIMc values; measured |ours - official| <= 5e-5 on the five TID2013 pairs).

Differences: none on purpose. Images without any structure (constant) give NaN, as in the original.
"""

from __future__ import annotations

import math

import torch

from ..ops.color import YIQ_MATRIX, mix_channels
from ..ops.filters import block_mean, correlate_small
from ..ops.phase import phase_congruency, safe_sqrt
from .registry import register

_SCHARR = ((3.0, 0.0, -3.0), (10.0, 0.0, -10.0), (3.0, 0.0, -3.0))


def box_decimate(x: torch.Tensor, f: int, pointwise=None) -> torch.Tensor:
    """conv2(x, fspecial('average', f), 'same') sampled at (1:f:end, 1:f:end), as one strided mean, of
    ``pointwise(x)`` when given (a colour conversion, applied a few rows at a time: no full-size result).

    conv2 'same' with an f x f box averages x[i - (f - 1 - f // 2) .. i + f // 2] (zeros outside).
    """
    return block_mean(x, f, f - 1 - f // 2, pointwise=pointwise)


def featuresim_downsample(x: torch.Tensor, pointwise=None) -> torch.Tensor:
    """FeatureSIM.m's downsampling by F = max(1, round(min(H, W) / 256)), of ``pointwise(x)`` when given."""
    return box_decimate(x, max(1, int(min(x.shape[-2:]) / 256 + 0.5)), pointwise)


def yiq255(x: torch.Tensor, channels: int = 3, dtype: torch.dtype | None = None) -> torch.Tensor:
    """rgb2ntsc on the 0-255 scale: Y (channels=1) or Y, I, Q, in ``dtype`` (default x's). Grey input: Y = x."""
    if x.shape[1] == 1:
        return x.to(dtype or x.dtype) * 255
    return mix_channels(x, YIQ_MATRIX[:channels], 255, dtype)


SCHARR = tuple(tuple(v / 16 for v in row) for row in _SCHARR)


def gradient_magnitude(y: torch.Tensor, kernel) -> torch.Tensor:
    """sqrt(Ix^2 + Iy^2) of (N, 1, H, W) images: correlation with ``kernel`` (rows of floats, for Ix) and
    its transpose (Iy), zero padding ('same'), each as ops.filters.correlate_small (a float64 conv2d's bits)."""
    gx = correlate_small(y, kernel)
    gy = correlate_small(y, tuple(zip(*kernel)))
    if torch.is_grad_enabled() and y.requires_grad:
        return safe_sqrt(gx * gx + gy * gy)
    return safe_sqrt(gx.square_().add_(gy.square_()))  # the same values, two full-size temporaries fewer


def real_power(p: torch.Tensor, exponent: float) -> torch.Tensor:
    """MATLAB real(p .^ exponent) for real p of either sign."""
    mag = p.abs() ** exponent
    return torch.where(p < 0, mag * math.cos(math.pi * exponent), mag)


_INFO = dict(kind="fr", higher_better=True, score_range=(0, 1),
             paper="Zhang et al., FSIM: a feature similarity index for image quality assessment, TIP 2011",
             code="https://web.comp.polyu.edu.hk/cslzhang/IQA/FSIM/FSIM.htm (FeatureSIM.m)",
             min_size=3, size_note="phase congruency is zero everywhere on images 1 or 2 pixels high or wide",
             nonfinite={"nan": "no structure in either image (constant images, e.g. flat grey, or black against "
                               "white): phase congruency is 0 everywhere and the pooling 0/0, as FeatureSIM.m"})


@register("fsimc", colour="YIQ on 0-255 (FeatureSIM.m); grey input gives FSIMc = FSIM", chromatic=True, **_INFO)
@register("fsim", colour="Y of YIQ on 0-255, not rounded (FeatureSIM.m); grey input used as it is",
          chromatic=False, **_INFO)
def fsim(dist: torch.Tensor, ref: torch.Tensor, *, chromatic: bool = False, t1: float = 0.85, t2: float = 160,
         t3: float = 200, t4: float = 200, lam: float = 0.03) -> torch.Tensor:
    """Feature similarity as FeatureSIM.m: FSIM on luminance, or FSIMc (chromatic=True) with I and Q."""
    n = ref.shape[0]
    colour = chromatic and ref.shape[1] == 3
    channels = 3 if colour else 1
    both = torch.cat([featuresim_downsample(img, lambda t: yiq255(t, channels)) for img in (ref, dist)])
    y = both[:, :1]
    pc = phase_congruency(y)
    gm = gradient_magnitude(y, SCHARR)
    pc1, pc2, g1, g2 = pc[:n], pc[n:], gm[:n], gm[n:]
    pc_sim = (2 * pc1 * pc2 + t1) / (pc1 * pc1 + pc2 * pc2 + t1)
    g_sim = (2 * g1 * g2 + t2) / (g1 * g1 + g2 * g2 + t2)
    pcm = torch.maximum(pc1, pc2)
    sim = g_sim * pc_sim
    if colour:
        i1, i2, q1, q2 = both[:n, 1:2], both[n:, 1:2], both[:n, 2:3], both[n:, 2:3]
        i_sim = (2 * i1 * i2 + t3) / (i1 * i1 + i2 * i2 + t3)
        q_sim = (2 * q1 * q2 + t4) / (q1 * q1 + q2 * q2 + t4)
        sim = sim * real_power(i_sim * q_sim, lam)
    return (sim * pcm).sum(dim=(1, 2, 3)) / pcm.sum(dim=(1, 2, 3))
