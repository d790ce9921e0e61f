"""mlt_yahaha: the Yahaha! team's multi-level transformer for full-reference IQA (NTIRE 2021, 5th).

"A Transformer-based perceptual image quality assessment framework leveraging multi level features", team
Yahaha! (Yang Li, Tao Zhang, Longtao Feng, Yiting Liao, Junlin Li), 5th in the NTIRE 2021 Perceptual IQA
challenge (Gu et al., CVPR-W 2021, Section 5.5 and Figure 9; PIPAL test SRCC 0.7703, PLCC 0.7615, main
score 1.5317). No paper of its own and no public code: a search of public repositories and pages found
none, so this is built from the report's description alone and no parity check is possible; the tests
check what the description fixes.

Registered as ``mlt_yahaha`` (alias ``yahaha``): the method has no name of its own; "mlt" says what it is
(a multi-level transformer) and the team's name says whose, so a user listing the models can tell it
from IQT, the other transformer entry.

Architecture, as the report gives it: an ImageNet ResNet-18 maps the reference and the distorted image;
at every layer i, ``c_i = r_i (+) d_i (+) (r_i - d_i)`` (channel concatenation); each c_i is average-pooled
to one spatial size; every position's features are projected to a token, a learnable position embedding
is added, and a standard transformer encoder follows; two multi-layer fully-connected heads predict the
distortion type and the opinion score. Training: L1 plus a relative-distance loss on the score, plus the
distortion-type cross-entropy, "weighted summed". The relative-distance loss (report, Section 5.5) is

    Loss = sum_{i=1..N} sum_{j=i+1..N} |(y_i - y_j) - (x_i - x_j)|

over the image pairs of a batch (y labels, x predictions): the model is asked to reproduce the
differences between images, not only their values. :func:`relative_distance_loss` computes it; the
training loss is ``train.loss = "l1"`` (the trainer's) plus ``auxiliary_loss``:
``rd_weight * relative_distance + type_weight * label_std * cross_entropy``.

Choices where the report leaves one:

- Layers: the outputs of ResNet-18's four residual stages (layer1..layer4; 64, 128, 256, 512 channels,
  strides 4 to 32), ``levels`` (indices into ``ResNet.stages()``: 0 is the stem) can change them.
- The common size: ``grid`` x ``grid`` by adaptive average pooling; 9 is layer4's size on PIPAL's
  288x288 images, where this is the report's average pooling of layer1..layer3 (kernels 8, 4, 2) with
  layer4 as it is; other image sizes keep the 81 tokens, so the position embedding always fits.
- Tokens: the concatenated c_i at a position (3 x 960 = 2,880 numbers) through one linear projection
  to ``embed`` (equal to a projection per layer, summed); a learnable class token is prepended (ViT's and
  IQT's quality embedding) and its output feeds both heads.
- The encoder: torch's standard (post-norm, ReLU) layer, ``embed`` 256, ``heads`` 4, ``layers`` 2,
  ``ff`` 1024, dropout 0.1 (the IQT paper's sizes for its standard datasets: the challenge's winning
  transformer); the heads: Linear(embed,
  ``hidden`` 256), ReLU, dropout, Linear to 1 score / ``types`` logits.
- ``types`` = 7, PIPAL's training distortion types 00..06 (the trainer numbers the rows' groups in sorted
  order, ``targets["kind"]``); a class id at or above ``types`` is an InputError.
- The weights, which the report does not give: the relative distance is the mean over the pairs, not
  the sum (the sum is ``N (N - 1) / 2`` times it: with a fixed batch that factor is part of the weight,
  and the mean keeps a weight's meaning across batch sizes), in label units like the trainer's L1,
  ``rd_weight`` 1; the cross-entropy is multiplied by the labels' standard deviation, so ``type_weight``
  (1) weighs it against L1 on standardised scores whatever the labels' scale (Elo ratings in the
  hundreds, MOS in units). Pairs are all pairs of a batch, as the formula says.
- Inputs are ImageNet-normalised (the backbone's convention). With ``pretrained=False`` (a backbone from
  scratch, the learning check) batch norm trains; with ImageNet weights its statistics stay frozen.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import from_state_dict, resnet18
from ..errors import InputError
from ..metrics.registry import register
from ..weights import load_state_dict
from .base import IQAModel, check_pair, load_trained

CHANNELS = (64, 64, 128, 256, 512)  # ResNet-18's stages(): the stem, layer1..layer4


def relative_distance_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The Yahaha team's relative-distance loss, ``|(y_i - y_j) - (x_i - x_j)|`` over the pairs i < j of a
    batch: ``"sum"`` as the report writes it, ``"mean"`` divided by the number of pairs (0 for one image)."""
    if pred.shape != target.shape or pred.dim() != 1:
        raise InputError(f"relative_distance_loss needs pred and target of the same shape (N,), got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}.")
    if reduction not in ("mean", "sum"):
        raise InputError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    n = pred.shape[0]
    gap = (target[:, None] - target[None, :]) - (pred[:, None] - pred[None, :])
    total = gap.abs().triu(1).sum()
    return total if reduction == "sum" else total / max(1, n * (n - 1) // 2)


@register("mlt_yahaha", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          aliases=("yahaha",), weights=("resnet18",), trained=False,
          paper="Yahaha! team, A Transformer-based perceptual IQA framework leveraging multi level features, NTIRE "
                "2021 Perceptual IQA, 5th (Gu et al., CVPR-W 2021, Section 5.5); no public code",
          code="src/iqarena/models/yahaha.py", colour="RGB; grey repeated to three channels", min_size=32,
          size_note="ResNet-18's total stride of 32")
class MultiLevelTransformer(IQAModel):
    """Full-reference quality (higher is better) and a distortion-type head from a transformer over
    ResNet-18 features of ref, dist and ref - dist at every stage."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True,
                 levels: tuple[int, ...] | list[int] = (1, 2, 3, 4), grid: int = 9, embed: int = 256,
                 heads: int = 4, layers: int = 2, ff: int = 1024, hidden: int = 256, dropout: float = 0.1,
                 types: int = 7, rd_weight: float = 1.0, type_weight: float = 1.0, test_crop: int = 0,
                 test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        self.levels = tuple(int(i) for i in levels)
        if not self.levels or any(i not in range(5) for i in self.levels) or len(set(self.levels)) != len(self.levels):
            raise InputError(f"levels must be distinct indices 0..4 of ResNet-18's stages (0: the stem, 1-4: "
                             f"layer1..layer4), got {levels}.", option="levels")
        if grid < 1 or types < 1 or embed % heads:
            raise InputError(f"grid and types must be >= 1 and embed ({embed}) a multiple of heads ({heads}).")
        if rd_weight < 0 or type_weight < 0:
            raise InputError("rd_weight and type_weight must be >= 0.")
        self.grid, self.types = int(grid), int(types)
        self.rd_weight, self.type_weight = float(rd_weight), float(type_weight)
        if pretrained or trained:
            self.backbone = from_state_dict(lambda: resnet18(include_top=False), load_state_dict("resnet18"),
                                            "ResNet-18 weights")
        else:
            self.backbone = resnet18(include_top=False)
            self.frozen_batchnorm = False  # from scratch: batch norm learns its statistics
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.project = nn.Linear(3 * sum(CHANNELS[i] for i in self.levels), embed)
        self.cls = nn.Parameter(torch.zeros(1, 1, embed))
        self.pos = nn.Parameter(torch.zeros(1, self.grid ** 2 + 1, embed))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(embed, heads, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.score_head = nn.Sequential(nn.Linear(embed, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.type_head = nn.Sequential(nn.Linear(embed, hidden), nn.ReLU(), nn.Dropout(dropout),
                                       nn.Linear(hidden, self.types))
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        if trained:
            load_trained(self, Path(trained))

    def tokens(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """(N, grid^2, 3 * sum C): per position, ``r (+) d (+) (r - d)`` of every level, pooled to the grid."""
        n = dist.shape[0]
        x = (torch.cat([dist, ref]).expand(-1, 3, -1, -1) - self.mean) / self.std
        stages = self.backbone.stages(x)
        pooled = []
        for i in self.levels:
            d, r = stages[i][:n], stages[i][n:]
            pooled.append(F.adaptive_avg_pool2d(torch.cat([r, d, r - d], dim=1), self.grid))
        return torch.cat(pooled, dim=1).flatten(2).transpose(1, 2)

    def heads(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) standardised scores and (N, types) distortion-type logits."""
        check_pair("mlt_yahaha", dist, ref, 32, "ResNet-18's stride")
        t = self.project(self.tokens(dist, ref))
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        out = self.encoder(t)[:, 0]
        return self.score_head(out).squeeze(1), self.type_head(out)

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        raw, logits = self.heads(dist, ref)
        scores = self.unstandardise(raw)
        self._last = (scores, logits) if self.training else None
        return scores

    def auxiliary_loss(self, targets: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``rd_weight`` x the relative-distance loss (label units) + ``type_weight`` x label_std x the
        distortion-type cross-entropy, on the last training batch."""
        if self._last is None or not (self.rd_weight or self.type_weight):
            return None
        scores, logits = self._last
        total = scores.new_zeros(())
        if self.rd_weight:
            y = targets["score"].to(scores.dtype)
            total = total + self.rd_weight * relative_distance_loss(scores, y)
        if self.type_weight:
            kind = targets["kind"].long()
            if int(kind.max()) >= self.types or int(kind.min()) < 0:
                raise InputError(f"mlt_yahaha has {self.types} distortion types, but the training set has more "
                                 f"groups (class id {int(kind.max())}); set the model option types to their "
                                 "number.", option="types")
            total = total + self.type_weight * self.label_std * F.cross_entropy(logits, kind)
        return total
