"""Building blocks that several of the challenge's models share, in plain torch.

``deform_conv2d`` / :class:`DeformConv2d`: deformable convolution (Dai et al., "Deformable Convolutional
Networks", ICCV 2017; the modulated form of Zhu et al., "Deformable ConvNets v2", CVPR 2019), as RADN and
AHIQ use it. Each kernel tap samples the input at its regular position plus a learned offset, with bilinear
interpolation and zeros outside the image, optionally scaled by a mask. The tensor layouts are those of
``torchvision.ops.deform_conv2d`` (offsets ``(N, 2 * offset_groups * kh * kw, Ho, Wo)`` as ``(dy, dx)`` pairs
per tap, row-major over the kernel; masks ``(N, offset_groups * kh * kw, Ho, Wo)``), so its parameters and a
model's offset branches load unchanged. The sampling is one ``grid_sample`` over all taps (its own backward
for the input and the offsets), then one matrix product with the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deformable 2-D convolution (see the module docstring); ``groups`` follow from ``weight``'s shape
    (``C_in / weight.shape[1]``) and offset groups from ``offset``'s channels."""
    n, c, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    taps = kh * kw
    if c % c_per_group or c_out % (c // c_per_group):
        raise InputError(f"deform_conv2d: weight {tuple(weight.shape)} does not divide the input's {c} channels "
                         "into groups.")
    groups = c // c_per_group
    if offset.shape[1] % (2 * taps) or c % (offset.shape[1] // (2 * taps)):
        raise InputError(f"deform_conv2d: offset has {offset.shape[1]} channels; it needs 2 * offset_groups * "
                         f"{taps} with offset_groups dividing the {c} input channels.")
    og = offset.shape[1] // (2 * taps)
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if offset.shape[-2:] != (ho, wo) or offset.shape[0] != n:
        raise InputError(f"deform_conv2d: offset {tuple(offset.shape)} does not match the output "
                         f"(N={n}, {ho}x{wo}).")
    dev, dt = x.device, x.dtype
    base_y = (torch.arange(ho, device=dev, dtype=dt) * sh - ph)[None, :, None] \
        + (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw)[:, None, None]  # (K, Ho, 1)
    base_x = (torch.arange(wo, device=dev, dtype=dt) * sw - pw)[None, None, :] \
        + (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh)[:, None, None]  # (K, 1, Wo)
    off = offset.view(n, og, taps, 2, ho, wo)
    py, px = base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]  # (N, G, K, Ho, Wo), in pixels
    # one bilinear sampling of every tap (zeros outside the image): grid_sample's pixel centres are at
    # (2 i + 1) / size - 1 with align_corners=False, valid for any size (1 included)
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).reshape(n * og, taps * ho, wo, 2)
    sampled = F.grid_sample(x.reshape(n * og, c // og, h, w), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False).view(n, og, c // og, taps, ho, wo)
    if mask is not None:
        sampled = sampled * mask.view(n, og, 1, taps, ho, wo)
    cols = sampled.reshape(n, c, taps, ho * wo)
    cols = cols.view(n, groups, c_per_group * taps, ho * wo)  # channel-major, then tap: weight's flattening
    out = torch.einsum("ngkp,gok->ngop", cols, weight.reshape(groups, c_out // groups, c_per_group * taps))
    out = out.reshape(n, c_out, ho, wo)
    return out + bias.view(1, -1, 1, 1) if bias is not None else out


class DeformConv2d(nn.Module):
    """A deformable convolution layer: ``layer(x, offset, mask=None)``; parameters ``weight`` and ``bias`` as
    ``torchvision.ops.DeformConv2d`` names and initialises them."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise InputError(f"DeformConv2d: groups={groups} must divide {in_channels} and {out_channels} channels.")
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        kh, kw = _pair(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask)
