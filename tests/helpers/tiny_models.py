"""Tiny learned models for training tests (seconds on a CPU), registered like iqarena's own models.

Imported by the tests and by the subprocesses they start (a killed run, torchrun workers)."""

from __future__ import annotations

import math

import torch
from torch import nn

from iqarena.metrics import METRICS, register
from iqarena.models import IQAModel


class TinyFR(IQAModel):
    """Conv features of dist and |ref - dist|, mean pooled, a dropout, a linear head."""

    kind = "fr"

    def __init__(self, width: int = 6, dropout: float = 0.1, test_crop: int = 0, test_layout: str = "five",
                 test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, 1)

    def score(self, dist, ref=None):
        fd, fr = self.conv(dist), self.conv(ref)
        pooled = torch.cat([fd.mean(dim=(2, 3)), (fr - fd).abs().mean(dim=(2, 3))], dim=1)
        return self.unstandardise(self.head(self.drop(pooled)).squeeze(1))


class TinyNR(TinyFR):
    kind = "nr"

    def score(self, dist, ref=None):
        fd = self.conv(dist)
        pooled = torch.cat([fd.mean(dim=(2, 3)), fd.std(dim=(2, 3))], dim=1)
        return self.unstandardise(self.head(self.drop(pooled)).squeeze(1))


if "tiny_fr" not in METRICS:
    register("tiny_fr", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model")(TinyFR)
    register("tiny_nr", kind="nr", higher_better=True, score_range=(-math.inf, math.inf), family="model")(TinyNR)
