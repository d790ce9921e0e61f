"""AHIQ: attention-based hybrid image quality assessment (ViT-B/8 + ResNet-50, deformable fusion).

Lao, Gong, Shi, Yang, Wu, Wang, Xia, Yang, "Attentions Help CNNs See Better: Attention-based Hybrid Image
Quality Assessment Network", CVPR Workshops (NTIRE) 2022, arXiv:2204.10485. Tsinghua University (Yujiu
Yang's group, which as THUIIGROUP1919 ranked 4th in NTIRE 2021 with RADN); AHIQ ranked first in the
full-reference track of the NTIRE 2022 Perceptual IQA challenge (the authors' README and paper). It is not in
the NTIRE 2021 report (docs/000_...): it came a year later, on the same PIPAL data and protocol.
Code: https://github.com/IIGROUP/AHIQ (MIT licence; model/deform_regressor.py, train.py, test.py,
script/extract_feature.py); pyiqa 0.1.16's ``ahiq_arch.py`` re-implements it (timm + torchvision).
This file is written from the paper and that code, in plain torch.

Architecture (both images pass the same frozen backbones):

- ViT branch: ViT-B/8 (ImageNet, timm's ``vit_base_patch8_224``); the outputs of its first five blocks
  (``vit_blocks``), class token dropped, are concatenated over channels (5 x 768) and laid out on the patch
  grid (H/8 x W/8).
- CNN branch: ResNet-50 (ImageNet); the outputs of the three bottlenecks of ``layer1`` (the first three
  ``Bottleneck`` modules the authors hook), concatenated (3 x 256 channels, H/4 x W/4).
- Deformable fusion (``deform_net``): the reference's ViT map, nearest-upsampled to the CNN map's size, gives
  the offsets (a 3x3 convolution to 2 x 9 channels) of a 3x3 deformable convolution over the CNN map; the
  same reference offsets are used for the distorted image's CNN map and the reference's (as the code does).
  Then conv 3x3 stride 2 -> ReLU -> conv 3x3 (stride 1 for patch 8, 2 for patch 16) back to the ViT grid.
- Patch-weighted score (``regressor``): per image, [ViT map, fused CNN map] -> 1x1 conv to 256 channels;
  [dist - ref, dist, ref] -> conv 3x3 (1024) -> ReLU -> conv 3x3 (512) -> conv 3x3 (256) -> ReLU; a score
  branch (1x1 conv) and a weight branch (1x1 conv, sigmoid); the score is sum(score * weight) / sum(weight).

Only the deformable fusion and the score head train (the authors' optimiser holds only those); the
backbones' parameters are frozen and their batch norms use their ImageNet statistics.

Choices where the description leaves one (or where iqarena differs from the code), and why:

- Blocks the backbones do not need are not built: the ViT stops after its last used block (block 4; its
  remaining seven blocks, final norm and head do not affect the score) and the ResNet after ``layer1``. The
  outputs equal the authors' full networks; memory and time are much smaller.
- Input normalisation: (x - 0.5) / 0.5 for both backbones, as the authors' data loader does (data/pipal.py);
  pyiqa uses the ImageNet mean and deviation instead. ViT-B/8's own normalisation is 0.5/0.5.
- ImageNet weights: the authors' timm 0.5.4 resolves ``vit_base_patch8_224`` to the AugReg in21k -> in1k
  checkpoint (catalogue ``vit_base_patch8_224``, the same numbers as timm's converted file) and ``resnet50``
  to the "ResNet strikes back" A1 weights (``resnet50_a1_0-14fe96d1.pth``), which are not in iqarena's
  catalogue. By default the CNN gets torchvision's ImageNet ResNet-50 (catalogue ``resnet50``; the same
  architecture and key names); ``cnn_weights=PATH`` loads timm's A1 file instead, to match the code.
- Inputs whose sides are not multiples of the patch size are cut at the right and bottom to the nearest
  multiple (those pixels are dropped by the ViT's patch convolution anyway), so that the CNN map, halved by
  the fusion's strided convolution, lands on the ViT's grid. Sizes other than 224: the position embeddings
  are resampled (bicubic), as timm does.
- Grey images are repeated to three channels.
- Test time (options ``test_crop``, ``test_layout``, ``test_crops``): the authors' test.py averages 20 random
  224x224 crops (``n_ensemble=20``); the recipe sets test_crop=224, layout ``random``, 20 crops (seeded: the
  same positions for every image of a size, where the code draws new ones each batch). Their validation
  during training uses the five-point crops (corners and centre), iqarena's ``five`` layout. The model's own
  defaults score the whole image (test_crop=0), like iqarena's other models.
- Training (recipe): random 224 crops with horizontal flips, MSE, Adam lr 1e-4 with weight decay 1e-5,
  cosine annealing (train.py, options/train_options.py). The code's cosine restarts every 50 iterations
  (``T_max=50`` counted in steps); iqarena's schedule is one cosine over the run (recipes/ahiq_pipal.toml says
  so). AdamW stands in for Adam with L2 weight decay (decoupled decay; the same at this small decay).
- Trained weights: the authors publish theirs on Google Drive (``ahiq_pipal/epoch*.pth``; pyiqa re-hosts one
  as ``AHIQ_vit_p8_epoch33-da3ea303.pth``); ``trained=PATH`` loads such a file (its
  ``regressor_model_state_dict`` and ``deform_net_model_state_dict``), a pyiqa state_dict, or iqarena's own
  trained part. None is in the catalogue; the entry is ``trained=False``.
- Labels: the head predicts standardised labels (iqarena's convention); the authors min-max scale them to
  [0, 1]. The ranking is the same.

Small setting (the CPU learning check): ``vit_dim=64, vit_heads=4, vit_blocks=(0, 1), img_size=48,
cnn="resnet18", cnn_blocks=2, fuse_hidden=32, channels=32, hidden=64, pretrained=False`` keeps every part
(ViT blocks -> offsets, ResNet ``layer1`` blocks -> deformable fusion, the three-way difference head with
its score and weight branches) at a fraction of the width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import ResNet, VisionTransformer, from_state_dict, resnet18, resnet50
from ..errors import InputError
from ..metrics.registry import register
from .base import IQAModel, check_pair
from .layers import DeformConv2d

CNNS = {"resnet50": (resnet50, 256), "resnet18": (resnet18, 64)}  # layer1's output channels


def _cnn_trunk(name: str) -> ResNet:
    """The stem and ``layer1`` of a torchvision-layout ResNet (the later stages are not built)."""
    net = CNNS[name][0](include_top=False)
    del net.layer2, net.layer3, net.layer4
    return net


class DeformFusion(nn.Module):
    """Deformable convolution over the CNN map with offsets from the (reference's) ViT map, then back to the
    ViT grid. Parameter names as the authors' ``deform_fusion``."""

    def __init__(self, vit_channels: int, cnn_channels: int, hidden: int = 512, patch_size: int = 8):
        super().__init__()
        self.conv_offset = nn.Conv2d(vit_channels, 2 * 3 * 3, 3, 1, 1)
        self.deform = DeformConv2d(cnn_channels, cnn_channels, 3, 1, 1)
        self.conv1 = nn.Sequential(nn.Conv2d(cnn_channels, hidden, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(hidden, cnn_channels, 3, stride=patch_size // 8, padding=1))

    def forward(self, cnn: torch.Tensor, vit: torch.Tensor) -> torch.Tensor:
        offset = self.conv_offset(F.interpolate(vit, size=cnn.shape[-2:], mode="nearest"))
        return self.conv1(self.deform(cnn, offset))


class PatchScore(nn.Module):
    """Three-way difference features, then a score map and a weight map; the weighted mean score. Parameter
    names as the authors' ``Pixel_Prediction``."""

    def __init__(self, in_channels: int, channels: int = 256, hidden: int = 1024):
        super().__init__()
        self.down_channel = nn.Conv2d(in_channels, channels, 1)
        self.feat_smoothing = nn.Sequential(nn.Conv2d(3 * channels, hidden, 3, padding=1), nn.ReLU(),
                                            nn.Conv2d(hidden, 2 * channels, 3, padding=1))
        self.conv1 = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.ReLU())
        self.conv_attent = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())
        self.conv = nn.Sequential(nn.Conv2d(channels, 1, 1))

    def maps(self, f_dis: torch.Tensor, f_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score map, weight map), each (N, 1, h, w), from the concatenated [ViT, fused CNN] maps."""
        d, r = self.down_channel(f_dis), self.down_channel(f_ref)
        feat = self.conv1(self.feat_smoothing(torch.cat([d - r, d, r], dim=1)))
        return self.conv(feat), self.conv_attent(feat)

    def forward(self, f_dis: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        score, weight = self.maps(f_dis, f_ref)
        return (score * weight).sum((1, 2, 3)) / weight.sum((1, 2, 3))


def authors_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key mapping to this model's names from: the authors' checkpoint (``regressor_model_state_dict`` and
    ``deform_net_model_state_dict``), or pyiqa's ``AHIQ`` state_dict (``resnet50.*`` -> ``cnn.*``; ``vit.*``,
    ``deform_net.*``, ``regressor.*`` unchanged). Tensors this model does not have (the ViT's later blocks,
    the ResNet's later stages) are left for the loader to ignore."""
    if "regressor_model_state_dict" in sd or "deform_net_model_state_dict" in sd:
        out = {f"regressor.{k}": v for k, v in sd.get("regressor_model_state_dict", {}).items()}
        out.update({f"deform_net.{k}": v for k, v in sd.get("deform_net_model_state_dict", {}).items()})
        return out
    return {("cnn." + k[len("resnet50."):] if k.startswith("resnet50.") else k): v for k, v in sd.items()}


def _min_side(o: dict) -> int:
    return max(int(o.get("patch_size", 8)), int(o.get("test_crop", 0) or 0))


@register("ahiq", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=("vit_base_patch8_224", "resnet50"), trained=False,
          paper="Lao et al., Attentions Help CNNs See Better: Attention-based Hybrid Image Quality Assessment "
                "Network, CVPRW 2022 (NTIRE 2022 FR winner)",
          code="https://github.com/IIGROUP/AHIQ (MIT)", colour="RGB; grey repeated to three channels",
          min_size=_min_side, size_note="the ViT's patch size (or the test crop)")
class AHIQ(IQAModel):
    """Full-reference quality (higher is better) from ViT-B/8 and ResNet-50 features fused by a deformable
    convolution, scored patch-wise with learned weights."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True,
                 vit_weights: str = "vit_base_patch8_224", cnn_weights: str = "",
                 vit_blocks: Sequence[int] = (0, 1, 2, 3, 4), vit_dim: int = 768, vit_heads: int = 12,
                 patch_size: int = 8, img_size: int = 224, cnn: str = "resnet50", cnn_blocks: int = 3,
                 fuse_hidden: int = 512, channels: int = 256, hidden: int = 1024, test_crop: int = 0,
                 test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if patch_size not in (8, 16):
            raise InputError(f"AHIQ: patch_size must be 8 or 16 (the fusion's strides), got {patch_size}.")
        if cnn not in CNNS:
            raise InputError(f"AHIQ: cnn must be one of {', '.join(CNNS)}, got {cnn!r}.")
        self.vit_blocks = tuple(int(i) for i in vit_blocks)
        if not self.vit_blocks or min(self.vit_blocks) < 0:
            raise InputError(f"AHIQ: vit_blocks must be block indices >= 0, got {list(vit_blocks)}.")
        layer1 = {"resnet50": 3, "resnet18": 2}[cnn]
        if not 1 <= cnn_blocks <= layer1:
            raise InputError(f"AHIQ: cnn_blocks must be 1..{layer1} (the blocks of {cnn}'s layer1), got {cnn_blocks}.")
        self.patch_size, self.cnn_blocks = patch_size, cnn_blocks
        vit_kw = {"img_size": img_size, "patch_size": patch_size, "embed_dim": vit_dim,
                  "depth": max(self.vit_blocks) + 1, "num_heads": vit_heads, "include_top": False}
        load = pretrained or bool(trained)
        if load:
            from ..weights import load_state_dict

            self.vit = from_state_dict(lambda: VisionTransformer(**vit_kw), load_state_dict(vit_weights),
                                       f"ViT weights {vit_weights}")
            cnn_file = cnn_weights or cnn
            self.cnn = from_state_dict(lambda: _cnn_trunk(cnn), load_state_dict(cnn_file), f"{cnn} weights {cnn_file}")
        else:
            self.vit, self.cnn = VisionTransformer(**vit_kw), _cnn_trunk(cnn)
        self.vit.norm = nn.Identity()  # the final norm acts on what leaves the last block: not used here
        for p in [*self.vit.parameters(), *self.cnn.parameters()]:
            p.requires_grad_(False)
        vit_channels = vit_dim * len(self.vit_blocks)
        cnn_channels = CNNS[cnn][1] * cnn_blocks
        self.deform_net = DeformFusion(vit_channels, cnn_channels, fuse_hidden, patch_size)
        self.regressor = PatchScore(vit_channels + cnn_channels, channels, hidden)
        if trained:
            self.load_trained(trained)

    def load_trained(self, source: str | Path) -> None:
        """The trained part: the authors' checkpoint, a pyiqa state_dict or iqarena's own (see
        ``authors_state_dict``); InputError for tensors this model does not have or that do not fit."""
        from ..weights import load_state_dict

        sd = authors_state_dict(load_state_dict(source))
        own = self.state_dict()
        sd = {k: v for k, v in sd.items() if k in own or not k.startswith(("vit.", "cnn."))}
        unknown = [k for k in sd if k not in own]
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
                 if k in own and v.shape != own[k].shape]
        if unknown or wrong:
            raise InputError(f"{source} does not fit this AHIQ: "
                             f"{'; '.join(wrong[:3]) or 'unknown tensors ' + ', '.join(unknown[:3])}.")
        self.load_state_dict(sd, strict=False)

    # --- features -----------------------------------------------------------------------------------------

    def vit_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C * blocks, H / p, W / p): the chosen blocks' patch tokens on the patch grid."""
        gh, gw = self.vit.grid_size(*x.shape[-2:])
        seq = torch.cat([t[:, 1:] for t in self.vit.block_outputs(x, self.vit_blocks)], dim=2)
        return seq.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)

    def cnn_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C * blocks, H / 4, W / 4): the outputs of the first ``cnn_blocks`` blocks of ``layer1``."""
        net = self.cnn
        x = net.maxpool(F.relu(net.bn1(net.conv1(x))))
        out = []
        for block in net.layer1[: self.cnn_blocks]:
            x = block(x)
            out.append(x)
        return torch.cat(out, dim=1)

    def _check(self, dist: torch.Tensor, ref: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch_size
        check_pair("ahiq", dist, ref, p, "one ViT patch")
        h, w = dist.shape[-2:]
        h, w = h // p * p, w // p * p
        return dist[..., :h, :w].expand(-1, 3, -1, -1), ref[..., :h, :w].expand(-1, 3, -1, -1)

    def score_maps(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score map, weight map) of the patch-wise head, each (N, 1, H / p, W / p) (raw: standardised)."""
        dist, ref = self._check(dist, ref)
        n = dist.shape[0]
        x = (torch.cat([dist, ref]) - 0.5) / 0.5
        vit = self.vit_map(x)
        cnn = self.cnn_map(x)
        vit_ref = vit[n:]
        fused = self.deform_net(cnn, torch.cat([vit_ref, vit_ref]))
        feats = torch.cat([vit, fused], dim=1)
        return self.regressor.maps(feats[:n], feats[n:])

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        s, w = self.score_maps(dist, ref)
        raw = (s * w).sum((1, 2, 3)) / w.sum((1, 2, 3))
        return self.unstandardise(raw)
