"""asna: MACS's Siamese-difference network (NTIRE 2021 Perceptual IQA, rank 9), with its attention head.

Team MACS (Ayyoubzadeh, Royat) in Gu et al., "NTIRE 2021 Challenge on Perceptual Image Quality Assessment",
CVPR-W 2021, Section 5.8 (PIPAL test: SRCC 0.7522, PLCC 0.7194, main score 1.4717), detailed in
Ayyoubzadeh and Royat, "(ASNA) An Attention-based Siamese-Difference Neural Network with Surrogate Ranking
Loss function for Perceptual Image Quality Assessment", CVPR-W 2021 (arXiv 2105.02531). The team's code:
https://github.com/smehdia/NTIRE2021-IQA-MACS (TensorFlow 2 / Keras, Apache-2.0): ``model_simple.py``,
``model_bn.py``, ``model_attention.py``, ``configs/*.txt``, ``metrics_losses/metrics_and_losses.py``. This file
is written from the report, the paper's description and a reading of that code; none of it is copied.

Architecture (Keras layer by layer, in torch):

- both images, scaled to [-1, 1] (``(x - 127.5) / 127.5`` on 0-255 values), go through one shared encoder: a
  linear k1 x k1 convolution to 3 channels, then four levels ``y1..y4`` (a k_i x k_i convolution to
  ``widths[0..3]`` channels, LeakyReLU with slope ``slope``, batch norm after it in the ``bn`` and
  ``attention`` variants; 2x2 max pooling before levels 2-4);
- the decoder is not symmetric: it starts from one image's deepest level only (max pooling, a 3x3 convolution
  to ``widths[4]``), and at each of the four levels upsamples by 2 (nearest) and concatenates the absolute
  difference ``|y_i(a) - y_i(b)|`` of the two encodings (the Siamese-difference skip connections) before a
  3x3 convolution (``widths[5..7]``, then the next level); after the last concatenation, 3x3 convolutions
  with stride 4 and 2 (TensorFlow's "same" padding) bring it to 1/8 of the input side;
- ``attention`` variant (ASNA): a channel-and-spatial attention block (a 3x3 convolution with ReLU, batch
  norm, a 3x3 convolution; channel gates from its global mean through two 1x1 convolutions (ReLU,
  sigmoid); spatial gates from two 1x1 convolutions on the map; the input, both gated maps concatenated and
  mixed by a 1x1 convolution to ``widths[8]`` channels), then 3 residual blocks (3x3 conv + ReLU, 3x3 conv,
  added);
- the map is flattened (Keras's height, width, channel order) into a dense layer of ``dense`` ReLU units,
  dropout, one unit with tanh (attention) or sigmoid (simple, bn), and a final one-unit dense layer.

The report's third network (72x72 tiles through a ConvLSTM) is not built; the team averaged the three
networks' scores (``iqarena ensemble average`` does that for trained checkpoints). The surrogate rank loss
is the ``sodeep`` loss (iqarena.models.sodeep).

Choices where the description leaves one:

- **Which image feeds the decoder.** The team's PIPAL arrays store (distorted, reference) and train with
  the second input, the reference, feeding the decoder; their pre-training arrays (PieAPP, TID) and their
  evaluation scripts pass (reference, distorted), the distorted image feeding it. ``bottleneck="ref"``
  (default) follows their PIPAL training; ``"dist"`` the other order.
- **Input size.** The dense layer reads a fixed map: the network scores ``size`` x ``size`` inputs (288:
  PIPAL's images and the team's crops/pads of PieAPP and TID). Other sizes are an InputError that says to
  set ``test_crop`` to ``size`` (crops averaged, as any iqarena model's test crops) or to train another
  ``size`` (a multiple of 16).
- **Colour order.** The team reads images with OpenCV (BGR); the channels here are RGB (a learned first
  convolution, trained from scratch, makes the order immaterial; a port of their weights would flip it).
- **Batch norm** trains (``frozen_batchnorm = False``), as in Keras (momentum 0.99 -> torch 0.01, epsilon 1e-3).
- **Test-time augmentation.** The team averaged 22 views (4 rotations, 3 flips, 15 intensity scalings);
  that is not part of the model here (iqarena's test crops are).

The small setting of the CPU learning check keeps every part and shrinks the widths and the input
(``widths=(4, 8, 8, 8, 8, 8, 8, 4, 4, 8), dense=16, size=48``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..metrics.registry import register
from . import sodeep  # noqa: F401  (registers the ``sodeep`` loss the recipe trains with)
from .base import IQAModel, check_pair, load_trained

WIDTHS = (8, 16, 32, 64, 64, 64, 32, 16, 8, 32)  # configs_attention.txt: nfs
KERNELS = (5, 5, 3, 3)  # kss
VARIANTS = {  # batch norm in encoder/decoder, after the strided convolutions, attention block, residual blocks, squash
    "simple": (False, False, False, 0, "sigmoid"),  # model_simple.py
    "bn": (True, False, False, 0, "sigmoid"),  # model_bn.py
    "attention": (True, True, True, 3, "tanh"),  # model_attention.py (ASNA)
}


def tf_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero padding of TensorFlow's ``padding="same"`` for a strided convolution: output ceil(n / stride), the
    odd pixel of padding on the right/bottom."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _Unit(nn.Module):
    """Convolution ("same"), LeakyReLU, optional batch norm after it (the team's order)."""

    def __init__(self, c_in: int, c_out: int, k: int, slope: float, norm: bool, stride: int = 1):
        super().__init__()
        self.k, self.stride = k, stride
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2 if stride == 1 else 0)
        self.act = nn.LeakyReLU(slope)
        self.norm = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = tf_same(x, self.k, self.stride)
        return self.norm(self.act(self.conv(x)))


class Encoder(nn.Module):
    """The shared encoder: (N, 3, H, W) in [-1, 1] -> [y1 (H), y2 (H/2), y3 (H/4), y4 (H/8)]."""

    def __init__(self, widths, kernels, slope: float, norm: bool):
        super().__init__()
        self.first = nn.Conv2d(3, 3, kernels[0], padding=kernels[0] // 2)
        before = 3
        self.levels = nn.ModuleList()
        for c, k in zip(widths[:4], kernels):
            self.levels.append(_Unit(before, c, k, slope, norm))
            before = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, y = [], self.first(x)
        for i, level in enumerate(self.levels):
            y = level(F.max_pool2d(y, 2) if i else y)
            out.append(y)
        return out


class Attention(nn.Module):
    """model_attention.py's block: channel and spatial gates on a convolved map, mixed with the input."""

    def __init__(self, c_in: int, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, padding=1)
        self.norm = nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.channel = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, c, 1), nn.Sigmoid())
        self.spatial = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, c, 1), nn.Sigmoid())
        self.mix = nn.Conv2d(c_in + 2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.norm(F.relu(self.conv1(x))))
        by_channel = h * self.channel(h.mean(dim=(2, 3), keepdim=True))
        by_position = h * self.spatial(h)
        return self.mix(torch.cat([x, by_channel, by_position], dim=1))


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _flat_side(size: int) -> int:
    return math.ceil(math.ceil(size / 4) / 2)


@register("asna", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=(), trained=False, aliases=("macs", "sidis"),
          paper="Ayyoubzadeh & Royat, (ASNA) An Attention-based Siamese-Difference Neural Network with Surrogate "
                "Ranking Loss function for Perceptual IQA, CVPR-W 2021 (NTIRE 2021 team MACS, rank 9)",
          code="https://github.com/smehdia/NTIRE2021-IQA-MACS (TensorFlow, Apache-2.0); "
               "src/iqarena/models/asna.py",
          colour="RGB (the team's OpenCV BGR order is not kept); grey repeated to three channels",
          min_size=lambda o: int(o.get("size", 288)),
          size_note="the dense head reads a size x size input (option size, 288); larger images: test_crop = size")
class ASNA(IQAModel):
    """MACS's Siamese-difference network (see the module docstring); higher is better."""

    kind = "fr"
    frozen_batchnorm = False  # the team trains batch norm from scratch

    def __init__(self, trained: bool | str = False, variant: str = "attention", widths=WIDTHS, kernels=KERNELS,
                 dense: int = 32, slope: float = 0.5, dropout: float = 0.0, size: int = 288,
                 bottleneck: str = "ref", test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if variant not in VARIANTS:
            raise InputError(f"asna variant must be one of {', '.join(VARIANTS)}, got {variant!r}.", option="variant")
        if bottleneck not in ("ref", "dist"):
            raise InputError(f"bottleneck must be 'ref' or 'dist', got {bottleneck!r}.", option="bottleneck")
        widths, kernels = tuple(int(w) for w in widths), tuple(int(k) for k in kernels)
        if len(widths) != 10 or len(kernels) != 4 or min(widths + kernels) < 1:
            raise InputError(f"asna needs 10 widths and 4 kernel sizes >= 1, got {widths} and {kernels}.")
        if int(size) < 16 or int(size) % 16:
            raise InputError(f"asna's size must be a multiple of 16 (four poolings and the decoder's), got {size}.",
                             option="size")
        norm, strided_norm, attention, resblocks, squash = VARIANTS[variant]
        self.variant, self.size, self.bottleneck = variant, int(size), bottleneck
        self.encoder = Encoder(widths, kernels, slope, norm)
        self.enter = _Unit(widths[3], widths[4], 3, slope, norm)
        self.up = nn.ModuleList([_Unit(widths[4] + widths[3], widths[5], 3, slope, norm),
                                 _Unit(widths[5] + widths[2], widths[6], 3, slope, norm),
                                 _Unit(widths[6] + widths[1], widths[7], 3, slope, norm)])
        first = widths[9] if attention else widths[8]
        self.down = nn.Sequential(_Unit(widths[7] + widths[0], first, 3, slope, strided_norm, stride=4),
                                  _Unit(first, widths[9], 3, slope, strided_norm, stride=2))
        self.attention = Attention(widths[9], widths[8]) if attention else nn.Identity()
        mid = widths[8] if attention else widths[9]
        self.residual = nn.Sequential(*[Residual(mid) for _ in range(resblocks)])
        self.head = nn.Sequential(nn.Linear(mid * _flat_side(self.size) ** 2, dense), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(dense, 1), nn.Tanh() if squash == "tanh" else nn.Sigmoid(),
                                  nn.Linear(1, 1))
        if trained:
            load_trained(self, Path(trained))

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("asna", dist, ref)
        h, w = dist.shape[-2:]
        if (h, w) != (self.size, self.size) or ref.shape[-2:] != dist.shape[-2:]:
            raise InputError(f"asna's dense head reads {self.size}x{self.size} inputs, got {w}x{h} (reference "
                             f"{ref.shape[-1]}x{ref.shape[-2]}); set test_crop = {self.size} to average crops of larger "
                             "images, or train with another size (a multiple of 16).", option="size")
        n = dist.shape[0]
        both = torch.cat([dist, ref]).expand(-1, 3, -1, -1) * 2 - 1
        levels = self.encoder(both)
        diffs = [(y[:n] - y[n:]).abs() for y in levels]
        deepest = levels[3][n:] if self.bottleneck == "ref" else levels[3][:n]
        x = self.enter(F.max_pool2d(deepest, 2))
        for unit, skip in zip(self.up, diffs[:0:-1]):  # levels 4, 3, 2
            x = unit(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip], dim=1))
        x = torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), diffs[0]], dim=1)
        x = self.residual(self.attention(self.down(x)))
        raw = self.head(x.permute(0, 2, 3, 1).flatten(1)).squeeze(1)  # Keras's (H, W, C) flattening order
        return self.unstandardise(raw)
