"""iqarena_fr: a full-reference model on the ImageNet EfficientNet-Lite0 trunk, in the manner of IQT.

Architecture: the shared trunk maps the distorted and the reference image; at the last four stages
(strides 16, 16, 32, 32) and the head's map, the features of the distorted image, of the reference and
their difference (reference - distorted) are concatenated and projected by a 1x1 convolution; a
learned attention (one 1x1 convolution, softmax over positions) pools each projected map to a vector;
a two-layer head maps the concatenated vectors to a score. As IQT, quality is read from where the
difference features say the damage is, weighted by content.

No human full-reference scores can be had here: docs/learning.md trains it on a synthetic set
(`iqarena synth`) and says how to train it on PIPAL.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..metrics.registry import register
from .base import IQAModel, load_trained
from .trunk import TRUNK_SIZE_NOTE, TRUNK_STRIDE, pyramid, trunk, width

LEVELS = (3, 4, 5, 6, 7)  # stage outputs 80, 112, 192, 320 channels and the head's 1280


class AttentionPool(nn.Module):
    """(N, C, H, W) -> (N, C): a softmax over positions of a learned 1x1 convolution weights the mean."""

    def __init__(self, channels: int):
        super().__init__()
        self.logit = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.logit(x).flatten(2), dim=-1)  # (N, 1, HW)
        return (x.flatten(2) * w).sum(-1)


@register("iqarena_fr", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=("efficientnet_lite0",), trained=False,
          paper="iqarena's own, after IQT (Cheon et al., NTIRE 2021 winner): dist, ref and difference features, "
                "attention pooling",
          code="src/iqarena/models/iqarena_fr.py", colour="RGB; grey repeated to three channels",
          min_size=TRUNK_STRIDE, size_note=TRUNK_SIZE_NOTE)
class IQArenaFR(IQAModel):
    """Full-reference quality (higher is better) from EfficientNet-Lite0 features of dist, ref and ref - dist."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, train_from: int = 6,
                 project: int = 64, hidden: int = 128, dropout: float = 0.1, test_crop: int = 0,
                 test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        self.backbone = trunk(pretrained or bool(trained), train_from)
        channels = width(self.backbone)
        self.project = nn.ModuleList(nn.Sequential(nn.Conv2d(3 * channels[i], project, 1), nn.GELU())
                                     for i in LEVELS)
        self.pool = nn.ModuleList(AttentionPool(project) for _ in LEVELS)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(project * len(LEVELS), hidden), nn.GELU(),
                                  nn.Linear(hidden, 1))
        if trained:
            load_trained(self, Path(trained))

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        n = dist.shape[0]
        both = pyramid(self.backbone, torch.cat([dist, ref]).expand(-1, 3, -1, -1))
        vectors = []
        for proj, pool, level in zip(self.project, self.pool, LEVELS):
            fd, fr = both[level][:n], both[level][n:]
            vectors.append(pool(proj(torch.cat([fd, fr, fr - fd], dim=1))))
        return self.unstandardise(self.head(torch.cat(vectors, dim=1)).squeeze(1))
