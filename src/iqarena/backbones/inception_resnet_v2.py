"""Inception-ResNet-v2, the layout of Cadene's ``pretrainedmodels`` checkpoint inceptionresnetv2-520b38e4.pth
(timm's ``inception_resnet_v2`` has the same names with ``classif`` for ``last_linear``: load it with
``load_weights(net, sd, rename={"classif.": "last_linear."})``).

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the impact of residual connections
on learning", AAAI 2017. Inputs are RGB in [-1, 1] (mean 0.5, std 0.5 after scaling to [0, 1]).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Conv(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU: keys ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, k, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _seq(*mods: nn.Module) -> nn.Sequential:
    return nn.Sequential(*mods)


class Mixed5b(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = Conv(192, 96, 1)
        self.branch1 = _seq(Conv(192, 48, 1), Conv(48, 64, 5, padding=2))
        self.branch2 = _seq(Conv(192, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1))
        self.branch3 = _seq(nn.AvgPool2d(3, 1, 1, count_include_pad=False), Conv(192, 64, 1))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Block35(nn.Module):
    def __init__(self, scale: float = 0.17):
        super().__init__()
        self.scale = scale
        self.branch0 = Conv(320, 32, 1)
        self.branch1 = _seq(Conv(320, 32, 1), Conv(32, 32, 3, padding=1))
        self.branch2 = _seq(Conv(320, 32, 1), Conv(32, 48, 3, padding=1), Conv(48, 64, 3, padding=1))
        self.conv2d = nn.Conv2d(128, 320, 1)

    def forward(self, x):
        y = self.conv2d(torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1))
        return F.relu(x + self.scale * y)


class Mixed6a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = Conv(320, 384, 3, stride=2)
        self.branch1 = _seq(Conv(320, 256, 1), Conv(256, 256, 3, padding=1), Conv(256, 384, 3, stride=2))
        self.branch2 = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Block17(nn.Module):
    def __init__(self, scale: float = 0.10):
        super().__init__()
        self.scale = scale
        self.branch0 = Conv(1088, 192, 1)
        self.branch1 = _seq(Conv(1088, 128, 1), Conv(128, 160, (1, 7), padding=(0, 3)),
                            Conv(160, 192, (7, 1), padding=(3, 0)))
        self.conv2d = nn.Conv2d(384, 1088, 1)

    def forward(self, x):
        return F.relu(x + self.scale * self.conv2d(torch.cat([self.branch0(x), self.branch1(x)], 1)))


class Mixed7a(nn.Module):
    def __init__(self):
        super().__init__()
        self.branch0 = _seq(Conv(1088, 256, 1), Conv(256, 384, 3, stride=2))
        self.branch1 = _seq(Conv(1088, 256, 1), Conv(256, 288, 3, stride=2))
        self.branch2 = _seq(Conv(1088, 256, 1), Conv(256, 288, 3, padding=1), Conv(288, 320, 3, stride=2))
        self.branch3 = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Block8(nn.Module):
    def __init__(self, scale: float = 0.20, relu: bool = True):
        super().__init__()
        self.scale, self.relu = scale, relu
        self.branch0 = Conv(2080, 192, 1)
        self.branch1 = _seq(Conv(2080, 192, 1), Conv(192, 224, (1, 3), padding=(0, 1)),
                            Conv(224, 256, (3, 1), padding=(1, 0)))
        self.conv2d = nn.Conv2d(448, 2080, 1)

    def forward(self, x):
        y = x + self.scale * self.conv2d(torch.cat([self.branch0(x), self.branch1(x)], 1))
        return F.relu(y) if self.relu else y


STEM = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "maxpool_5a")


def add_stem(net: nn.Module) -> None:
    """The layers before mixed_5b, as attributes of ``net`` under Cadene's top-level names (``STEM``), and
    mixed_5b: the start of the network and of any part of it (IQT builds only the 35x35 grid)."""
    net.conv2d_1a = Conv(3, 32, 3, stride=2)
    net.conv2d_2a = Conv(32, 32, 3)
    net.conv2d_2b = Conv(32, 64, 3, padding=1)
    net.maxpool_3a = nn.MaxPool2d(3, 2)
    net.conv2d_3b = Conv(64, 80, 1)
    net.conv2d_4a = Conv(80, 192, 3)
    net.maxpool_5a = nn.MaxPool2d(3, 2)
    net.mixed_5b = Mixed5b()


def stem_mixed_5b(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """mixed_5b's output of a network built with ``add_stem``."""
    for name in STEM:
        x = getattr(net, name)(x)
    return net.mixed_5b(x)


class InceptionResNetV2(nn.Module):
    """Stem, 10 x Block35, Mixed6a, 20 x Block17, Mixed7a, 9 x Block8, Block8 without ReLU, 1x1 conv to 1536.

    ``stages(x)`` returns the outputs of mixed_5b, repeat (35x35 grid), repeat_1 (17x17), repeat_2 and
    conv2d_7b (8x8), the taps learned IQA models (e.g. AHIQ, IQT) read."""

    def __init__(self, num_classes: int = 1000, include_top: bool = True):
        super().__init__()
        add_stem(self)
        self.repeat = _seq(*[Block35(0.17) for _ in range(10)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = _seq(*[Block17(0.10) for _ in range(20)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = _seq(*[Block8(0.20) for _ in range(9)])
        self.block8 = Block8(1.0, relu=False)
        self.conv2d_7b = Conv(2080, 1536, 1)
        self.include_top = include_top
        if include_top:
            self.last_linear = nn.Linear(1536, num_classes)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [stem_mixed_5b(self, x)]
        out.append(self.repeat(out[-1]))
        out.append(self.repeat_1(self.mixed_6a(out[-1])))
        out.append(self.repeat_2(self.mixed_7a(out[-1])))
        out.append(self.conv2d_7b(self.block8(out[-1])))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x)[-1]
        if not self.include_top:
            return x
        return self.last_linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
