"""WaDIQaM-FR: weighted average deep image quality measure, full-reference.

Bosse, Maniry, Mueller, Wiegand, Samek, "Deep neural networks for no-reference and full-reference image
quality assessment", IEEE TIP 2018. Original code and weights: https://github.com/dmaniry/deepIQA
(Chainer; fr_model.py, evaluate.py, models/fr_{tid,live}_weighted.model).

As the original evaluate.py: RGB 0..255 floats, no normalisation; non-overlapping 32x32 patches from the
top-left corner (a remainder narrower than 32 pixels is dropped); ten 3x3 convolutions with five 2x2
max-poolings give 512 features per patch; ``concat(f_dist - f_ref, f_dist, f_ref)`` feeds the quality
branch (fc1, ReLU, fc2) and the weight branch (fc1_a, ReLU, fc2_a, ReLU, + 1e-6); the image's score is the
weighted mean. ``wadiqam_fr`` uses the TID2013 model (predicts MOS, higher is better);
``wadiqam_fr_live`` the LIVE model (predicts DMOS, lower is better). Grey input is repeated to three
channels. The published weights are Chainer HDF5 files, read with h5py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import from_state_dict
from ..errors import InputError
from ..weights import load_state_dict
from .lpips import as_rgb, frozen
from .pieapp import extract_patches, weighted_patch_mean
from .registry import register

PATCH = 32


class WaDIQaMFRNet(nn.Module):
    """The deepIQA FRModel with the Chainer file's names (conv1..conv10, fc1, fc2, fc1_a, fc2_a)."""

    def __init__(self):
        super().__init__()
        chans = [3, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
        for i in range(10):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
        self.fc1, self.fc2 = nn.Linear(1536, 512), nn.Linear(512, 1)
        self.fc1_a, self.fc2_a = nn.Linear(1536, 512), nn.Linear(512, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 11, 2):
            x = F.relu(getattr(self, f"conv{i + 1}")(F.relu(getattr(self, f"conv{i}")(x))))
            x = F.max_pool2d(x, 2)
        return x.flatten(1)

    def patch_scores(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = dist.shape[0]
        f = self.features(torch.cat([dist, ref]))
        h = torch.cat([f[:p] - f[p:], f[:p], f[p:]], 1)
        q = self.fc2(F.relu(self.fc1(h)))
        a = F.relu(self.fc2_a(F.relu(self.fc1_a(h)))) + 1e-6
        return q.squeeze(1), a.squeeze(1)


_PAPER = "Bosse et al., Deep neural networks for no-reference and full-reference image quality assessment, TIP 2018"
_CODE = "https://github.com/dmaniry/deepIQA (evaluate.py, fr_model.py)"
_COLOUR = "RGB 0..255 (grey repeated to 3 channels)"
_SIZE = dict(min_size=PATCH, size_note="one 32x32 patch")


@register("wadiqam_fr", kind="fr", higher_better=True, score_range=(0, 9), paper=_PAPER, code=_CODE,
          colour=_COLOUR, weights=("wadiqam-fr-tid",), model="tid", **_SIZE)
@register("wadiqam_fr_live", kind="fr", higher_better=False, score_range=(0, 100), paper=_PAPER, code=_CODE,
          colour=_COLOUR, weights=("wadiqam-fr-live",), model="live", **_SIZE)
class WaDIQaMFR(nn.Module):
    """WaDIQaM-FR quality: TID2013 MOS (``model='tid'``) or LIVE DMOS (``model='live'``).
    ``chunk``: patches per forward pass; ``weights``: catalogue name or file path (Chainer HDF5 or torch)."""

    def __init__(self, model: str = "tid", chunk: int = 1024, weights: str | Path | None = None):
        super().__init__()
        if model not in ("tid", "live"):
            raise InputError(f"model must be 'tid' or 'live', got {model!r}.")
        self.chunk = int(chunk)
        sd = load_state_dict(weights or f"wadiqam-fr-{model}")
        self.net = frozen(from_state_dict(WaDIQaMFRNet, sd, "WaDIQaM-FR weights"))

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        n, _, h, w = dist.shape
        if h < PATCH or w < PATCH:
            raise InputError(f"WaDIQaM-FR needs images of at least {PATCH}x{PATCH} pixels, got {h}x{w}.")
        ys, xs = tuple(range(0, h - PATCH + 1, PATCH)), tuple(range(0, w - PATCH + 1, PATCH))
        rgb = lambda t: as_rgb(t).to(self.net.conv1.weight.dtype) * 255  # noqa: E731
        pd, pr = extract_patches(rgb(dist), ys, xs, PATCH), extract_patches(rgb(ref), ys, xs, PATCH)
        return weighted_patch_mean(self.net, pd, pr, n, self.chunk)
