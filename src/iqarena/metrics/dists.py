"""DISTS: deep image structure and texture similarity.

Ding, Ma, Wang, Simoncelli, "Image quality assessment: unifying structure and texture similarity",
IEEE TPAMI 2020. Original code: https://github.com/dingkeyan93/DISTS (pip package ``DISTS_pytorch`` 0.1).

As the original: RGB in [0, 1] normalised with the ImageNet mean and std; VGG16 with its max-pooling
layers replaced by L2 pooling (3x3 Hann window [.5, 1, .5] outer product, stride 2, padding 1,
sqrt(. + 1e-12)); six feature sets (the input itself and relu1_2 .. relu5_3, 1475 channels); per
channel, texture term (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1) and structure term
(2 cov + c2) / (var_x + var_y + c2) over the whole image (c1 = c2 = 1e-6), weighted by the learned
alpha, beta (normalised by their total); score = 1 - the weighted sum. Full resolution: the
``DISTS_pytorch`` package's default, with which the official values were made; the GitHub demo's
``prepare_image(resize=True)`` (shorter side to 256 first) is not offered. Grey input is repeated to three
channels. Parity with ``DISTS_pytorch`` on the same backbone weights: docs/deep-metrics.md.

Needs the ImageNet VGG16 file (catalogue ``vgg16``) and alpha/beta (shipped with iqarena).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import VGG16, from_state_dict
from ..weights import load_state_dict
from .lpips import as_rgb, channels_last, frozen
from .registry import register


class L2Pool(nn.Module):
    """sqrt(depthwise 3x3 Hann-weighted mean of x^2), stride 2, padding 1 (DISTS's anti-aliased pooling)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        g = (a[:, None] * a[None, :]) / (a.sum() ** 2)
        self.register_buffer("filter", g.float().expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (y + 1e-12).sqrt()


@register("dists", kind="fr", higher_better=False, score_range=(0, 1),
          paper="Ding et al., Image quality assessment: unifying structure and texture similarity, TPAMI 2020",
          code="https://github.com/dingkeyan93/DISTS (DISTS_pytorch 0.1)",
          colour="RGB (grey repeated to 3 channels), ImageNet mean/std", weights=("vgg16", "dists-alpha-beta"),
          size_note="any size: its L2 pooling pads, so every VGG16 stage keeps at least one pixel")
class DISTS(nn.Module):
    """DISTS distance (lower is more similar). ``backbone`` / ``alpha_beta``: catalogue name or file path."""

    chns = (3, 64, 128, 256, 512, 512)

    def __init__(self, backbone: str | Path | None = None, alpha_beta: str | Path | None = None):
        super().__init__()
        vgg = from_state_dict(lambda: VGG16(include_top=False), load_state_dict(backbone or "vgg16"), "VGG16 backbone")
        for i, c in zip(VGG16.pool_indices[:4], (64, 128, 256, 512)):
            vgg.features[i] = L2Pool(c)
        self.net = frozen(vgg)
        ab = load_state_dict(alpha_beta or "dists-alpha-beta")
        self.register_buffer("alpha", ab["alpha"].reshape(1, -1).float())
        self.register_buffer("beta", ab["beta"].reshape(1, -1).float())
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        n = dist.shape[0]
        x = torch.cat([as_rgb(dist), as_rgb(ref)]).to(self.mean.dtype)
        feats = [x] + self.net.stages(channels_last((x - self.mean) / self.std))
        s1, s2 = [], []
        c1 = c2 = 1e-6
        for f in feats:
            mu = f.mean(dim=(2, 3))
            var = (f - mu[..., None, None]).pow(2).mean(dim=(2, 3))
            mx, my, vx, vy = mu[:n], mu[n:], var[:n], var[n:]
            cov = (f[:n] * f[n:]).mean(dim=(2, 3)) - mx * my
            s1.append((2 * mx * my + c1) / (mx * mx + my * my + c1))
            s2.append((2 * cov + c2) / (vx + vy + c2))
        total = self.alpha.sum() + self.beta.sum()
        sim = (torch.cat(s1, 1) * self.alpha).sum(1) + (torch.cat(s2, 1) * self.beta).sum(1)
        return 1 - sim / total
