"""MATLAB-style filtering on (N, C, H, W) tensors: fspecial kernels, imfilter/filter2 with padding modes.

``imfilter`` correlates (no kernel flip) and pads with zeros unless told 'symmetric' or 'replicate';
``conv2`` flips the kernel; ``filter2(..., 'valid')`` drops the border. Kernels are applied per
channel (depthwise). A separable kernel given as (column, row) vectors runs as two 1-D passes.
"""

from __future__ import annotations

from typing import Callable

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


def row_blocks(total: int, per_row: int, budget: int, least: int = 1):
    """(start, stop) ranges covering ``total`` rows, each about ``budget`` elements (``per_row`` per row) and
    at least ``least`` rows: the one way the metrics work through a large image a block of rows at a time."""
    step = max(least, budget // max(per_row, 1))
    return ((r, min(total, r + step)) for r in range(0, total, step))


def block_mean(x: torch.Tensor, f: int, before: int, padding: str = "zeros",
               pointwise: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Means of the f x f blocks starting every f pixels at (-before, -before), ceil(H / f) x ceil(W / f) of
    them: an f x f box filter with ``padding`` ('zeros' or 'symmetric', ``before`` samples before and
    f - 1 - before after) sampled every f-th pixel, as one strided mean.

    ``pointwise``: a per-pixel function of (N, C, h, W) rows (a colour conversion) applied before the means,
    a few rows of blocks at a time, so that its full-size result is never made. Rows then columns are
    summed as views (the inner blocks reshaped, at most one edge block per side gathered): no padded copy
    of the image, whose fresh pages cost more than the sums at 4K."""
    if f == 1:
        return x if pointwise is None else pointwise(x)
    if padding not in ("zeros", "symmetric"):
        raise ValueError(f"block_mean pads with 'zeros' or 'symmetric', got {padding!r}")
    rows = _block_sums(x, f, before, -2, padding, pointwise or (lambda t: t))
    return _block_sums(rows, f, before, -1, padding, lambda t: t) / (f * f)


#: input elements per call of block_mean's pointwise function
_POINTWISE_BLOCK = 1 << 20


def _block_sums(x: torch.Tensor, f: int, before: int, dim: int, padding: str, pointwise) -> torch.Tensor:
    n = x.shape[dim]
    count = -(-n // f)
    first = min(count, -(-before // f))  # blocks 0 .. first - 1 start before the edge
    last = max(first, min(count, (n + before) // f))  # blocks first .. last - 1 lie inside
    parts = [pointwise(_edge_rows(x, i * f - before, f, dim, padding)).sum(dim, keepdim=True) for i in range(first)]
    for i, j in row_blocks(last - first, x.numel() // max(n, 1) * f, _POINTWISE_BLOCK):  # blocks per call
        inner = pointwise(x.narrow(dim, (first + i) * f - before, (j - i) * f))
        parts.append(inner.unflatten(dim, (j - i, f)).sum(dim))
    parts += [pointwise(_edge_rows(x, i * f - before, f, dim, padding)).sum(dim, keepdim=True)
              for i in range(last, count)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


def _edge_rows(x: torch.Tensor, start: int, f: int, dim: int, padding: str) -> torch.Tensor:
    """The samples of the edge block start .. start + f - 1 along ``dim``: the in-range ones ('zeros': the
    padding adds nothing to a sum) or all f, mirrored ('symmetric': MATLAB repeats the edge sample)."""
    n = x.shape[dim]
    if padding == "zeros":
        lo, hi = max(start, 0), min(start + f, n)
        return x.narrow(dim, lo, hi - lo)
    i = torch.remainder(torch.arange(start, start + f, device=x.device), 2 * n)
    return x.index_select(dim, torch.where(i >= n, 2 * n - 1 - i, i))


def _depthwise(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = k.to(dtype=x.dtype, device=x.device)
    return conv_rows(x, k.expand(c, 1, *k.shape[-2:]).contiguous())


#: im2col elements per block of output rows in conv_rows (16 MB in float32)
_CONV_BLOCK = 1 << 22


def conv_rows(xp: torch.Tensor, weight: torch.Tensor, step: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """'valid' F.conv2d(xp, weight, stride=step) (grouped: depthwise for a weight of one input channel), a
    block of output rows at a time into one output tensor.

    oneDNN's convolution of a whole large image holds a workspace of about (filter taps) x (pixels): 1.3 GB
    for the 9 x 9 filters of a 4K pair's pyramid, and costs 50-60 ms at 1080p for any kernel; in blocks of
    rows it stays near _CONV_BLOCK elements and runs 2-3 times faster. With autograd, one call."""
    kh, kw = weight.shape[-2:]
    rows = (xp.shape[-2] - kh) // step[0] + 1
    groups = xp.shape[1] // weight.shape[1]
    per_row = xp.shape[0] * weight.shape[0] * xp.shape[-1] * kh * kw // step[1]
    if rows * per_row <= _CONV_BLOCK or torch.is_grad_enabled() and xp.requires_grad:
        return F.conv2d(xp, weight, stride=step, groups=groups)
    out = None
    for r0, r1 in row_blocks(rows, per_row, _CONV_BLOCK):
        part = F.conv2d(xp[..., r0 * step[0]:(r1 - 1) * step[0] + kh, :], weight, stride=step, groups=groups)
        if out is None:
            out = part.new_empty(*part.shape[:-2], rows, part.shape[-1])
        out[..., r0:r1, :] = part
    return out


#: kernels with at most this many non-zero taps run as shifted products (below); larger ones as convolutions.
#: Measured on one plane: a 17-tap column 0.6 ms shifted vs 0.9 convolved at 512x384, 6.8 vs 68 ms at 1080p;
#: a 7 x 7 kernel (49 taps) is faster convolved at 512x384.
SHIFTED_TAPS = 32


def shifted_sum(xp: torch.Tensor, kernel: torch.Tensor, step: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """'valid' correlation of every channel of ``xp`` with a 2-D ``kernel``, sampled every ``step`` pixels:
    the shifted (strided) planes times their weights, summed in row-major tap order, zero taps skipped.

    That is the order of a float64 ``conv2d`` (the same bits: calibrated float64 values do not move), and
    two to six times less CPU than oneDNN's float32 depthwise or few-channel convolutions, which reorder
    the planes first; a step computes only the kept samples."""
    kh, kw = kernel.shape
    sh, sw = step
    h, w = (xp.shape[-2] - kh) // sh + 1, (xp.shape[-1] - kw) // sw + 1
    taps = [(a, b, v) for (a, b), v in zip(((a, b) for a in range(kh) for b in range(kw)),
                                             kernel.to(xp.dtype).flatten().tolist()) if v != 0]
    if not taps:
        return xp.new_zeros(*xp.shape[:-2], h, w)

    def plane(a: int, b: int) -> torch.Tensor:
        return xp[..., a:a + sh * (h - 1) + 1:sh, b:b + sw * (w - 1) + 1:sw]

    a, b, v = taps[0]
    acc = plane(a, b) * v
    if torch.is_grad_enabled() and xp.requires_grad:
        for a, b, v in taps[1:]:
            acc = acc + plane(a, b) * v
        return acc
    tmp = torch.empty_like(acc)
    for a, b, v in taps[1:]:
        acc += torch.mul(plane(a, b), v, out=tmp)
    return acc


def _correlate(xp: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'valid' per-channel correlation: shifted products for small kernels, a depthwise convolution else."""
    if int((kernel != 0).sum()) <= SHIFTED_TAPS:
        return shifted_sum(xp, kernel)
    return _depthwise(xp, kernel.reshape(1, 1, *kernel.shape[-2:]))


def correlate_small(x: torch.Tensor, kernel) -> torch.Tensor:
    """Zero-padded 'same' correlation of every channel with an odd-sized kernel given as rows of floats."""
    k = torch.tensor(kernel, dtype=torch.float64)
    kh, kw = k.shape
    return _correlate(F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2)), k)


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
        return _correlate(_correlate(x, kc.reshape(kh, 1)), kr.reshape(1, kw))
    return _correlate(x, kernel.reshape(kh, kw))


def conv2(x: torch.Tensor, kernel: torch.Tensor, shape: str = "full") -> torch.Tensor:
    """MATLAB conv2 (true convolution, zero padding); 'same' keeps the central part of 'full'."""
    flipped = torch.flip(kernel, (-2, -1))
    if shape != "same":
        return imfilter(x, flipped, "zeros", shape)
    kh, kw = kernel.shape[-2:]
    h, w = x.shape[-2:]
    full = imfilter(x, flipped, "zeros", "full")
    return full[..., kh // 2: kh // 2 + h, kw // 2: kw // 2 + w]
