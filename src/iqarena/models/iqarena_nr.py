"""iqarena_nr: a no-reference model on the ImageNet EfficientNet-Lite0 trunk.

Architecture: the 7 stage outputs and the head's map of EfficientNet-Lite0, each pooled to its spatial
mean and standard deviation (4,128 numbers), at every scale of ``scales`` (default the image and its
half-size copy: how a picture's statistics change with scale says much about blur, noise and
compression), layer-normalised, then a two-layer regression head. By default the trunk is frozen
(``train_from=7``): the pooled statistics are then fixed per image (``frozen_features``), and training
caches them (``data.cache_features``) and fits the head in seconds. ``train_from`` < 7 fine-tunes the
last stages. Batch-norm statistics stay as pretrained.

Trained weights: ``iqarena_nr`` as registered loads the trained part shipped with iqarena (catalogue
entry ``iqarena-nr-clive``: trained on all 937 LIVE-Challenge photos of ../shared/data/clive; the
command that rebuilds it is in docs/learning.md); ``trained=False`` starts from ImageNet (training).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..metrics.registry import register
from .base import IQAModel, load_trained
from .trunk import TRUNK_SIZE_NOTE, TRUNK_STRIDE, mean_std, pyramid, trunk, width

TRAINED = "iqarena-nr-clive"


@register("iqarena_nr", kind="nr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=("efficientnet_lite0", TRAINED),
          paper="iqarena's own: EfficientNet-Lite0 (Tan and Le, 2019) features, mean and std pooling of every stage",
          code="src/iqarena/models/iqarena_nr.py", colour="RGB; grey repeated to three channels",
          min_size=TRUNK_STRIDE, size_note=TRUNK_SIZE_NOTE)
class IQArenaNR(IQAModel):
    """No-reference quality (MOS-like, higher is better) from pooled EfficientNet-Lite0 statistics."""

    kind = "nr"

    def __init__(self, trained: bool | str = True, pretrained: bool = True, train_from: int = 7,
                 scales: tuple[float, ...] | list[float] = (1.0, 0.5), hidden: int = 128, dropout: float = 0.25,
                 test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        self.backbone = trunk(pretrained or bool(trained), train_from)
        self.features_frozen = train_from == 7
        self.scales = tuple(float(s) for s in scales)
        dims = 2 * sum(width(self.backbone)) * len(self.scales)
        self.head = nn.Sequential(nn.LayerNorm(dims), nn.Dropout(dropout), nn.Linear(dims, hidden), nn.GELU(),
                                  nn.Linear(hidden, 1))
        if trained:
            load_trained(self, TRAINED if trained is True else Path(trained))

    def frozen_features(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """(N, dims): the pooled statistics of every scale (fixed per image when the trunk is frozen)."""
        x = dist.expand(-1, 3, -1, -1)
        out = []
        for s in self.scales:
            xs = x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear", antialias=True,
                                                align_corners=False)
            out += [mean_std(f) for f in pyramid(self.backbone, xs)]
        return torch.cat(out, dim=1)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.unstandardise(self.head(features).squeeze(1))

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_features(self.frozen_features(dist))
