"""The real steerable pyramid built in the Fourier domain: matlabPyrTools ``buildSFpyr`` on (N, C, H, W) tensors.

``buildSFpyr(im, height, order, twidth)`` (buildSFpyr.m, buildSFpyrLevs.m, rcosFn.m, pointOp.c): a high-pass
residual, ``height`` levels of ``order + 1`` oriented bands (level 1 at full size, each next level at
ceil((size - 0.5) / 2)) and a low-pass residual. Unlike ``buildSCFpyr`` (:func:`iqarena.ops.pyramid.scf_bands`)
the angular masks are not halved, so the bands are real. The masks are built in float64 once per image size
and cached; the transforms run in complex128 for float64 input (complex64 otherwise).
"""

from __future__ import annotations

import functools
import math

import torch

from ..errors import InputError
from .pyramid import _point_op, angle_table, half_crop, polar_grid


@functools.lru_cache(maxsize=16)
def _sf_masks(h: int, w: int, height: int, order: int, twidth: float):
    """(hi0 mask, lo0 mask, per level: (band masks (nb, h_l, w_l), crop (top, left, h, w) of the spectrum for
    the next level, low-pass mask applied after the crop)), all float64 on the CPU."""
    nb = order + 1
    angle, log_rad, yrc, yirc, x0, inc = polar_grid(h, w, twidth)
    lo0 = _point_op(log_rad, yirc, x0, inc)
    hi0 = _point_op(log_rad, yrc, x0, inc)
    ycosn, a0, xinc = angle_table(order, halved=False)

    levels = []
    dh, dw = h, w
    for _ in range(height):
        x0 -= 1.0  # Xrcos shifted one octave per level
        himask = _point_op(log_rad, yrc, x0, inc)
        bands = torch.stack([_point_op(angle, ycosn, a0 + math.pi * b / nb, xinc) * himask for b in range(nb)])
        sh, sw, lh, lw = half_crop(dh, dw)
        log_rad = log_rad[sh: sh + lh, sw: sw + lw]
        angle = angle[sh: sh + lh, sw: sw + lw]
        lomask = _point_op(log_rad, yirc, x0, inc)
        levels.append((bands, (sh, sw, lh, lw), lomask))
        dh, dw = lh, lw
    return hi0, lo0, tuple(levels)


def build_sf_pyr(x: torch.Tensor, height: int, order: int = 3, twidth: float = 1.0):
    """buildSFpyr(x, height, order, twidth) for (N, C, H, W) real ``x``.

    Returns ``(hi0, bands, low)``: the high-pass residual (N, C, H, W), a list of ``height`` tensors
    (N, C, order + 1, H_l, W_l) of oriented bands (level 1 first, orientations in buildSFpyr's order), and the
    low-pass residual.
    """
    h, w = x.shape[-2:]
    max_ht = math.floor(math.log2(min(h, w))) - 2
    if height > max_ht:
        raise InputError(f"a {height}-level steerable pyramid needs a larger image than {h}x{w} "
                         f"(at most {max_ht} levels fit).")
    hi0m, lo0m, levels = _sf_masks(h, w, height, order, float(twidth))
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    rdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    dev = x.device
    spec = torch.fft.fftshift(torch.fft.fft2(x.to(rdtype)), dim=(-2, -1))
    hi0 = _ifft_real(spec * hi0m.to(dtype=rdtype, device=dev))
    lo = spec * lo0m.to(dtype=rdtype, device=dev)
    rot = (-1j) ** order
    out = []
    for bands, (sh, sw, lh, lw), lomask in levels:
        masks = (rot * bands.to(torch.complex128)).to(dtype=cdtype, device=dev)
        out.append(_ifft_real(lo.unsqueeze(-3) * masks))
        lo = lo[..., sh: sh + lh, sw: sw + lw] * lomask.to(dtype=rdtype, device=dev)
    return hi0, out, _ifft_real(lo)


def _ifft_real(s: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.fft.ifftshift(s, dim=(-2, -1))).real
