"""Multi-scale decompositions on (N, C, H, W) tensors: the Laplacian pyramid of matlabPyrTools and the
CDF 9/7 lifting DWT of Chandler's imdwt.cpp.

``laplacian_pyramid`` follows buildLpyr.m with its defaults (filter 'binom5' = sqrt(2) * [1 4 6 4 1] / 16,
edges 'reflect1'): corrDn with 'reflect1' is a correlation over a mirror-padded signal (edge sample not
repeated) sampled at 0, 2, 4, ...; upConv with 'reflect1' puts the samples back at 0, 2, 4, ... with
zeros between, mirror-pads the same way and correlates (checked tap by tap against the compiled MEX
files of matlabPyrTools for even and odd lengths).

``dwt97`` follows imdwt.cpp (GWavelift): the four lifting steps of the CDF 9/7 wavelet with whole-sample
symmetric extension at both ends, then low band * 1.1496046 and high band * -0.8698643, first along
the image columns (MATLAB's first dimension, the contiguous one in the C++ buffer), then along the
rows; every level splits the previous LL band. Like the C++ code it works in float32 unless given
float64. Each dimension must be divisible by 2 ** levels (vsnr's callers pad first).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .filters import shifted_sum

BINOM5 = (1.0, 4.0, 6.0, 4.0, 1.0)

# imdwt.cpp lifting constants (float) and its final band scaling.
_ALPHA, _BETA, _GAMMA, _DELTA = -1.586134342, -0.052980118, 0.882911075, 0.443506852
_K, _KINV = 0.8698643, 1.1496046


@functools.lru_cache(maxsize=8)
def _binom5(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(BINOM5, dtype=torch.float64).mul(2 ** 0.5 / 16).to(dtype=dtype, device=device)


def _filter_reflect(x: torch.Tensor, f: torch.Tensor, dim: int, step: int = 1) -> torch.Tensor:
    """Correlate every line of ``x`` along ``dim`` (-1 or -2) with the odd filter ``f``, mirror padding,
    keeping samples 0, step, 2 step, ... (only those are computed)."""
    p = f.numel() // 2
    if dim == -1:
        return shifted_sum(F.pad(x, (p, p, 0, 0), mode="reflect"), f.view(1, -1), (1, step))
    return shifted_sum(F.pad(x, (0, 0, p, p), mode="reflect"), f.view(-1, 1), (step, 1))


def _reduce(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """corrDn(corrDn(x, f', 'reflect1', [1 2]), f, 'reflect1', [2 1]): filter and keep samples 0, 2, 4, ..."""
    return _filter_reflect(_filter_reflect(x, f, -1, 2), f, -2, 2)


def _expand(x: torch.Tensor, f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """upConv along rows then columns to ``size``: zero-insertion at 0, 2, 4, ..., then mirror-padded filtering."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, size[0], w)
    up[..., ::2, :] = x
    x = _filter_reflect(up, f, -2)
    up = x.new_zeros(n, c, size[0], size[1])
    up[..., ::2] = x
    return _filter_reflect(up, f, -1)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """buildLpyr(x, levels) with 'binom5' and 'reflect1': ``levels - 1`` band-pass images, then the low-pass."""
    f = _binom5(x.dtype, x.device)
    bands = []
    for _ in range(levels - 1):
        lo = _reduce(x, f)
        bands.append(x - _expand(lo, f, x.shape[-2:]))
        x = lo
    bands.append(x)
    return bands


def _lift_pairs(s: torch.Tensor, d: torch.Tensor, c: float, dim: int, backward: bool) -> torch.Tensor:
    """``c * (neighbour pair)`` for a lifting step with whole-sample symmetric extension.

    backward=False: pairs (s[i], s[i+1]) with s[n] := s[n-1] (update of the odd samples d).
    backward=True:  pairs (d[i-1], d[i]) with d[-1] := d[0] (update of the even samples s).
    """
    src = d if backward else s
    if backward:
        shifted = torch.cat([src.narrow(dim, 0, 1), src.narrow(dim, 0, src.shape[dim] - 1)], dim)
    else:
        shifted = torch.cat([src.narrow(dim, 1, src.shape[dim] - 1), src.narrow(dim, src.shape[dim] - 1, 1)], dim)
    return c * (src + shifted)


def _dwt97_1d(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One level of imdwt.cpp's lifting along ``dim``: returns (low, high), each half the length."""
    idx = torch.arange(0, x.shape[dim], 2, device=x.device)
    s = x.index_select(dim, idx)
    d = x.index_select(dim, idx + 1)
    d = d + _lift_pairs(s, d, _ALPHA, dim, backward=False)
    s = s + _lift_pairs(s, d, _BETA, dim, backward=True)
    d = d + _lift_pairs(s, d, _GAMMA, dim, backward=False)
    s = s + _lift_pairs(s, d, _DELTA, dim, backward=True)
    return s * _KINV, d * (-_K)


def dwt97(x: torch.Tensor, levels: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor]:
    """imdwt(x, levels): per level (finest first) its three detail bands, and the final LL band."""
    h, w = x.shape[-2:]
    step = 2 ** levels
    if h % step or w % step:
        raise ValueError(f"dwt97 needs sizes divisible by {step}, got {h}x{w}")
    details = []
    for _ in range(levels):
        lo, hi = _dwt97_1d(x, -2)
        ll, lh = _dwt97_1d(lo, -1)
        hl, hh = _dwt97_1d(hi, -1)
        details.append((lh, hl, hh))
        x = ll
    return details, x
