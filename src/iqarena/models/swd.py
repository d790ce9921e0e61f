"""swd: the Space Warping Difference network, the NTIRE 2021 organisers' deep baseline.

Gu, Cai, Chen, Ye, Ren, Dong, "Image Quality Assessment for Perceptual Image Restoration: A New Dataset,
Benchmark and Metric", arXiv 2011.15002, 2020 (the journal version of the PIPAL paper, ECCV 2020); [19] in the
NTIRE 2021 Perceptual IQA report, whose Table 1 lists SWD as a baseline (test set: SRCC 0.6243, PLCC 0.6342,
main score 1.2585; validation: 0.7895 / 0.8219). GAN outputs are often slightly misaligned with their
reference; SWD makes an LPIPS-like network tolerate that with l2 pooling (instead of max pooling) and Space
Warping Difference layers (a difference that may take the reference feature from a small neighbourhood).

Code: the authors' repository https://github.com/HaomingCai/PIPAL-dataset (no licence file; read, not
copied) holds the network SWD builds on and its PIPAL training (``codes/models/modules/Our_IQA.py``,
``codes/models/IQA_model.py``, ``codes/options/train_test_yml/train_IQA.yml``); its README says the SWD
module itself "will be added in the future". The paper's body could not be read here (only its abstract:
"the novel l_2 pooling layers and Space Warping Difference layers"), so the two additions below are written
from that and from the method's idea (the minimum difference over a small neighbourhood of reference
features); their window, search radius and distance are choices, marked as such. What this file takes from
the code:

- ImageNet AlexNet (``net="alex"``, the default) or VGG16 (``"vgg"``) features of the ImageNet-normalised
  distorted and reference images, frozen (``tune_flag: false``), tapped after the five ReLU blocks;
- per tap, the difference ``f_ref - f_dist`` goes through ``conv1x1(C, C) - ReLU - conv1x1(C, 1) - ReLU`` and a
  spatial mean; the five numbers are summed into a distance (here the score is its negative);
- the 1x1 convolutions' weights are clamped at zero before each training step (``clamp_weights``);
- training on pairs of distorted images of one reference with the Elo probability ``1 / (1 +
  10^((elo_B - elo_A) / 400))`` as target, cross-entropy, Adam lr 1e-4, 248x248 crops.

``pool="max", warp=0`` is exactly that public network (tests/test_model_swd.py matches it to float
precision through benchmarks/parity_swd.py). The SWD additions:

- l2 pooling (Henaff and Simoncelli, ICLR 2016) as DISTS's code defines it (Ding et al., TPAMI 2020; also
  in THUIIGROUP's RADN code), iqarena's ``metrics.dists.L2Pool``: ``sqrt(g * x^2 + 1e-12)`` with g the
  normalised [1, 2, 1] x [1, 2, 1] window (a Hanning window of 5 without its zero ends), stride 2, zero
  padding 1, in place of each max pooling before the last tap. On AlexNet this pads where its 3x3 max
  pooling did not, so maps are one position larger (71 -> 36 -> 18 at 288 pixels instead of 71 -> 35 -> 17).
- the Space Warping Difference: at each position p of a tap, among the reference features f_ref(p + d),
  |d| <= ``warp`` on both axes (inside the map), the one nearest to f_dist(p) in squared L2 distance is
  taken, and the difference is ``f_ref(p + d*) - f_dist(p)`` (d = 0 wins ties). With ``warp=0`` it is the
  plain difference.

What it tolerates (tests/test_model_swd.py, measured on a photo crop with seeded backbone weights): a shift
by one position of a tap's grid leaves 3 % of VGG16's first-tap difference (1 pixel) and 11 % of AlexNet's
(4 pixels), against 95-99 % for additive noise; a 1-pixel shift on AlexNet, a quarter of its first stride,
is not undone by a search over whole positions (99 % remains).

Choices where the description leaves one:

- AlexNet as the default backbone (the code's default; the report does not say which one SWD used);
- the l2 pooling's window (DISTS's);
- ``warp=1`` feature position at every tap (an int, or one per tap), the search at all five taps;
- the distance that picks the match: squared L2 over channels of the raw (not unit-normalised) features,
  as the regression sees them;
- the pairwise objective: the trainer's ``elo_ce`` on in-batch pairs of one reference (the Bradley-Terry
  model of the two scores), where the authors' code learns a small network on the two distances (LPIPS's
  ``Dist2LogitLayer``);
- the clamp is applied at the start of each training forward, so every training forward sees non-negative
  weights (the code clamps between the forward and the backward: its forwards see the weights after the
  last update, which may be slightly negative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import VGG16, AlexNet, load_weights
from ..errors import InputError
from ..metrics.dists import L2Pool
from ..metrics.lpips import as_rgb
from ..metrics.registry import register
from ..weights import load_state_dict
from .base import IQAModel, check_pair, load_trained
from .trunk import imagenet_normalise

TAPS = 5
#: backbone class, ImageNet catalogue file, channels of the five taps
NETS = {"alex": (AlexNet, "alexnet", (64, 192, 384, 256, 256)), "vgg": (VGG16, "vgg16", (64, 128, 256, 512, 512))}
POOLS = ("l2", "max")
#: smallest image side that leaves every tap at least one pixel, per (net, pool)
MIN_SIDE = {("alex", "l2"): 7, ("alex", "max"): 31, ("vgg", "l2"): 1, ("vgg", "max"): 16}


def _check_choices(net: str, pool: str) -> None:
    if net not in NETS:
        raise InputError(f"net must be one of {', '.join(NETS)}, got {net!r}.", option="net")
    if pool not in POOLS:
        raise InputError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}.", option="pool")


def backbone(net: str = "alex", pool: str = "l2",
             weights: Mapping[str, torch.Tensor] | None = None) -> AlexNet | VGG16:
    """The ImageNet network's features (torchvision's indices and names) with ``weights`` loaded when given,
    then, for ``pool="l2"``, each max pooling before the last tap replaced by DISTS's l2 pooling."""
    _check_choices(net, pool)
    cls, file, _ = NETS[net]
    model = cls(include_top=False)
    if weights is not None:
        load_weights(model, weights, f"{file} ImageNet weights")
    if pool == "l2":
        channels = 3
        for i, m in enumerate(model.features[:model.stage_ends[-1]]):
            if isinstance(m, nn.Conv2d):
                channels = m.out_channels
            elif isinstance(m, nn.MaxPool2d):
                model.features[i] = L2Pool(channels)
    return model


def warp_difference(fd: torch.Tensor, fr: torch.Tensor, radius: int) -> torch.Tensor:
    """The Space Warping Difference ``fr(p + d*) - fd(p)``: for each position p, d* is the offset with
    |d| <= ``radius`` on both axes (p + d inside the map) whose reference feature vector is nearest to
    fd(p) in squared L2 distance over channels; d = 0 wins ties. ``radius=0``: ``fr - fd``.

    Replicate padding gives the positions outside the map the value of their clamped position, which is
    itself a candidate, so the minimum is over the neighbourhood inside the map."""
    best = fr - fd
    if radius == 0:
        return best
    h, w = fd.shape[-2:]
    padded = F.pad(fr, (radius,) * 4, mode="replicate")
    best_d = best.pow(2).sum(1, keepdim=True)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            cand = padded[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w] - fd
            d = cand.pow(2).sum(1, keepdim=True)
            take = d < best_d
            best, best_d = torch.where(take, cand, best), torch.where(take, d, best_d)
    return best


@register("swd", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=("alexnet",), trained=False,
          paper="Gu et al., Image Quality Assessment for Perceptual Image Restoration: A New Dataset, Benchmark and "
                "Metric, arXiv 2011.15002 (SWD, the NTIRE 2021 Perceptual IQA baseline)",
          code="https://github.com/HaomingCai/PIPAL-dataset (the base network and its training; the SWD layer is "
               "not public)",
          colour="RGB, ImageNet mean/std normalised; grey repeated to three channels",
          min_size=lambda o: MIN_SIDE.get((o.get("net", "alex"), o.get("pool", "l2")), 1),
          size_note="the backbone's pooling must leave at least one pixel at its last tap")
class SWD(IQAModel):
    """Quality (higher is better): minus the summed per-tap regression of Space Warping Differences.

    ``warp``: search radius in feature positions (an int, or five, one per tap); ``hidden``: width of each
    tap's first 1x1 convolution (0: the tap's channels, as the authors' code); ``nonneg``: clamp the 1x1
    weights at zero in training; ``train_backbone``: fine-tune the ImageNet network too."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, net: str = "alex", pool: str = "l2",
                 warp: int | list = 1, hidden: int = 0, nonneg: bool = True, train_backbone: bool = False,
                 test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        warps = [warp] * TAPS if isinstance(warp, int) else list(warp)
        if len(warps) != TAPS or any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in warps):
            raise InputError(f"warp must be an integer >= 0 or {TAPS} of them (one per tap), got {warp!r}.",
                             option="warp")
        if hidden < 0:
            raise InputError(f"hidden must be >= 0 (0: the tap's channels), got {hidden}.", option="hidden")
        _check_choices(net, pool)
        self.net, self.warps, self.nonneg, self.min_side = net, warps, bool(nonneg), MIN_SIDE[net, pool]
        _, file, channels = NETS[net]
        self.backbone = backbone(net, pool, load_state_dict(file) if pretrained or trained else None)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, hidden or c, 1), nn.ReLU(), nn.Conv2d(hidden or c, 1, 1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1))
            for c in channels)
        for p in self.backbone.parameters():
            p.requires_grad_(bool(train_backbone))
        if trained:
            load_trained(self, Path(trained))

    def differences(self, dist: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        """The five taps' Space Warping Differences of (N, 3, H, W) images in [0, 1]."""
        n = dist.shape[0]
        taps = self.backbone.stages(imagenet_normalise(torch.cat([dist, ref])))
        return [warp_difference(t[:n], t[n:], r) for t, r in zip(taps, self.warps)]

    def distance(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """(N,) the summed regression of the differences (the authors' score, lower is better)."""
        if self.training and self.nonneg:
            with torch.no_grad():
                for head in self.heads:
                    for conv in (head[0], head[2]):
                        conv.weight.clamp_(min=0)
        return sum(head(d).flatten(1) for head, d in zip(self.heads, self.differences(dist, ref))).squeeze(1)

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("swd", dist, ref, self.min_side, f"the smallest input of its {self.net} taps")
        return self.unstandardise(-self.distance(as_rgb(dist), as_rgb(ref)))
