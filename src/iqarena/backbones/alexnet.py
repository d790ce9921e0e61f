"""AlexNet ("One weird trick" variant, as in torchvision's ImageNet checkpoint alexnet-owt-7be5be79.pth).

Krizhevsky, "One weird trick for parallelizing convolutional neural networks", arXiv 1404.5997, 2014.
"""

from __future__ import annotations

import torch
from torch import nn

from ._staged import Staged

# (in, out, kernel, stride, padding) of the five convolutions; max-pooling after the 1st, 2nd and 5th.
_CONVS = [(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]


class AlexNet(Staged):
    """``features`` (indices 0-12) and ``classifier`` (1, 4, 6 are the linear layers), torchvision's names.

    ``stages(x)`` returns the outputs of the five ReLUs (relu1..relu5, as LPIPS uses them)."""

    #: feature indices closing each stage (after relu1 .. relu5)
    stage_ends = (2, 5, 8, 10, 12)

    def __init__(self, num_classes: int = 1000, include_top: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout, k, s, p) in enumerate(_CONVS):
            layers += [nn.Conv2d(cin, cout, k, s, p), nn.ReLU(inplace=False)]
            if i in (0, 1, 4):
                layers.append(nn.MaxPool2d(3, 2))
        self.features = nn.Sequential(*layers)
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.include_top:
            return x
        return self.classifier(torch.flatten(self.avgpool(x), 1))
