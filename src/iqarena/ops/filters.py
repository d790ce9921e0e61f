"""MATLAB-style filtering on (N, C, H, W) tensors: fspecial kernels, imfilter/filter2 with padding modes.

``imfilter`` correlates (no kernel flip) and pads with zeros unless told 'symmetric' or 'replicate';
``conv2`` flips the kernel; ``filter2(..., 'valid')`` drops the border. Kernels are applied per
channel (depthwise). A separable kernel given as (column, row) vectors runs as two 1-D passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_TORCH_PAD = {"zeros": "constant", "symmetric": "reflect_sym", "replicate": "replicate", "circular": "circular"}


def gaussian_kernel1d(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """The 1-D factor of fspecial('gaussian', size, sigma): exp(-x^2 / 2 sigma^2), normalised."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def fspecial_gaussian(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """fspecial('gaussian', [size size], sigma) as a (size, size) tensor."""
    g = gaussian_kernel1d(size, sigma, torch.float64, device)
    return torch.outer(g, g).to(dtype)


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str = "zeros") -> torch.Tensor:
    """Pad the last two dims. Modes: zeros, symmetric (MATLAB: edge sample repeated), replicate, circular."""
    if mode == "symmetric":
        return _pad_symmetric(x, top, bottom, left, right)
    if mode not in _TORCH_PAD:
        raise ValueError(f"unknown padding mode {mode!r}; use one of {sorted(_TORCH_PAD)}")
    return F.pad(x, (left, right, top, bottom), mode=_TORCH_PAD[mode])


def _pad_symmetric(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    h, w = x.shape[-2:]

    def index(n: int, before: int, after: int) -> torch.Tensor:
        i = torch.arange(-before, n + after, device=x.device)
        period = 2 * n
        i = torch.remainder(i, period)
        return torch.where(i >= n, period - 1 - i, i)

    if top or bottom:
        x = x.index_select(-2, index(h, top, bottom))
    if left or right:
        x = x.index_select(-1, index(w, left, right))
    return x


def _depthwise(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = k.to(dtype=x.dtype, device=x.device)
    return F.conv2d(x, k.expand(c, 1, *k.shape[-2:]).contiguous(), groups=c)


def imfilter(x: torch.Tensor, kernel: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
             padding: str = "zeros", shape: str = "same") -> torch.Tensor:
    """MATLAB imfilter / filter2: correlation of every channel with ``kernel``.

    ``kernel`` is a 2-D tensor, or a pair (column vector, row vector) of 1-D tensors for a separable
    filter. ``shape`` is 'same' (output size of the input, padded with ``padding``), 'valid' (no
    padding, border dropped) or 'full'.
    """
    if isinstance(kernel, tuple):
        kc, kr = kernel
        kh, kw = kc.numel(), kr.numel()
    else:
        kh, kw = kernel.shape[-2:]
    if shape == "same":
        # MATLAB centres the kernel at floor((size + 1) / 2) (1-based): for even sizes more padding goes after.
        t, l = (kh - 1) // 2, (kw - 1) // 2
        x = pad(x, t, kh - 1 - t, l, kw - 1 - l, padding)
    elif shape == "full":
        x = pad(x, kh - 1, kh - 1, kw - 1, kw - 1, padding)
    elif shape != "valid":
        raise ValueError(f"shape must be 'same', 'valid' or 'full', got {shape!r}")
    if isinstance(kernel, tuple):
        x = _depthwise(x, kc.reshape(1, 1, kh, 1))
        return _depthwise(x, kr.reshape(1, 1, 1, kw))
    return _depthwise(x, kernel.reshape(1, 1, kh, kw))


def conv2(x: torch.Tensor, kernel: torch.Tensor, shape: str = "full") -> torch.Tensor:
    """MATLAB conv2 (true convolution, zero padding); 'same' keeps the central part of 'full'."""
    flipped = torch.flip(kernel, (-2, -1))
    if shape != "same":
        return imfilter(x, flipped, "zeros", shape)
    kh, kw = kernel.shape[-2:]
    h, w = x.shape[-2:]
    full = imfilter(x, flipped, "zeros", "full")
    return full[..., kh // 2: kh // 2 + h, kw // 2: kw // 2 + w]
