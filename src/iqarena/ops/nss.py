"""Natural-scene statistics shared by NIQE, BRISQUE and PIQE: MSCN coefficients, GGD and AGGD fits.

Follows the LIVE releases (Mittal, Moorthy, Bovik): ``estimateggdparam.m`` and ``estimateaggdparam.m``
pick the shape parameter on the grid ``0.2:0.001:10`` (MATLAB's colon, built from both ends) by the
closest moment ratio; MATLAB's ``min`` returns the first index on ties and index 1 when every
difference is NaN (alpha = 0.2 then), which is reproduced here. Every fit works on the last
dimension of a tensor, so all images and blocks of a batch are fitted at once.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
from scipy.special import gamma as _gamma

from .color import GRAY_WEIGHTS
from .filters import gaussian_kernel1d, pad


def matlab_colon(a: float, d: float, b: float) -> np.ndarray:
    """MATLAB ``a:d:b`` for d > 0: the first half is a + k d, the second half b - k d (from the end),
    the middle of an even count (a + b) / 2."""
    n = int(np.floor((b - a) / d + 1e-10))
    k = np.arange(n + 1, dtype=np.float64)
    out = np.where(k <= n / 2, a + k * d, b - (n - k) * d)
    if n % 2 == 0:
        out[n // 2] = (a + b) / 2
    return out


@functools.lru_cache(maxsize=None)
def _grid_np() -> dict[str, np.ndarray]:
    gam = matlab_colon(0.2, 0.001, 10.0)
    g1, g2, g3 = _gamma(1.0 / gam), _gamma(2.0 / gam), _gamma(3.0 / gam)
    return {"gam": gam, "g1": g1, "g2": g2, "g3": g3,
            "r_aggd": (g2 * g2) / (g1 * g3),   # increasing in gam
            "r_ggd": (g1 * g3) / (g2 * g2)}    # decreasing in gam


@functools.lru_cache(maxsize=None)
def grid(device: torch.device, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The shape grid 0.2:0.001:10 with Gamma(1/a), Gamma(2/a), Gamma(3/a) and both moment ratios."""
    return {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in _grid_np().items()}


def _closest(r: torch.Tensor, target: torch.Tensor, increasing: bool, squared: bool) -> torch.Tensor:
    """Index of MATLAB ``min((r - t).^2)`` (or ``min(abs(r - t))``) for each target, r monotone.

    The nearest grid values bracket the target, so only the two neighbours of its sorted position
    are compared; the lower index wins a tie and a NaN target gives index 0, as MATLAB's min.
    """
    rs = r if increasing else r.flip(0)
    pos = torch.searchsorted(rs, target.contiguous())
    lo = (pos - 1).clamp(0, r.numel() - 1)
    hi = pos.clamp(0, r.numel() - 1)
    if not increasing:  # back to indices of r; in r the candidate from `hi` has the lower index
        lo, hi = r.numel() - 1 - hi, r.numel() - 1 - lo
    dl, dh = r[lo] - target, r[hi] - target
    dl, dh = (dl * dl, dh * dh) if squared else (dl.abs(), dh.abs())
    idx = torch.where(dh < dl, hi, lo)
    return torch.where(torch.isnan(target), torch.zeros_like(idx), idx)


def ggd_fit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Gaussian fit over the last dim (estimateggdparam.m): (shape alpha, std sigma)."""
    g = grid(v.device, v.dtype)
    sigma_sq = torch.linalg.vector_norm(v, 2, -1).square() / v.shape[-1]
    e = torch.linalg.vector_norm(v, 1, -1) / v.shape[-1]
    rho = sigma_sq / (e * e)
    idx = _closest(g["r_ggd"], rho, increasing=False, squared=False)
    return g["gam"][idx], sigma_sq.sqrt()


def _aggd_moments(v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sums over the last dim that the AGGD fit needs: squares of the negative and of the positive samples,
    their counts, absolute values, and the number of samples."""
    neg, pos = v.clamp(max=0), v.clamp(min=0)
    return (torch.linalg.vector_norm(neg, 2, -1).square(), torch.linalg.vector_norm(pos, 2, -1).square(),
            torch.count_nonzero(neg, -1), torch.count_nonzero(pos, -1), torch.linalg.vector_norm(v, 1, -1),
            v.shape[-1])


def _aggd_from_moments(s_neg, s_pos, c_neg, c_pos, abs_sum, n):
    g = grid(s_neg.device, s_neg.dtype)
    left = (s_neg / c_neg).sqrt()  # 0 / 0 = NaN where no sample is negative, as MATLAB's mean([])
    right = (s_pos / c_pos).sqrt()
    gh = left / right
    m = abs_sum / n
    rhat = (m * m) / ((s_neg + s_pos) / n)
    rhatnorm = (rhat * (gh.pow(3) + 1) * (gh + 1)) / (gh.pow(2) + 1).pow(2)
    idx = _closest(g["r_aggd"], rhatnorm, increasing=True, squared=True)
    return g["gam"][idx], left, right, idx


def aggd_fit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalised Gaussian fit over the last dim (estimateaggdparam.m).

    Returns (alpha, left std, right std, grid index of alpha); the index gives Gamma(k / alpha)
    from :func:`grid` without recomputing it.
    """
    return _aggd_from_moments(*_aggd_moments(v))


def gray255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 1, H, W) float64 grey in 0..255.

    Colour: MATLAB ``rgb2gray`` on uint8 data (weighted sum of the 8-bit values, rounded half away
    from zero). With ``quantize`` the input is first put on the 8-bit grid, as read from an 8-bit
    file; without it the grey values are 255 * the unrounded weighted sum (MATLAB on double input).
    """
    if quantize:  # the 8-bit values; exact in float32 for data that came from 8-bit files
        x = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.float64)
    else:
        x = x.to(torch.float64) * 255
    if x.shape[1] == 3:
        w = GRAY_WEIGHTS
        x = (x[:, 0:1] * w[0] + x[:, 1:2] * w[1]) + x[:, 2:3] * w[2]
        if quantize:
            x = torch.floor(x + 0.5)
    return x


# The separable factors MATLAB applies for the LIVE releases' window fspecial('gaussian', 7, 7/6) normalised
# twice: conv2(hcol, hrow, A) with hcol, hrow = u(:,1), v(:,1) of svd(h) times sqrt(s(1)). Their last bits
# come from MATLAB's SVD (MKL) and cannot be recomputed here. These are the correctly rounded Gaussian taps
# moved by (hcol) 6, 1, 0, 0, 0, 1, 9 and (hrow) 6, 0, 0, 0, 0, -3, 22 ulp: the kernel, found by
# benchmarks/fit_mscn_taps.py, whose flat-region signs reproduce all ten official NIQE/BRISQUE values of the
# calibration pairs. Stored in the order _fma_chain applies them (conv2 flips the kernel, so index 6 here is
# MATLAB's u(1) / v(1), the element an SVD computes with the largest rounding error; MKL's dgesvd puts its
# largest offset there too).
MATLAB_GAUSS7_HCOL = ("0x1.9b92991f24881p-7", "0x1.42e11ca517a60p-4", "0x1.e5fb7c557fad1p-3", "0x1.5edacbc602378p-2",
                      "0x1.e5fb7c557fad1p-3", "0x1.42e11ca517a60p-4", "0x1.9b92991f24884p-7")
MATLAB_GAUSS7_HROW = ("0x1.9b92991f24881p-7", "0x1.42e11ca517a5fp-4", "0x1.e5fb7c557fad1p-3", "0x1.5edacbc602378p-2",
                      "0x1.e5fb7c557fad1p-3", "0x1.42e11ca517a5cp-4", "0x1.9b92991f24891p-7")


@functools.lru_cache(maxsize=None)
def _factors(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if size == 7 and abs(sigma - 7 / 6) < 1e-15:
        hc = torch.tensor([float.fromhex(v) for v in MATLAB_GAUSS7_HCOL], dtype=torch.float64, device=device)
        hr = torch.tensor([float.fromhex(v) for v in MATLAB_GAUSS7_HROW], dtype=torch.float64, device=device)
        return hc.to(dtype), hr.to(dtype)
    g = gaussian_kernel1d(size, sigma, torch.float64, device).to(dtype)
    return g, g


def _fma_chain(p: torch.Tensor, h: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid 1-D filtering along ``dim``: out[i] = sum_t h[t] p[i + t], accumulated tap by tap with fused
    multiply-adds from the last tap down (conv2's loop over its flipped kernel, first element first);
    torch.addcmul is one FMA per element on CPU and CUDA."""
    k = h.numel()
    n = p.shape[dim] - k + 1
    out = p.narrow(dim, k - 1, n) * h[k - 1]
    for t in range(k - 2, -1, -1):
        out = torch.addcmul(out, p.narrow(dim, t, n), h[t])
    return out


def conv2_separable(x: torch.Tensor, hcol: torch.Tensor, hrow: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """MATLAB ``conv2(hcol, hrow, A, 'same')`` on a padded image (odd kernels, given in correlation order,
    i.e. MATLAB's factors reversed): every column is filtered with hcol, then every row with hrow, each output
    accumulated with FMAs as MATLAB does.

    The arithmetic order matters where a window is flat (or a linear ramp): the mean then equals the centre
    pixel up to rounding, and the sign of that rounding decides on which side of the AGGD fit the coefficient
    counts. ``padding``: 'zeros' (filter2/conv2 'same') or 'replicate' (imfilter(..., 'replicate')).
    """
    if not fma_is_fused(x.device):
        warnings.warn("torch.addcmul is not a fused multiply-add on this device: MSCN signs in flat image "
                      "regions, and so NIQE/BRISQUE there, may differ from MATLAB's.", stacklevel=3)
    r, c = hcol.numel() // 2, hrow.numel() // 2
    p = pad(x, r, r, c, c, padding)
    return _fma_chain(_fma_chain(p, hcol.to(x.dtype), -2), hrow.to(x.dtype), -1)


def mscn(x: torch.Tensor, padding: str = "replicate", c: float = 1.0, size: int = 7,
         sigma: float = 7 / 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients (x - mu) / (sigma + c) and the local std sigma.

    mu and sigma come from the Gaussian window fspecial('gaussian', size, sigma) applied as MATLAB does
    (separable conv2 with FMAs, see :func:`conv2_separable`) with the given padding: 'replicate' in NIQE
    and PIQE (imfilter / imgaussfilt), 'zeros' in BRISQUE (filter2 'same').
    """
    hc, hr = _factors(size, float(sigma), x.dtype, x.device)
    n = x.shape[0]
    mu, mom2 = conv2_separable(torch.cat([x, x * x], 0), hc, hr, padding).split(n, 0)
    sd = (mom2 - mu * mu).abs().sqrt()
    return (x - mu) / (sd + c), sd


# Neighbour offsets (rows, cols) of the paired products: horizontal, vertical, main and anti diagonal.
PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _segments(n: int, d: int) -> list[tuple[slice, slice]]:
    """(own, partner) index ranges along one axis for the partner index (i - d) mod n, d in {-1, 0, 1}."""
    if d == 0:
        return [(slice(0, n), slice(0, n))]
    if d == 1:
        return [(slice(1, n), slice(0, n - 1)), (slice(0, 1), slice(n - 1, n))]
    return [(slice(0, n - 1), slice(1, n)), (slice(n - 1, n), slice(0, 1))]


def circular_products(s: torch.Tensor, shift: tuple[int, int]) -> list[torch.Tensor]:
    """The products s * circshift(s, shift) over the last two dims (MATLAB circshift: wraps around), as a
    few pieces (..., h, w) whose values together are those products; no shifted copy of s is made."""
    h, w = s.shape[-2:]
    return [s[..., ri, ci] * s[..., rp, cp] for ri, rp in _segments(h, shift[0]) for ci, cp in _segments(w, shift[1])]


def paired_aggd_fit(s: torch.Tensor, shifts=PAIR_SHIFTS):
    """AGGD fits of the neighbour products of ``s`` over its last two dims, one per shift: the outputs of
    :func:`aggd_fit` with a trailing dim of len(shifts)."""
    moments = []
    for sh in shifts:
        parts = [_aggd_moments(p.flatten(-2)) for p in circular_products(s, sh)]
        moments.append([sum(m[k] for m in parts) for k in range(6)])
    stacked = [torch.stack([m[k] for m in moments], -1) for k in range(5)]
    return _aggd_from_moments(*stacked, moments[0][5])


@functools.lru_cache(maxsize=None)
def fma_is_fused(device: torch.device) -> bool:
    """True when torch.addcmul rounds once (a true FMA) on ``device``, as the MATLAB-parity filters assume."""
    a = torch.tensor([1 + 2.0 ** -30], dtype=torch.float64, device=device)
    c = torch.tensor([-(1 + 2.0 ** -29)], dtype=torch.float64, device=device)
    return bool(torch.addcmul(c, a, a).item() == 2.0 ** -60)
