"""SqueezeNet 1.1, torchvision's layout of squeezenet1_1-b8a52dc0.pth.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
arXiv 1602.07360; version 1.1 from https://github.com/forresti/SqueezeNet/tree/master/SqueezeNet_v1.1
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._staged import Staged


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], 1)


class SqueezeNet11(Staged):
    """``features`` 0-12 (conv, relu, pool, fire x2, pool, fire x2, pool, fire x4) and ``classifier.1``.

    ``stages(x)`` returns the seven taps LPIPS uses (after features 1, 4, 7, 9, 10, 11, 12)."""

    stage_ends = (2, 5, 8, 10, 11, 12, 13)

    def __init__(self, num_classes: int = 1000, include_top: bool = True):
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(), pool(),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.include_top = include_top
        if include_top:
            self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                            nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.include_top:
            return x
        return torch.flatten(self.classifier(x), 1)
