"""PieAPP v0.1: perceptual image-error assessment through pairwise preference.

Prashnani, Cai, Mostofi, Sen, "PieAPP: Perceptual image-error assessment through pairwise preference",
CVPR 2018. Original code: https://github.com/prashnani/PerceptualImageError (model/PieAPPv0pt1_PT.py,
test_PieAPP_PT.py); weights PieAPPv0.1.pth from the authors' site.

As the original test code: images as OpenCV reads them (BGR, 0..255 floats, no normalisation); 64x64
patches on a grid with stride 27 ("sparse"; ``stride=6`` is the demo's "dense" default), with the
positions the demo's sub-image loop produces (usually every stride step from 0 while a whole patch
fits); per patch an error ``w * 0.01 * fc2(relu(fc1(ref_features - dist_features))) + b`` and a weight
``fc2_w(relu(fc1_w(ref_coarse - dist_coarse))) + 1e-6``; the image's error is the weighted mean. The
official values in tests/data/official_scores.csv match stride 27 (pyiqa's published calibration of the
same pairs gives the same four decimals with stride 27). Error: lower is better; identical images give
about 0 (the learned offset ``b``). Grey input is repeated to three channels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import from_state_dict
from ..errors import InputError
from ..weights import load_state_dict
from .lpips import as_rgb, channels_last, frozen
from .registry import register

PATCH = 64


@lru_cache(maxsize=64)
def demo_positions(length: int, stride: int, patch: int = PATCH, per_chunk: int = 10) -> tuple[int, ...]:
    """Patch offsets along one axis as test_PieAPP_PT.py visits them: the grid ``arange(0, L - patch, s)``
    plus ``L - patch`` is cut into chunks of 10; each chunk's sub-image is sampled every ``s`` pixels."""
    if length < patch:
        raise InputError(f"PieAPP needs images of at least {patch}x{patch} pixels, got a side of {length}.")
    loc = list(range(0, length - patch, stride)) + [length - patch]
    out: list[int] = []
    for c in range(-(-len(loc) // per_chunk)):
        start = loc[per_chunk * c]
        if per_chunk * (c + 1) >= len(loc):
            size = length - start
        else:
            size = loc[per_chunk * (c + 1)] - start + patch - stride
        out += [start + k for k in range(0, size - patch + 1, stride)]
    return tuple(out)


class PieAPPNet(nn.Module):
    """The PieAPP v0.1 network with the published file's parameter names."""

    def __init__(self):
        super().__init__()
        chans = [(3, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 256), (256, 256),
                 (256, 256), (256, 512), (512, 512)]
        for i, (cin, cout) in enumerate(chans, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1))
        self.fc1_score = nn.Linear(120832, 512)
        self.fc2_score = nn.Linear(512, 1)
        self.fc1_weight = nn.Linear(2048, 512)
        self.fc2_weight = nn.Linear(512, 1)
        self.ref_score_subtract = nn.Linear(1, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-scale features (120832 per patch) and the coarsest ones (2048)."""
        taps = []
        x = F.relu(self.conv1(x))
        for a, b in ((2, 3), (4, 5), (6, 7), (8, 9), (10, 11)):
            x = F.relu(getattr(self, f"conv{b}")(F.max_pool2d(F.relu(getattr(self, f"conv{a}")(x)), 2)))
            taps.append(x.flatten(1))
        return torch.cat(taps, 1), taps[-1]

    def patch_scores(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch error and weight, each (P,), for patches (P, 3, 64, 64) in BGR 0..255."""
        p = dist.shape[0]
        ms, coarse = self.features(torch.cat([dist, ref]))
        score = self.ref_score_subtract(0.01 * self.fc2_score(F.relu(self.fc1_score(ms[p:] - ms[:p]))))
        weight = self.fc2_weight(F.relu(self.fc1_weight(coarse[p:] - coarse[:p]))) + 1e-6
        return score.squeeze(1), weight.squeeze(1)


def extract_patches(x: torch.Tensor, ys: tuple[int, ...], xs: tuple[int, ...], size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N * len(ys) * len(xs), C, size, size), row-major over (y, x) offsets."""
    r = torch.arange(size, device=x.device)
    yi = (torch.tensor(ys, device=x.device)[:, None] + r)[:, None, :, None]
    xi = (torch.tensor(xs, device=x.device)[:, None] + r)[None, :, None, :]
    p = x[:, :, yi, xi]  # (N, C, Py, Px, size, size)
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1], size, size)


def weighted_patch_mean(net: nn.Module, pd: torch.Tensor, pr: torch.Tensor, n: int, chunk: int) -> torch.Tensor:
    """Per image, the mean of ``net.patch_scores`` errors weighted by its weights, patches in chunks."""
    parts = [net.patch_scores(channels_last(pd[i:i + chunk]), channels_last(pr[i:i + chunk]))
             for i in range(0, pd.shape[0], chunk)]
    score = torch.cat([s for s, _ in parts]).view(n, -1)
    weight = torch.cat([w for _, w in parts]).view(n, -1)
    return (score * weight).sum(1) / weight.sum(1)


@register("pieapp", kind="fr", higher_better=False, score_range=(-1, 10),
          paper="Prashnani et al., PieAPP: Perceptual image-error assessment through pairwise preference, CVPR 2018",
          code="https://github.com/prashnani/PerceptualImageError (test_PieAPP_PT.py)",
          colour="BGR 0..255 as OpenCV reads it (grey repeated to 3 channels)", weights=("pieapp",),
          min_size=PATCH, size_note="one 64x64 patch")
class PieAPP(nn.Module):
    """PieAPP v0.1 error (lower is better). ``stride`` 27 (sparse) or 6 (dense, the demo's default);
    ``chunk``: patches per forward pass (memory bound); ``weights``: catalogue name or file path."""

    def __init__(self, stride: int = 27, chunk: int = 512, weights: str | Path | None = None):
        super().__init__()
        if stride < 1:
            raise InputError(f"stride must be a positive number of pixels, got {stride}.")
        self.stride, self.chunk = int(stride), int(chunk)
        self.net = frozen(from_state_dict(PieAPPNet, load_state_dict(weights or "pieapp"), "PieAPP weights"))

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        n, _, h, w = dist.shape
        ys, xs = demo_positions(h, self.stride), demo_positions(w, self.stride)
        bgr = lambda t: as_rgb(t).flip(1).to(self.net.conv1.weight.dtype) * 255  # noqa: E731
        pd = extract_patches(bgr(dist), ys, xs, PATCH)
        pr = extract_patches(bgr(ref), ys, xs, PATCH)
        return weighted_patch_mean(self.net, pd, pr, n, self.chunk)
