"""Log-Gabor transfer functions built on the frequency grids of the original MATLAB code.

- ``sdsp_log_gabor``: the isotropic band-pass prior of SDSP (logGabor in VSI.m / SDSP.m, Lin Zhang).
- ``mad_log_gabor_bank``: the 5-scale x 4-orientation bank of MAD's gaborconvolve (Kovesi's code as
  altered by Larson, 2011): wavelengths 3, 9, 27, 81, 243, sigmaOnf 0.55, dThetaOnSigma 1.5.

Each returns the transfer function laid out for ``fft2`` output (zero frequency at [0, 0]), built in
float64 and cached per size, dtype and device.
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=16)
def sdsp_log_gabor(rows: int, cols: int, omega0: float, sigma_f: float, dtype=torch.float64,
                   device=None) -> torch.Tensor:
    """logGabor(rows, cols, omega0, sigmaF) of SDSP: (rows, cols) real transfer function."""
    f64 = torch.float64
    u1 = (torch.arange(1, cols + 1, dtype=f64) - (cols // 2 + 1)) / (cols - cols % 2)
    u2 = (torch.arange(1, rows + 1, dtype=f64) - (rows // 2 + 1)) / (rows - rows % 2)
    u2, u1 = torch.meshgrid(u2, u1, indexing="ij")
    inside = u1 * u1 + u2 * u2 <= 0.25
    radius = torch.fft.ifftshift(torch.where(inside, torch.sqrt(u1 * u1 + u2 * u2), torch.zeros_like(u1)))
    radius[0, 0] = 1.0
    lg = torch.exp(-torch.log(radius / omega0) ** 2 / (2 * sigma_f ** 2))  # radius 0 -> 0
    lg[0, 0] = 0.0
    return lg.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def mad_log_gabor_bank(rows: int, cols: int, dtype=torch.float64, device=None, nscale: int = 5,
                       norient: int = 4, min_wavelength: float = 3.0, mult: float = 3.0,
                       sigma_on_f: float = 0.55, dtheta_on_sigma: float = 1.5) -> torch.Tensor:
    """MAD's gaborconvolve filters as a (nscale, norient, rows, cols) tensor, fftshift'ed as the code does."""
    f64 = torch.float64
    x = (torch.arange(cols, dtype=f64) - cols / 2) / (cols / 2)
    y = (torch.arange(rows, dtype=f64) - rows / 2) / (rows / 2)
    y, x = torch.meshgrid(y, x, indexing="ij")
    radius = torch.sqrt(x * x + y * y)
    cr, cc = int(math.floor(rows / 2 + 1 + 0.5)) - 1, int(math.floor(cols / 2 + 1 + 0.5)) - 1  # MATLAB round
    radius[cr, cc] = 1.0
    log_radius = torch.log(radius)
    theta = torch.atan2(-y, x)
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    theta_sigma = math.pi / norient / dtheta_on_sigma

    radial = []
    for s in range(nscale):
        rfo = (1.0 / (min_wavelength * mult ** s)) / 0.5
        g = torch.exp((log_radius - math.log(rfo)) ** 2 / -(2 * math.log(sigma_on_f) ** 2))
        g[cr, cc] = 0.0
        radial.append(g)
    angular = []
    for o in range(norient):
        angle = o * math.pi / norient
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        dtheta = torch.abs(torch.atan2(ds, dc))
        angular.append(torch.exp(-dtheta ** 2 / (2 * theta_sigma ** 2)))
    bank = torch.stack(radial)[:, None] * torch.stack(angular)[None]
    return torch.fft.fftshift(bank, dim=(-2, -1)).to(dtype=dtype, device=device)
