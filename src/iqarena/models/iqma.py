"""IQMA: the bilateral-branch multi-scale image quality assessment network (NTIRE 2021 perceptual IQA, rank 2).

Guo, Bin, Hou, Zhang, Luo, "IQMA Network: Image Quality Multi-scale Assessment Network", CVPR Workshops
(NTIRE) 2021; team MT-GTD (Meituan), second in the challenge's final ranking (report, Section 5.2 and
Table 1). No code or trained weights of the authors' are public (searched 2026-11: GitHub, the paper's
pages, the challenge report); this file is written from the report's description and the paper's abstract.

What the description fixes, and how it is built here:

- an ImageNet ResNet (``depth``, torchvision's layout, catalogue ``resnet18`` ... ``resnet152``) per branch;
- each branch an FPN (Lin et al., CVPR 2017): a 1x1 lateral convolution of each of the stage outputs
  C2..C5 (strides 4, 8, 16, 32) to ``channels``, a top-down path (P5 = L5; Pk = Lk + nearest-upsampled
  P(k+1)) and a 3x3 convolution on each sum: four maps P2..P5 of ``channels`` each;
- one feature-fusion and pooling module per scale, fed with that scale's map of the distorted and of the
  reference branch; one score regressor per scale; the per-scale scores fused into the image's score;
- smooth L1 loss and the resampling of the few low-score PIPAL images (the recipe:
  ``train.loss = "smooth_l1"``, ``data.oversample_below`` / ``data.oversample_factor``).

Choices where the description is silent (each an option):

- ``shared=True``: the two branches share their weights (a Siamese pair; identical inputs give identical
  features). "Two branches ... separately" does not say whether they share weights; ``shared=False``
  builds a second backbone and FPN for the reference (``backbone.1``, ``fpn.1``).
- ``depth=50``: the report says "ResNet"; ResNet-50 is FPN's usual trunk.
- Fusion: the concatenation [dist, ref, ref - dist] (as IQT and WaDIQaM combine the pair), a 1x1
  convolution to ``channels``, ReLU, a 3x3 convolution, ReLU. The paper's "novelly designed pooling" is
  not described in the public material: here global average and global max pooling, concatenated (the
  mean reads overall damage, the max the worst region).
- Regressor: Linear(2 * channels, hidden), ReLU, Dropout, Linear(hidden, 1), one per scale.
- ``fusion="learned"``: the image score is a softmax-weighted sum of the per-scale scores, the weights
  learned and starting equal (so the untrained fusion is the mean); ``"mean"`` fixes them equal.
- ``scale_weight`` (default 0): optional deep supervision, each per-scale score's smooth L1 to the
  (standardised) label, added through ``auxiliary_loss``; the report names one loss only.
- Input: RGB in [0, 1], ImageNet mean/std normalisation; grey is repeated to three channels.
- The team's test-time ensemble (nine models averaged) is not part of one model.

``train_backbone=False`` freezes the ResNet (the CPU learning check's small setting uses ResNet-18,
frozen, and 32 FPN channels).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..metrics.registry import register
from .base import IQAModel, check_pair, load_trained
from .trunk import RESNET_DEPTHS, RESNET_SIZE_NOTE, RESNET_STRIDE, imagenet_normalise, resnet_trunk, stage_channels

FUSIONS = ("learned", "mean")


class FPN(nn.Module):
    """Feature pyramid (Lin et al. 2017) over C2..C5: 1x1 laterals, nearest-neighbour top-down sums, 3x3 outputs."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        merged = [laterals[-1]]
        for lat in reversed(laterals[:-1]):
            merged.insert(0, lat + F.interpolate(merged[0], size=lat.shape[-2:], mode="nearest"))
        return [out(m) for out, m in zip(self.output, merged)]


class ScaleHead(nn.Module):
    """One scale: fuse the pair's maps, pool (mean and max), regress a score."""

    def __init__(self, channels: int, hidden: int, dropout: float):
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(3 * channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.regress = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, 1))

    def pooled(self, fd: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([fd, fr, fr - fd], dim=1)).flatten(2)
        return torch.cat([fused.mean(-1), fused.amax(-1)], dim=1)

    def forward(self, fd: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
        return self.regress(self.pooled(fd, fr)).squeeze(1)


@register("iqma", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=tuple(f"resnet{d}" for d in RESNET_DEPTHS), trained=False,
          paper="Guo, Bin, Hou, Zhang, Luo, IQMA Network: Image Quality Multi-scale Assessment Network, CVPRW 2021 "
                "(NTIRE 2021 perceptual IQA, team MT-GTD, rank 2)",
          code="not public; src/iqarena/models/iqma.py (from the challenge report's description)",
          colour="RGB (ImageNet normalisation); grey repeated to three channels",
          min_size=RESNET_STRIDE, size_note=RESNET_SIZE_NOTE)
class IQMA(IQAModel):
    """Full-reference quality (higher is better): FPN features of both images, one score per scale, fused."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, depth: int = 50, channels: int = 256,
                 hidden: int = 256, dropout: float = 0.1, shared: bool = True, fusion: str = "learned",
                 train_backbone: bool = True, scale_weight: float = 0.0, frozen_bn: bool = True,
                 test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}.", option="fusion")
        if channels < 1 or hidden < 1:
            raise InputError(f"channels and hidden must be positive, got {channels} and {hidden}.", option="channels")
        if scale_weight < 0:
            raise InputError(f"scale_weight must be >= 0, got {scale_weight}.", option="scale_weight")
        nets = [resnet_trunk(depth, pretrained) for _ in range(1 if shared else 2)]  # then ``trained`` on top
        if not train_backbone:
            for p in (p for net in nets for p in net.parameters()):
                p.requires_grad_(False)
        widths = stage_channels(nets[0])
        self.shared, self.fusion, self.scale_weight = shared, fusion, float(scale_weight)
        self.frozen_batchnorm = frozen_bn
        self.backbone = nets[0] if shared else nn.ModuleList(nets)
        self.fpn = FPN(widths, channels) if shared else nn.ModuleList(FPN(widths, channels) for _ in range(2))
        self.heads = nn.ModuleList(ScaleHead(channels, hidden, dropout) for _ in widths)
        self.fusion_logits = nn.Parameter(torch.zeros(len(widths)), requires_grad=fusion == "learned")
        self._last_scales: torch.Tensor | None = None
        if trained:
            load_trained(self, Path(trained))

    def pyramid(self, x: torch.Tensor, branch: int = 0) -> list[torch.Tensor]:
        """P2..P5 of one branch (0: distorted, 1: reference; the same network when shared) for [0, 1] images."""
        net = self.backbone if self.shared else self.backbone[branch]
        fpn = self.fpn if self.shared else self.fpn[branch]
        x = imagenet_normalise(x)
        return fpn(net.stages(x)[1:])

    def fusion_weights(self) -> torch.Tensor:
        return torch.softmax(self.fusion_logits, dim=0)

    def scale_scores(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """(N, 4): the standardised score of each scale (P2..P5)."""
        check_pair("iqma", dist, ref)
        n = dist.shape[0]
        if self.shared:
            both = self.pyramid(torch.cat([dist, ref]))
            pairs = [(p[:n], p[n:]) for p in both]
        else:
            pairs = list(zip(self.pyramid(dist, 0), self.pyramid(ref, 1)))
        return torch.stack([head(fd, fr) for head, (fd, fr) in zip(self.heads, pairs)], dim=1)

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        scales = self.scale_scores(dist, ref)
        self._last_scales = scales if self.training and self.scale_weight else None
        return self.unstandardise(scales @ self.fusion_weights())

    def auxiliary_loss(self, targets: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``scale_weight`` x the mean smooth L1 of every scale's score to the standardised label."""
        if not self.scale_weight or self._last_scales is None:
            return None
        scales, self._last_scales = self._last_scales, None
        y = ((targets["score"] - self.label_mean) / self.label_std).to(scales.dtype)
        return self.scale_weight * F.smooth_l1_loss(scales, y[:, None].expand_as(scales))
