"""VGG16 (configuration D, no batch norm), torchvision's layout of vgg16-397923af.pth.

Simonyan and Zisserman, "Very deep convolutional networks for large-scale image recognition", ICLR 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from ._staged import Staged

_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(Staged):
    """``features`` indices 0-30 as in torchvision (conv at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28;
    max-pooling at 4, 9, 16, 23, 30), ``classifier`` linear layers at 0, 3, 6.

    ``stages(x)`` returns relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (LPIPS's and DISTS's taps)."""

    stage_ends = (4, 9, 16, 23, 30)
    pool_indices = (4, 9, 16, 23, 30)

    def __init__(self, num_classes: int = 1000, include_top: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.include_top:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))
