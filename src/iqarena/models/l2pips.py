"""L2PIPS: Learn to Learn a Perceptual Image Patch Similarity metric (NTIRE 2021 perceptual IQA, rank 3).

Team The Amaurotia (Guo, Wang, Wang, Yang; Tsinghua University), third in the challenge's final ranking
(report, Section 5.3 and Table 1). Authors' code: https://github.com/YuLvS/L2PIPS (Apache-2.0; model
``v9`` in ``models/test_libs.py``, training in ``IQA_v9.py``), read to write this file.

Architecture, as the code has it:

- ImageNet ResNet-50 (catalogue ``resnet50``) on both images (one network), ImageNet-normalised RGB; five
  feature maps: the stem convolution's output (before its batch norm) and layer1..layer4.
- One deep-similarity (DS) module per map: the distorted and reference features are concatenated and
  channel-shuffled (ShuffleNet's shuffle with 2 groups: d0, r0, d1, r1, ...), so that a 3x3 group
  convolution with one group per channel compares each channel pair; batch norm; (maps 1-4: a second
  depthwise 3x3 convolution and batch norm); frequency channel attention; ReLU (map 0: PReLU). Then
  3x3 convolution blocks (batch norm, ReLU between, FCA after the last) that bring maps 1-4 to the size
  of layer4 with stride-2 convolutions, and a depthwise convolution as large as the map (a learned
  spatial weighting) that leaves one number per channel.
- Frequency channel attention (Qin et al., FcaNet, ICCV 2021): the channels are split into 16 groups;
  each group is pooled with one 2-D DCT-II basis function (FcaNet's "top16" frequencies of a 7x7
  grid, scaled to the map's size), then an SE-style bottleneck (reduction 16) and a sigmoid weight the
  channels. The DCT filters are computed here.
- The cosine similarity between the distorted and reference feature maps of each channel (over
  positions) is the "auxiliary output" of each DS module: the regressor takes [cosines of the five
  maps, DS outputs of the five maps] (2 x 3,904 numbers for ResNet-50) through two linear layers with no
  nonlinearity between them (the code's ``big_fc``).

Training (the code): stage 1, the ResNet frozen, L1 loss, Adam lr 4e-4, weight decay 5e-4, 100 epochs,
learning rate halved at epochs 25, 50; stage 2, everything trained, MSE loss, lr 1e-5, 100 epochs;
224x224 random crops, horizontal flips, batch 16, labels / 1000; all batch norms in training mode
(``frozen_bn=False`` here). Testing: 8 x 8 crops of 224 at offsets 0, 8, ..., 56, each with and
without a horizontal flip and a vertical flip + transpose (256 crops), the median.

Choices and differences (each an option where it matters):

- ``patch=224``: the FCA filters and the spatial-weighting kernels have the size of the maps of a
  ``patch`` x ``patch`` input, as in the code (which refuses any other size). On other sizes each map
  is average-pooled to that size first (FcaNet's own fallback): identical at ``patch``, any size scores.
- ``aux_weight`` (default 0): the report calls the cosine similarities an "auxiliary output"; the code
  feeds them to the regressor and has no separate loss for them. With ``aux_weight`` > 0, each map's
  cosine vector also predicts the (standardised) score through its own linear layer, and
  ``auxiliary_loss`` adds ``aux_weight`` x the mean L1 of those predictions.
- ``hidden``: the width of the first linear layer (default: as wide as its input, the code's).
- The test-time crops: ``test_crop=224, test_layout="grid", test_crops=8`` (8 x 8 evenly spaced,
  mean) in the recipe; the code's flips and median are not reproduced.
- ``trained=`` also takes the authors' own trained file (``net_params_best.pkl``, their Google Drive):
  :func:`from_authors` renames its keys; their network predicts Elo / 1000, so the label scale is set to
  1000 and the scores come out in Elo.

``depth`` (18 ... 152) and ``train_backbone=False`` give the CPU learning check's small setting
(ResNet-18 frozen, ``patch=48``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..metrics.registry import register
from ..weights import load_state_dict
from .base import IQAModel, check_pair
from .trunk import RESNET_DEPTHS, RESNET_SIZE_NOTE, RESNET_STRIDE, imagenet_normalise, resnet_trunk, stage_channels

#: FcaNet's 16 best single frequencies of a 7x7 DCT grid (Qin et al. 2021, "top16"), (u, v) pairs
TOP16 = ((0, 0), (0, 1), (6, 0), (0, 5), (0, 2), (1, 0), (1, 2), (4, 0),
         (5, 0), (1, 6), (3, 0), (0, 4), (0, 6), (0, 3), (3, 5), (2, 2))

#: per map: the activation, whether the comparison has a second (depthwise) convolution, and the strides
#: of each convolution block (the authors' ``project0`` .. ``project4``)
PLAN = {0: ("prelu", False, ((1, 1),)),
        1: ("relu", True, ((1, 2), (1, 2), (1, 2))),
        2: ("relu", True, ((1, 2), (1, 2))),
        3: ("relu", True, ((1, 2, 1),)),
        4: ("relu", True, ((1, 1),))}


def half(size: int) -> int:
    """The output side of a stride-2 convolution or pooling that pads to keep ``ceil(size / 2)``."""
    return (size - 1) // 2 + 1


def map_sizes(patch: int) -> list[int]:
    """Sides of the stem convolution's output and of layer1..layer4 for a ``patch`` x ``patch`` input."""
    sizes = [half(patch)]
    for _ in range(4):
        sizes.append(half(sizes[-1]))
    return sizes


def dct_basis(freqs: torch.Tensor, n: int) -> torch.Tensor:
    """(len(freqs), n): the orthonormal DCT-II basis vectors of the given frequencies on ``n`` points (float64)."""
    pos = torch.arange(n, dtype=torch.float64)
    freqs = freqs.to(torch.float64)[:, None]
    v = torch.cos(math.pi * freqs * (pos + 0.5) / n) / math.sqrt(n)
    return torch.where(freqs > 0, v * math.sqrt(2), v)


def dct_filters(channels: int, h: int, w: int, freqs=TOP16) -> torch.Tensor:
    """(channels, h, w): channel group i (of len(freqs) equal groups) gets the 2-D DCT-II basis of
    frequency freqs[i] of a 7x7 grid, scaled to h x w (u * (h // 7), v * (w // 7))."""
    if channels % len(freqs):
        raise InputError(f"frequency channel attention splits the channels into {len(freqs)} groups; "
                         f"{channels} channels do not divide.")
    u, v = torch.tensor(freqs).T
    bases = dct_basis(u * (h // 7), h)[:, :, None] * dct_basis(v * (w // 7), w)[:, None, :]
    return bases.float().repeat_interleave(channels // len(freqs), dim=0)


class FrequencyChannelAttention(nn.Module):
    """FcaNet's multi-spectral channel attention: DCT pooling per channel group, SE bottleneck, sigmoid."""

    def __init__(self, channels: int, size: int, reduction: int = 16):
        super().__init__()
        self.size = size
        self.register_buffer("filters", dct_filters(channels, size, size), persistent=False)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x if x.shape[-2:] == (self.size, self.size) else F.adaptive_avg_pool2d(x, self.size)
        weights = self.fc((pooled * self.filters).sum(dim=(2, 3)))
        return x * weights[:, :, None, None]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (N, g*k, H, W) -> channel order 0, k, 2k, ..., 1, k+1, ..."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _act(kind: str, channels: int) -> nn.Module:
    return nn.PReLU(channels) if kind == "prelu" else nn.ReLU()


class ConvBlock(nn.Module):
    """3x3 convolutions (no bias) with the given strides, each with batch norm, activations between, then
    frequency channel attention and the activation."""

    def __init__(self, channels: int, strides: tuple[int, ...], size: int, act: str):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, s, 1, bias=False) for s in strides)
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in strides)
        self.acts = nn.ModuleList(_act(act, channels) for _ in strides)
        for s in strides:
            size = half(size) if s == 2 else size
        self.attention = FrequencyChannelAttention(channels, size)
        self.out_size = size

    def layers(self) -> list[nn.Module]:
        out: list[nn.Module] = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            out += [conv, norm] + ([self.acts[i]] if i < len(self.convs) - 1 else [])
        return out + [self.attention, self.acts[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers():
            x = layer(x)
        return x


class DeepSimilarity(nn.Module):
    """One DS module: (dist, ref) maps of C channels -> (N, C)."""

    def __init__(self, channels: int, size: int, plan: tuple):
        super().__init__()
        act, depthwise, blocks = plan
        compare: list[nn.Module] = [nn.Conv2d(2 * channels, channels, 3, 1, 1, groups=channels, bias=False),
                                    nn.BatchNorm2d(channels)]
        if depthwise:
            compare += [nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]
        self.compare = nn.Sequential(*compare)
        self.attention = FrequencyChannelAttention(channels, size)
        self.act = _act(act, channels)
        self.blocks = nn.ModuleList()
        for strides in blocks:
            self.blocks.append(ConvBlock(channels, strides, size, act))
            size = self.blocks[-1].out_size
        self.size = size
        self.spatial = nn.Conv2d(channels, channels, size, groups=channels, bias=False)

    def layers(self) -> list[nn.Module]:
        """Every layer in the order it runs (the order of the authors' ``project<k>`` Sequential)."""
        out = [*self.compare, self.attention, self.act]
        for block in self.blocks:
            out += block.layers()
        return out + [self.spatial]

    def forward(self, fd: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
        x = channel_shuffle(torch.cat([fd, fr], dim=1), 2)
        x = self.act(self.attention(self.compare(x)))
        for block in self.blocks:
            x = block(x)
        if x.shape[-2:] != (self.size, self.size):
            x = F.adaptive_avg_pool2d(x, self.size)
        return self.spatial(x).flatten(1)


def cosine_per_channel(fd: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
    """(N, C): the cosine similarity of each channel's maps over positions."""
    return F.cosine_similarity(fd.flatten(2), fr.flatten(2), dim=2)


@register("l2pips", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=tuple(f"resnet{d}" for d in RESNET_DEPTHS), trained=False,
          paper="Guo, Wang, Wang, Yang, L2PIPS: Learn to Learn a Perceptual Image Patch Similarity Metric "
                "(NTIRE 2021 perceptual IQA, team The Amaurotia, rank 3)",
          code="https://github.com/YuLvS/L2PIPS (Apache-2.0)",
          colour="RGB (ImageNet normalisation); grey repeated to three channels",
          min_size=RESNET_STRIDE, size_note=RESNET_SIZE_NOTE)
class L2PIPS(IQAModel):
    """Full-reference quality (higher is better): deep-similarity modules on five ResNet maps."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, depth: int = 50, patch: int = 224,
                 hidden: int | None = None, aux_weight: float = 0.0, train_backbone: bool = True,
                 frozen_bn: bool = False, test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if patch < RESNET_STRIDE:
            raise InputError(f"patch must be at least {RESNET_STRIDE} ({RESNET_SIZE_NOTE}), got {patch}.", option="patch")
        if aux_weight < 0:
            raise InputError(f"aux_weight must be >= 0, got {aux_weight}.", option="aux_weight")
        self.backbone = resnet_trunk(depth, pretrained)
        if not train_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.frozen_batchnorm = frozen_bn
        self.patch, self.aux_weight = int(patch), float(aux_weight)
        widths = [self.backbone.conv1.out_channels, *stage_channels(self.backbone)]
        self.similarity = nn.ModuleList(DeepSimilarity(c, s, PLAN[k])
                                        for k, (c, s) in enumerate(zip(widths, map_sizes(self.patch))))
        total = 2 * sum(widths)
        self.head = nn.Sequential(nn.Linear(total, hidden or total), nn.Linear(hidden or total, 1))
        self.aux_heads = nn.ModuleList(nn.Linear(c, 1) for c in widths) if self.aux_weight else None
        self._last_cosines: list[torch.Tensor] | None = None
        if trained:
            self.load_trained(trained)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stem convolution's output (before batch norm) and layer1..layer4, for [0, 1] images."""
        net = self.backbone
        x = net.conv1(imagenet_normalise(x))
        out = [x]
        x = net.maxpool(F.relu(net.bn1(x)))
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            out.append(x)
        return out

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("l2pips", dist, ref)
        n = dist.shape[0]
        cosines, similar = [], []
        for ds, f in zip(self.similarity, self.maps(torch.cat([dist, ref]))):
            fd, fr = f[:n], f[n:]
            cosines.append(cosine_per_channel(fd, fr))
            similar.append(ds(fd, fr))
        self._last_cosines = cosines if self.training and self.aux_heads is not None else None
        return self.unstandardise(self.head(torch.cat(cosines + similar, dim=1)).squeeze(1))

    def auxiliary_loss(self, targets: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``aux_weight`` x the mean over maps of the L1 between each map's cosine-vector prediction and the
        standardised label (None when ``aux_weight`` is 0)."""
        if self.aux_heads is None or self._last_cosines is None:
            return None
        cosines, self._last_cosines = self._last_cosines, None
        y = (targets["score"] - self.label_mean) / self.label_std
        losses = [F.l1_loss(head(c).squeeze(1), y.to(c.dtype)) for head, c in zip(self.aux_heads, cosines)]
        return self.aux_weight * torch.stack(losses).mean()

    def load_trained(self, source: str | Path) -> None:
        """A file of this model's tensors (some or all), or the authors' own trained file (renamed by
        :func:`from_authors`; its scores are Elo / 1000, so the label scale is set to 1000)."""
        sd = load_state_dict(source)
        authors = any(k.startswith(("module.", "big_fc.", "project0.")) for k in sd)
        if authors:
            sd = from_authors(sd, self)
        result = self.load_state_dict(sd, strict=False)
        if result.unexpected_keys:
            raise InputError(f"{source} holds tensors L2PIPS does not have ({', '.join(result.unexpected_keys[:3])}); "
                             "is it the trained part of another model?")
        if authors:
            self.set_label_stats(0.0, 1000.0)


def from_authors(sd: Mapping[str, torch.Tensor], model: L2PIPS) -> OrderedDict:
    """The authors' ``v9`` state_dict (DataParallel's ``module.`` prefix or none) under this model's names:
    ``head1`` -> ``backbone.conv1``, ``head2.0`` -> ``backbone.bn1``, ``layerK`` -> ``backbone.layerK``,
    ``big_fc`` -> ``head``, and ``project<k>.*`` -> ``similarity.<k>.*`` by :func:`ds_key`."""
    out = OrderedDict()
    for key, value in sd.items():
        k = key.removeprefix("module.")
        head, _, rest = k.partition(".")
        if head == "head1":
            out["backbone.conv1." + rest] = value
        elif head == "head2":
            out["backbone.bn1." + rest.partition(".")[2]] = value
        elif head.startswith("layer"):
            out[f"backbone.{k}"] = value
        elif head == "big_fc":
            out["head." + rest] = value
        elif head.startswith("project") and head[len("project"):].isdigit():
            i = int(head[len("project"):])
            name = ds_key(model.similarity[i], rest, value, model.patch)
            if name is not None:
                out[f"similarity.{i}.{name}"] = value
        else:
            raise InputError(f"{key} is not a tensor of the authors' L2PIPS model (v9).")
    return out


def ds_key(ds: DeepSimilarity, key: str, value: torch.Tensor, patch: int = 224) -> str | None:
    """The name in ``ds`` of the authors' ``project<k>`` tensor ``key`` (``<index>.<name>``: the index-th
    layer of their Sequential is ``ds.layers()[index]``). Their fixed DCT filters (``dct_layer.weight``)
    are checked against the ones computed here and give None (nothing to load)."""
    index, _, sub = key.partition(".")
    layers = ds.layers()
    if not index.isdigit() or int(index) >= len(layers):
        raise InputError(f"project.{key} is not a tensor of the authors' deep-similarity module.")
    layer = layers[int(index)]
    if sub == "dct_layer.weight":
        if value.shape != layer.filters.shape or not torch.allclose(value.float(), layer.filters, atol=1e-6):
            raise InputError(f"the authors' DCT filters of layer {index} differ from this model's (patch={patch}); "
                             "was the file trained at another patch size?")
        return None
    names = {id(m): n for n, m in ds.named_modules()}
    return f"{names[id(layer)]}.{sub}"
