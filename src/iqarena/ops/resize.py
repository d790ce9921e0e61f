"""MATLAB ``imresize`` (bicubic, bilinear, box, nearest; antialiasing when shrinking) on (N, C, H, W) tensors.

Follows imresize.m: output size ceil(scale * size); sample positions u / scale + 0.5 (1 - 1 / scale);
the kernel is widened by 1 / scale when shrinking with antialiasing; weights are normalised per
output sample; out-of-range taps mirror symmetrically; taps whose weight is zero for every output
are dropped; the dimension with the smaller scale is resized first. Each pass gathers whole rows
(columns on the transposed image), one per tap, and accumulates them in tap order as imresizemex
does, so it batches, runs on any device and costs a few multiply-adds per output instead of a dense
matrix product. Unlike MATLAB on uint8 input, intermediate results are not rounded to 8 bits.
"""

from __future__ import annotations

import functools
import math

import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    a = x.abs()
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1) + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))).to(x.dtype)


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * ((x >= -1) & (x < 0)) + (1 - x) * ((x >= 0) & (x <= 1))).to(x.dtype)


def _box(x: torch.Tensor) -> torch.Tensor:
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


KERNELS = {"bicubic": (_cubic, 4.0), "bilinear": (_triangle, 2.0), "box": (_box, 1.0), "nearest": (_box, 1.0)}


@functools.lru_cache(maxsize=64)
def contributions(n_in: int, n_out: int, scale: float, method: str = "bicubic",
                  antialias: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """imresize.m's contributions() along one dimension: (indices, weights), both (n_out, taps), float64
    weights, 0-based indices mirrored into [0, n_in). A mirrored tap stays a tap of its own (it is not
    merged with the in-range tap it lands on), as in MATLAB."""
    if method not in KERNELS:
        raise ValueError(f"unknown imresize method {method!r}; choose one of {sorted(KERNELS)}")
    kernel, width = KERNELS[method]
    shrink = scale < 1 and antialias and method != "nearest"
    if shrink:
        width = width / scale
    u = torch.arange(1, n_out + 1, dtype=torch.float64)
    x = u / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(x - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    d = x[:, None] - idx
    w = scale * kernel(scale * d) if shrink else kernel(d)
    w = w / w.sum(1, keepdim=True)
    i0 = torch.remainder((idx - 1).long(), 2 * n_in)
    i0 = torch.where(i0 >= n_in, 2 * n_in - 1 - i0, i0)
    keep = (w != 0).any(0)
    return i0[:, keep].contiguous(), w[:, keep].contiguous()


def resize_matrix(n_in: int, n_out: int, scale: float, method: str = "bicubic", antialias: bool = True,
                  dtype=torch.float64, device=None) -> torch.Tensor:
    """The (n_out, n_in) matrix of imresize's contributions along one dimension."""
    idx, w = contributions(n_in, n_out, scale, method, antialias)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.scatter_add_(1, idx, w)
    return m.to(dtype=dtype, device=device)


def _resize_rows(x: torch.Tensor, n_out: int, scale: float, method: str, antialias: bool) -> torch.Tensor:
    """One imresize pass along dim -2: a gather of whole rows per tap, accumulated in tap order."""
    idx, w = contributions(x.shape[-2], n_out, scale, method, antialias)
    idx, w = idx.t().to(x.device), w.t().to(dtype=x.dtype, device=x.device)  # (taps, n_out)
    out = x.index_select(-2, idx[0]).mul_(w[0, :, None])
    for i, wi in zip(idx[1:], w[1:]):
        out.add_(x.index_select(-2, i).mul_(wi[:, None]))
    return out


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             method: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """MATLAB imresize of the last two dimensions, by ``scale`` or to ``size`` = (H, W)."""
    h, w = x.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        size = (int(math.ceil(scale * h)), int(math.ceil(scale * w)))
        sh = sw = float(scale)
    else:
        sh, sw = size[0] / h, size[1] / w
    dims = sorted([(sh, 0), (sw, 1)], key=lambda t: t[0])  # smaller scale first (stable: rows on ties)
    for s, dim in dims:
        if dim == 0:
            x = _resize_rows(x, size[0], s, method, antialias)
        else:
            x = _resize_rows(x.transpose(-1, -2).contiguous(), size[1], s, method, antialias).transpose(-1, -2)
    return x.contiguous()
