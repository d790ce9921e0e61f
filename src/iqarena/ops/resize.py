"""MATLAB ``imresize`` (bicubic, bilinear, box, nearest; antialiasing when shrinking) on (N, C, H, W) tensors.

Follows imresize.m: output size ceil(scale * size); sample positions u / scale + 0.5 (1 - 1 / scale);
the kernel is widened by 1 / scale when shrinking with antialiasing; weights are normalised per
output sample; out-of-range taps mirror symmetrically; the dimension with the smaller scale is
resized first. Each pass is a dense (out, in) weight matrix, so it batches and runs on any device.
Unlike MATLAB on uint8 input, intermediate results are not rounded to 8 bits.
"""

from __future__ import annotations

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


def resize_matrix(n_in: int, n_out: int, scale: float, method: str = "bicubic", antialias: bool = True,
                  dtype=torch.float64, device=None) -> torch.Tensor:
    """The (n_out, n_in) matrix of imresize's contributions along one dimension."""
    kernel, width = KERNELS[method]
    shrink = scale < 1 and antialias and method != "nearest"
    if shrink:
        width = width / scale
    u = torch.arange(1, n_out + 1, dtype=torch.float64, device=device)
    x = u / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(x - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]
    d = x[:, None] - idx
    w = scale * kernel(scale * d) if shrink else kernel(d)
    w = w / w.sum(1, keepdim=True)
    # mirror indices (1-based) into [1, n_in]
    i0 = (idx - 1).long()
    period = 2 * n_in
    i0 = torch.remainder(i0, period)
    i0 = torch.where(i0 >= n_in, period - 1 - i0, i0)
    m = torch.zeros(n_out, n_in, dtype=torch.float64, device=device)
    m.scatter_add_(1, i0, w)
    return m.to(dtype)


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
            m = resize_matrix(h, size[0], s, method, antialias, x.dtype, x.device)
            x = torch.einsum("oh,...hw->...ow", m, x)
        else:
            m = resize_matrix(w, size[1], s, method, antialias, x.dtype, x.device)
            x = torch.einsum("ow,...hw->...ho", m, x)
    return x
