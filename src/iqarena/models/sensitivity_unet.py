"""si_unet: SI Analytics' distortion-sensitivity UNet (NTIRE 2021 Perceptual IQA, rank 12), after DeepQA.

Team SI Analytics (Ahn, Yoon) in Gu et al., "NTIRE 2021 Challenge on Perceptual Image Quality Assessment",
CVPR-W 2021, Section 5.10 (PIPAL test: SRCC 0.6744, PLCC 0.6535, main score 1.3280), detailed in Ahn, Choi,
Yoon, "Deep Learning-based Distortion Sensitivity Prediction for Full-Reference Image Quality Assessment",
CVPR-W 2021. Their code is not public (no repository found); this file follows the report, and for what the
report takes from DeepQA (Kim and Lee, "Deep Learning of Human Visual Sensitivity in Image Quality
Assessment Framework", CVPR 2017) a reading of Kim's released DeepQA code
(https://github.com/jongyookim/IQA_DeepQA_FR_release, ``models/FR_sens_1.py``; no licence file).

What the report fixes:

- the spatial error map ``e = log(1 / ((X_ref - X_dis)^2 + eps / 255^2)) / log(255^2 / eps)``, eps = 1, on the
  grey-scale images in [0, 1]: 1 where the images agree, about 0 at the largest error (DeepQA's
  ``log_diff_fn`` with eps = 1);
- a network predicts a visual sensitivity map from the reference, the distorted image and the error map; it
  is a UNet (Ronneberger et al., MICCAI 2015), so the map keeps the input's resolution (DeepQA's was 1/4),
  with more convolutions in the encoder than DeepQA for a larger receptive field;
- score: the Hadamard product of the sensitivity map and the error map, then global average pooling;
- training: labels normalised to [0, 1], images scored outside [0.4, 0.8] oversampled, mean squared error
  "and L2 loss" (recipes/si_unet_pipal.toml says how each is read).

Choices where it leaves one:

- **Grey scale**: BT.601 luma (MATLAB ``rgb2gray``'s weights) without rounding to 8 bits.
- **Network inputs**: grey distorted and reference images scaled to [-1, 1] and the error map, stacked as
  three channels (DeepQA normalised the distorted image by subtracting a low-pass copy and had no reference
  input).
- **UNet**: ``depth`` (4) poolings, ``width`` (32) channels at full resolution doubling per level,
  ``encoder_convs`` (3) 3x3 convolutions per encoder level against 2 per decoder level (the report's "more
  convolution layers in the encoding network"), LeakyReLU 0.2 (DeepQA's), 2x2 transposed convolutions up,
  no batch norm (DeepQA has none). Inputs whose sides are not multiples of 2^depth are padded by edge
  replication and the map cropped back.
- **Sensitivity output**: a 1x1 convolution and ReLU with its bias starting at 1, so the map starts near 1
  everywhere (DeepQA's last layer).
- **Score regression**: the report pools the product into the score; labels here are standardised by the
  trainer, so one learned scale and offset (``a * mean + b``, a starts at 1) follow the pooling (DeepQA had two
  small dense layers there).
- **Total variation**: DeepQA regularised the sensitivity map by its Sobel total variation (power 3, weight
  1e-2); the report does not say whether SI Analytics kept it. ``tv_weight`` (default 0) adds it as the
  model's auxiliary loss.

The small setting of the CPU learning check keeps the structure with fewer and narrower levels
(``width=8, depth=2, encoder_convs=2``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..metrics.registry import register
from ..ops.color import rgb2gray
from .base import IQAModel, check_pair, load_trained

EPS = 1.0
_SOBEL = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def error_map(dist: torch.Tensor, ref: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The report's spatial error map of grey-scale images in [0, 1] (N, 1, H, W):
    ``log(1 / ((ref - dist)^2 + eps / 255^2)) / log(255^2 / eps)``, in [~0, 1], 1 where they agree."""
    d2 = (ref - dist).pow(2)
    return -torch.log(d2 + eps / 255.0 ** 2) / math.log(255.0 ** 2 / eps)


def total_variation(x: torch.Tensor, power: float = 3.0) -> torch.Tensor:
    """DeepQA's regulariser: ``mean((g_y^2 + g_x^2)^(power / 2))`` of Sobel gradients (valid part) of (N, 1, H, W)."""
    k = _SOBEL.to(x)
    g = F.conv2d(x, torch.stack([k, k.t()])[:, None])
    return (g.pow(2).sum(1) + 1e-12).pow(power / 2).mean()


def _convs(c_in: int, c_out: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class SensitivityUNet(nn.Module):
    """(N, 3, H, W) -> (N, 1, H, W) sensitivity >= 0; H and W multiples of 2^depth."""

    def __init__(self, width: int = 32, depth: int = 4, encoder_convs: int = 3, decoder_convs: int = 2):
        super().__init__()
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_convs(3 if i == 0 else chans[i - 1], chans[i], encoder_convs)
                                   for i in range(depth + 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth)])
        self.merge = nn.ModuleList([_convs(2 * chans[i], chans[i], decoder_convs) for i in range(depth)])
        self.out = nn.Conv2d(chans[0], 1, 1)
        nn.init.constant_(self.out.bias, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return F.relu(self.out(x))


@register("si_unet", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=(), trained=False, aliases=("si_analytics", "sensitivity_unet"),
          paper="Ahn, Choi & Yoon, Deep Learning-based Distortion Sensitivity Prediction for Full-Reference IQA, "
                "CVPR-W 2021 (NTIRE 2021 team SI Analytics, rank 12); after DeepQA (Kim & Lee, CVPR 2017)",
          code="not public; src/iqarena/models/sensitivity_unet.py",
          colour="grey (BT.601 luma of RGB input)", min_size=1,
          size_note="any size: sides are padded to a multiple of 2^depth and the map cropped back")
class SIUNet(IQAModel):
    """Quality (higher is better) as the mean of a predicted sensitivity map times the error map."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, width: int = 32, depth: int = 4, encoder_convs: int = 3,
                 decoder_convs: int = 2, tv_weight: float = 0.0, test_crop: int = 0, test_layout: str = "five",
                 test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if min(int(width), int(encoder_convs), int(decoder_convs)) < 1 or int(depth) < 0:
            raise InputError(f"si_unet needs width, encoder_convs, decoder_convs >= 1 and depth >= 0; got {width}, "
                             f"{encoder_convs}, {decoder_convs}, {depth}.")
        if not (math.isfinite(tv_weight) and tv_weight >= 0):
            raise InputError(f"tv_weight must be a finite number >= 0, got {tv_weight}.", option="tv_weight")
        self.depth, self.tv_weight = int(depth), float(tv_weight)
        self.net = SensitivityUNet(int(width), self.depth, int(encoder_convs), int(decoder_convs))
        self.regress = nn.Linear(1, 1)
        with torch.no_grad():
            self.regress.weight.fill_(1.0)
            self.regress.bias.zero_()
        self._last_map: torch.Tensor | None = None
        if trained:
            load_trained(self, Path(trained))

    def maps(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sensitivity, error) maps, (N, 1, H, W) each, of images in [0, 1]."""
        check_pair("si_unet", dist, ref)
        gd, gr = rgb2gray(dist, quantize=False), rgb2gray(ref, quantize=False)
        err = error_map(gd, gr)
        h, w = dist.shape[-2:]
        m = 2 ** self.depth
        ph, pw = -h % m, -w % m
        x = torch.cat([gd * 2 - 1, gr * 2 - 1, err], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net(x)[..., :h, :w], err

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        sens, err = self.maps(dist, ref)
        if self.training:
            self._last_map = sens
        pooled = (sens * err).mean(dim=(1, 2, 3))
        return self.unstandardise(self.regress(pooled[:, None]).squeeze(1))

    def auxiliary_loss(self, targets):
        sens, self._last_map = self._last_map, None  # the map of the forward just made, not kept beyond it
        if not self.tv_weight or sens is None or min(sens.shape[-2:]) < 3:
            return None
        return self.tv_weight * total_variation(sens)
