"""RGB to CIELab as in Lin Zhang's SDSP / VSI code (RGB2Lab in VSI.m).

sRGB gamma expansion (threshold 0.04045), the sRGB (D65) RGB -> XYZ matrix, then normalisation by
the D50 reference white (0.9642, 1.0, 0.8251) with the CIE epsilon = 0.008856 and kappa = 903.3.
This mixes a D65 matrix with a D50 white exactly as the original does; it is not MATLAB's rgb2lab.
"""

from __future__ import annotations

import torch

SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
WHITE_D50 = (0.9642, 1.0, 0.8251)
EPSILON = 0.008856
KAPPA = 903.3


def rgb2lab_sdsp(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 3, H, W) L, a, b as RGB2Lab of VSI.m / SDSP.m."""
    if x.shape[1] != 3:
        raise ValueError(f"rgb2lab_sdsp expects 3 channels, got {x.shape[1]}")
    # powers as exp(p log(.)) (vectorised; arguments are positive where they are used)
    lin = torch.where(x <= 0.04045, x / 12.92, torch.exp(2.4 * torch.log((x + 0.055) / 1.055)))
    m = x.new_tensor(SRGB_TO_XYZ) / x.new_tensor(WHITE_D50)[:, None]
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    f = torch.where(xyz > EPSILON, torch.exp(torch.log(xyz.clamp_min(EPSILON)) / 3.0), (KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)
