"""pieapp_alexnet: PieAPP with an ImageNet AlexNet and anti-aliased (BlurPool) pooling, team tsubota's entry.

NTIRE 2021 Perceptual IQA challenge, team tsubota (Koki Tsubota, Hiroaki Akutsu, Kiyoharu Aizawa), rank 13
of 13 (test set: SRCC 0.5955, PLCC 0.6098, main score 1.2053; Gu et al., "NTIRE 2021 Challenge on
Perceptual Image Quality Assessment", CVPR-W 2021, Section 5.11 and Table 1). The report: PieAPP
(Prashnani et al., "PieAPP: Perceptual image-error assessment through pairwise preference", CVPR 2018)
with its VGG-like feature network replaced by an ImageNet-pretrained AlexNet (Krizhevsky 2014) and max
pooling replaced by BlurPool (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019);
trained on 36 random 64x64 patches per image (first on the PieAPP set, then fine-tuned on PIPAL); tested
with a 64x64 sliding window of stride 6; "the rest of settings are same with PieAPP". The team's code is
not public. BlurPool follows the paper and the reference code's conventions (github.com/adobe/antialiased-cnns,
antialiased_cnns/blurpool.py, CC BY-NC-SA 4.0; read, not copied): max pooling evaluated densely (stride 1),
then a normalised binomial filter with stride 2 and reflect padding of ``(k-1)//2`` before and
``ceil((k-1)/2)`` after; benchmarks/parity_pieapp_alexnet.py checks this module against that code.

The model, per patch pair (the same 64x64 window of the distorted and the reference image): AlexNet
features of both (torchvision's layout, so the ImageNet file ``alexnet`` loads as it is: the BlurPool
filter has no parameters), the five ReLU outputs flattened and concatenated (multi-scale features, as
PieAPP concatenates its taps) and the last one alone (coarse features); as PieAPP,
``error = ref_score_subtract(0.01 * fc2_score(relu(fc1_score(f_ref - f_dist))))`` and
``weight = fc2_weight(relu(fc1_weight(c_ref - c_dist))) + 1e-6``; the image's error is the weighted mean
over its patches and the score (higher is better) is its negative, on the labels' scale.

Choices where the description leaves one (each an option where it matters):

- AlexNet taps: the five ReLU outputs (relu1..relu5, LPIPS's taps; PieAPP taps after each pooling
  stage). The last pooling (after relu5) is never used, so 64x64 patches need no pooling of a 1x1 map.
- BlurPool filter size ``blur=4`` ([1, 3, 3, 1], the antialiased-cnns package's default); 3 gives
  [1, 2, 1]. Only the pooling layers are anti-aliased (the strided first convolution is left as it is,
  the paper's "pool only" variant), so the torchvision ImageNet weights fit unchanged.
- Input: RGB normalised with ImageNet's mean and deviation (what the pretrained AlexNet expects; PieAPP's
  own network took BGR 0..255).
- Patch weights: PieAPP's published code adds 1e-6 to a linear output, which can be negative and make the
  weighted mean divide by a sum near zero when trained from scratch; ``positive_weights=True`` (default)
  passes it through softplus first; False is PieAPP's formula.
- Whole network trained (``train_backbone=True``; PieAPP trains its whole network; the recipe gives the
  backbone a lower learning rate).
- Test windows: every ``stride`` pixels from 0, plus the last position that fits, on both axes (covers
  the border; PieAPP's demo code visits its own chunked grid). Training: ``train_patches`` random windows
  per image, the same for the distorted and the reference image.
"""

from __future__ import annotations

import math
from math import comb
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import AlexNet, load_weights
from ..errors import InputError
from ..metrics.lpips import as_rgb
from ..metrics.registry import register
from ..weights import load_state_dict
from .base import IQAModel, check_pair, load_trained
from .trunk import imagenet_normalise



def binomial_filter(size: int) -> torch.Tensor:
    """The normalised 2-D binomial filter of side ``size`` (outer product of Pascal's row ``size - 1``)."""
    if not 1 <= size <= 7:
        raise InputError(f"the BlurPool filter size must be 1..7 (antialiased-cnns's binomial filters), got {size}.",
                         option="blur")
    row = torch.tensor([comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    f = row[:, None] * row[None, :]
    return (f / f.sum()).float()


class BlurPool(nn.Module):
    """Anti-aliased subsampling (Zhang 2019): a fixed normalised binomial filter applied to each channel with
    ``stride``, after reflect padding of (size-1)//2 before and ceil((size-1)/2) after (antialiased-cnns's
    convention). No parameters; the filter is a non-persistent buffer (not part of a state_dict)."""

    def __init__(self, size: int = 4, stride: int = 2):
        super().__init__()
        self.size, self.stride = int(size), int(stride)
        self.pad = ((size - 1) // 2, math.ceil((size - 1) / 2))
        self.register_buffer("filt", binomial_filter(self.size)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if self.size == 1:
            return x[..., ::self.stride, ::self.stride]
        x = F.pad(x, (*self.pad, *self.pad), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype).expand(c, 1, -1, -1), stride=self.stride, groups=c)

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}"


class MaxBlurPool(nn.Sequential):
    """MaxPool (``kernel``, stride 1) then BlurPool: the anti-aliased replacement of a strided max pooling."""

    def __init__(self, kernel: int = 3, size: int = 4, stride: int = 2):
        super().__init__(nn.MaxPool2d(kernel, 1), BlurPool(size, stride))


def blur_alexnet(size: int = 4) -> AlexNet:
    """AlexNet features (torchvision's indices and names) with each max pooling replaced by MaxBlurPool."""
    net = AlexNet(include_top=False)
    for i, m in enumerate(net.features):
        if isinstance(m, nn.MaxPool2d):
            net.features[i] = MaxBlurPool(m.kernel_size, size, m.stride)
    return net


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Every ``stride`` pixels from 0 while a window fits, plus the last position that fits."""
    starts = list(range(0, length - patch + 1, stride))
    return starts if starts[-1] == length - patch else [*starts, length - patch]


def gather_patches(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) and top-left corners ``ys``, ``xs`` of shape (N, P) -> (N * P, C, size, size)."""
    r = torch.arange(size, device=x.device)
    n = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    yy = (ys[:, :, None] + r)[:, :, :, None]
    xx = (xs[:, :, None] + r)[:, :, None, :]
    p = x.permute(0, 2, 3, 1)[n, yy, xx]  # (N, P, size, size, C)
    return p.permute(0, 1, 4, 2, 3).reshape(-1, x.shape[1], size, size)


def _smallest_patch(net: AlexNet) -> int:
    """The smallest window side the network's pooling can take (reflect padding needs maps wider than it)."""
    for side in range(8, 257):
        try:
            with torch.no_grad():
                net.stages(torch.zeros(1, 3, side, side))
            return side
        except RuntimeError:
            continue
    return 257


@register("pieapp_alexnet", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          aliases=("tsubota",), weights=("alexnet",), trained=False,
          paper="NTIRE 2021 Perceptual IQA, team tsubota (rank 13): PieAPP (Prashnani et al., CVPR 2018) on an "
                "ImageNet AlexNet with BlurPool (Zhang, ICML 2019)",
          code="not public; src/iqarena/models/pieapp_alexnet.py (BlurPool as github.com/adobe/antialiased-cnns)",
          colour="RGB, ImageNet mean/std normalised; grey repeated to three channels",
          min_size=lambda o: int(o.get("patch", 64)), size_note="one patch (the patch option, 64 by default)")
class PieAPPAlexNet(IQAModel):
    """Quality (higher is better): minus PieAPP's weighted patch error on BlurPool-AlexNet features.

    ``patch``: window side; ``train_patches``: random windows per image in training; ``stride``: window step
    at test time; ``blur``: BlurPool filter size; ``hidden``: width of the fc1 layers (512 in PieAPP);
    ``chunk``: windows per forward pass at test time (memory bound)."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, patch: int = 64,
                 train_patches: int = 36, stride: int = 6, blur: int = 4, hidden: int = 512,
                 positive_weights: bool = True, train_backbone: bool = True, chunk: int = 256,
                 test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        for name, v in (("patch", patch), ("train_patches", train_patches), ("stride", stride), ("hidden", hidden),
                        ("chunk", chunk)):
            if int(v) < 1:
                raise InputError(f"{name} must be a positive integer, got {v}.", option=name)
        self.patch, self.train_patches, self.stride = int(patch), int(train_patches), int(stride)
        self.chunk, self.positive_weights = int(chunk), bool(positive_weights)
        self.backbone = blur_alexnet(blur)
        try:
            with torch.no_grad():
                taps = self.backbone.stages(torch.zeros(1, 3, self.patch, self.patch))
        except RuntimeError:
            smallest = _smallest_patch(self.backbone)
            raise InputError(f"patch {patch} is too small for AlexNet with BlurPool (filter {blur}): its pooling "
                             f"needs patches of at least {smallest} pixels.", option="patch") from None
        ms, coarse = sum(t[0].numel() for t in taps), taps[-1][0].numel()
        self.fc1_score, self.fc2_score = nn.Linear(ms, hidden), nn.Linear(hidden, 1)
        self.fc1_weight, self.fc2_weight = nn.Linear(coarse, hidden), nn.Linear(hidden, 1)
        self.ref_score_subtract = nn.Linear(1, 1)
        if pretrained or trained:
            load_weights(self.backbone, load_state_dict("alexnet"), "AlexNet ImageNet weights")
        for p in self.backbone.parameters():
            p.requires_grad_(bool(train_backbone))
        if trained:
            load_trained(self, Path(trained))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches (P, 3, s, s) in [0, 1] -> multi-scale (P, D) and coarse (P, D5) AlexNet features."""
        taps = self.backbone.stages(imagenet_normalise(x))
        return torch.cat([t.flatten(1) for t in taps], 1), taps[-1].flatten(1)

    def patch_scores(self, pd: torch.Tensor, pr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch error and weight, each (P,), of distorted and reference patches (P, 3, s, s)."""
        p = pd.shape[0]
        ms, coarse = self.features(torch.cat([pd, pr]))
        error = self.ref_score_subtract(0.01 * self.fc2_score(F.relu(self.fc1_score(ms[p:] - ms[:p]))))
        w = self.fc2_weight(F.relu(self.fc1_weight(coarse[p:] - coarse[:p])))
        w = (F.softplus(w) if self.positive_weights else w) + 1e-6
        return error.squeeze(1), w.squeeze(1)

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("pieapp_alexnet", dist, ref, self.patch, "one patch")
        dist, ref = as_rgb(dist), as_rgb(ref)
        n, _, h, w = dist.shape
        s = self.patch
        if self.training:
            ys = torch.randint(0, h - s + 1, (n, self.train_patches), device=dist.device)
            xs = torch.randint(0, w - s + 1, (n, self.train_patches), device=dist.device)
            error, weight = self.patch_scores(gather_patches(dist, ys, xs, s), gather_patches(ref, ys, xs, s))
        else:
            gy, gx = torch.meshgrid(torch.tensor(window_starts(h, s, self.stride), device=dist.device),
                                    torch.tensor(window_starts(w, s, self.stride), device=dist.device), indexing="ij")
            ys, xs = gy.reshape(1, -1).expand(n, -1), gx.reshape(1, -1).expand(n, -1)
            pd, pr = gather_patches(dist, ys, xs, s), gather_patches(ref, ys, xs, s)
            parts = [self.patch_scores(pd[i:i + self.chunk], pr[i:i + self.chunk])
                     for i in range(0, pd.shape[0], self.chunk)]
            error, weight = torch.cat([e for e, _ in parts]), torch.cat([w_ for _, w_ in parts])
        error, weight = error.view(n, -1), weight.view(n, -1)
        return self.unstandardise(-(error * weight).sum(1) / weight.sum(1))
