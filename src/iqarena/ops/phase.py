"""Phase congruency (Kovesi) as in phasecong2.m, the version FeatureSIM.m ships with.

Kovesi, "Image features from phase congruency", Videre 1(3), 1999. Code: phasecong2.m by Peter
Kovesi (bundled inside FeatureSIM.m, https://web.comp.polyu.edu.hk/cslzhang/IQA/FSIM/FSIM.htm).

Log-Gabor filters are applied in the frequency domain: one FFT per image, then one inverse FFT per
(orientation, scale), all batched. The filter bank and the noise-model constants that depend only on
the image size are computed once per (size, device, dtype) in float64 and cached. MATLAB's median of
an even number of values (mean of the two middle ones) is reproduced.
"""

from __future__ import annotations

import functools
import math

import torch


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a finite (zero) gradient at 0 and values unchanged elsewhere (0 for x <= 0 and NaN)."""
    pos = x > 0
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.where(pos, x, 0.0).sqrt_()  # the same values, two full-size temporaries fewer
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def matlab_median(x: torch.Tensor) -> torch.Tensor:
    """Median over the last dimension as MATLAB computes it (mean of the middle pair for even length)."""
    n = x.shape[-1]
    lower = torch.median(x, dim=-1).values  # the (n + 1) // 2-th smallest
    if n % 2:
        return lower
    above = x > lower[..., None]
    next_up = torch.where(above, x, torch.full_like(x, float("inf"))).amin(dim=-1)
    upper = torch.where((~above).sum(dim=-1) > n // 2, lower, next_up)
    return (lower + upper) / 2


def _freq_grid(n: int) -> torch.Tensor:
    """phasecong2's normalised frequency axis for n samples, range +/- 0.5 (before ifftshift)."""
    if n % 2:
        return torch.arange(-(n - 1) / 2, (n - 1) / 2 + 1, dtype=torch.float64) / (n - 1)
    return torch.arange(-n / 2, n / 2, dtype=torch.float64) / n


@functools.lru_cache(maxsize=16)
def _bank(rows: int, cols: int, nscale: int, norient: int, min_wavelength: float, mult: float,
          sigma_onf: float, dtheta_on_sigma: float, device: torch.device, dtype: torch.dtype):
    """Complex log-Gabor filters (norient, nscale, rows, cols) and per-orientation noise-model sums."""
    y, x = torch.meshgrid(_freq_grid(rows), _freq_grid(cols), indexing="ij")
    radius = torch.fft.ifftshift(torch.sqrt(x * x + y * y))
    theta = torch.fft.ifftshift(torch.atan2(-y, x))
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)  # lowpassfilter([rows cols], .45, 15)
    radius[0, 0] = 1.0
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)

    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult ** s)
        g = torch.exp(-(torch.log(radius / fo) ** 2) / (2 * math.log(sigma_onf) ** 2)) * lowpass
        g[0, 0] = 0.0
        log_gabor.append(g)
    theta_sigma = math.pi / norient / dtheta_on_sigma
    spread = []
    for o in range(norient):
        angle = o * math.pi / norient
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread.append(torch.exp(-(torch.atan2(ds, dc).abs() ** 2) / (2 * theta_sigma ** 2)))
    bank = torch.stack([torch.stack([spread[o] * log_gabor[s] for s in range(nscale)]) for o in range(norient)])

    # Noise model: mean squared filter value at the smallest scale (EM_n) and the spatial sums of
    # products of the filters' (real) impulse responses, rescaled by sqrt(rows * cols) as phasecong2 does.
    em_n = (bank[:, 0] ** 2).sum(dim=(-2, -1))
    spatial = torch.fft.ifft2(bank).real * math.sqrt(rows * cols)
    sum_an2 = (spatial ** 2).sum(dim=(1, 2, 3))
    total = spatial.sum(dim=1)
    sum_aiaj = ((total ** 2).sum(dim=(-2, -1)) - sum_an2) / 2
    return bank.to(device=device, dtype=dtype.to_complex()), em_n.tolist(), sum_an2.tolist(), sum_aiaj.tolist()


def phase_congruency(im: torch.Tensor, *, nscale: int = 4, norient: int = 4, min_wavelength: float = 6,
                     mult: float = 2, sigma_onf: float = 0.55, dtheta_on_sigma: float = 1.2, k: float = 2.0,
                     epsilon: float = 1e-4) -> torch.Tensor:
    """phasecong2's phase congruency map of every (N, 1, H, W) image (defaults as in FeatureSIM.m)."""
    rows, cols = im.shape[-2:]
    bank, em_n, sum_an2, sum_aiaj = _bank(rows, cols, nscale, norient, float(min_wavelength), float(mult),
                                          float(sigma_onf), float(dtheta_on_sigma), im.device, im.dtype)
    spectrum = torch.fft.fft2(im[:, 0])[:, None]
    total_energy = total_an = 0
    for o in range(norient):  # one orientation at a time: the (N, S, H, W) complex responses, not all of them
        eo = torch.fft.ifft2(spectrum * bank[o])                                   # (N, S, H, W)
        amplitude = eo.abs()
        sum_eo = eo.sum(dim=1)                                                     # sumE + i sumO
        x_energy2 = sum_eo.real ** 2 + sum_eo.imag ** 2
        x_energy = torch.sqrt(x_energy2) + epsilon
        # Energy = sum over scales of E.MeanE + O.MeanO - |E.MeanO - O.MeanE| with Mean = sumEO / XEnergy.
        # The first two terms sum to |sumEO|^2 / XEnergy; E.MeanO - O.MeanE = -Im(EO * conj(Mean)).
        mean_conj = (sum_eo.conj() / x_energy)[:, None]
        energy = x_energy2 / x_energy - (eo * mean_conj).imag.abs().sum(dim=1)
        # Noise threshold per image from the smallest scale's squared amplitude.
        median_e2n = matlab_median((amplitude[:, 0] ** 2).flatten(1))          # (N,)
        noise_power = (-median_e2n / math.log(0.5)) / em_n[o]
        tau = safe_sqrt((2 * noise_power * sum_an2[o] + 4 * noise_power * sum_aiaj[o]) / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + k * math.sqrt(2 - math.pi / 2) * tau) / 1.7
        total_energy = total_energy + torch.clamp(energy - threshold[:, None, None], min=0)
        total_an = total_an + amplitude.sum(dim=1)
    return (total_energy / total_an)[:, None]
