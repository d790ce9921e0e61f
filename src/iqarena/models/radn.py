"""RADN: Region-Adaptive Deformable Network, full-reference IQA on patches.

Shi, Bai, Cao, Xia, Wang, Chen, Yang, "Region-Adaptive Deformable Network for Image Quality Assessment",
CVPR Workshops (NTIRE) 2021, arXiv 2104.11599. Team THUIIGROUP1919, 4th in the NTIRE 2021 Perceptual IQA
challenge (Gu et al., CVPR-W 2021, Section 5.4; PIPAL test SRCC 0.7770, PLCC 0.7709, main score 1.5480 with
an ensemble). Authors' code: https://github.com/IIGROUP/RADN (``model/RADN.py``, ``main.py``); the
repository states no licence, so nothing of it is copied here: this is a reimplementation from the report,
the paper's abstract and a reading of that code, and ``benchmarks/parity_radn.py`` checks it against their
model on seeded weights.

Architecture (per image): the image pair is cut into ``patch`` x ``patch`` patches (32 in the authors'
code). Each patch of the distorted and of the reference image goes through the same trunk of modified
residual blocks (four 3x3 convolutions with ReLU, no batch norm, the first output added to the last; the
stem is 3x3, not ResNet's 7x7), trained from scratch (no ImageNet weights). At the trunk's stride-4 map, a
3x3 convolution of the *reference* features predicts the offsets of two deformable 3x3 convolutions
(reference-oriented deformable convolution, one offset group, no modulation), one applied to the
distorted features and one to the reference features, so both are sampled where the reference's
structure is. A shared tail (a residual stage, two more convolutions, a spatial mean) turns every patch
into a vector. Patch-level attention: a non-local block (embedded-Gaussian self-attention with a zero-
initialised output projection and a residual) over the patch vectors of one image, one block for the
distorted and one for the reference. The patch features ``(d - r, d, r)`` feed two heads (WaDIQaM's): a
score and a positive weight per patch; the image's score is the weighted mean.

Contrastive pre-training (report, Section 5.4): "a two-layer fully-connected network is employed to
predict pairwise probabilities from the quality scores"; the cross-entropy against the Elo probability of
PIPAL's labels trains the network to tell which of two images is better before it is trained on the
scores. ``PairJudge`` is that network and ``auxiliary_loss`` the term (``contrastive`` > 0 turns it on):
for pairs (i, j) of images of the same reference content in a batch, ``P_ij = sigmoid(J(s_i, s_j) -
J(s_j, s_i))`` from the model's standardised scores ``s`` and ``p_ij = 1 / (1 + 10^((y_j - y_i) / 400))``
from the labels, ``-(p log P + (1 - p) log(1 - P))`` averaged over the pairs. The registered loss
``elo_ce`` is the special case of a fixed judge ``ln 10 / 400 * (pred_i - pred_j)``; the report's judge is
learned, hence this module's own. recipes/radn_pipal_pretrain.toml then recipes/radn_pipal.toml (with
``train.init`` at the first run's best.pt) are the two stages.

Choices where the sources leave one:

- The authors' public ``main.py`` trains WResNet/RADN with MSE on labels divided by the largest label;
  it has no pre-training stage. The pre-training is from the report; the judge's input and width are
  not given: it reads ``(s_i, s_j, s_i - s_j)``, 32 hidden units, LeakyReLU(0.2) (LPIPS's judge uses
  LeakyReLU(0.2) and 32 channels), and is made antisymmetric (``P_ij = 1 - P_ji``, ``P_ii = 1/2``) so
  that it orders pairs rather than learns a bias for the first image.
- Pairs for the contrastive term: images of the same reference (PIPAL's Elo comes from comparisons
  within a reference), ``contrastive_pairs = "all"`` uses every pair of the batch. ``elo_scale`` (400)
  is the Elo constant; labels that are not Elo ratings need another value.
- Test time: non-overlapping patches from the top-left corner, ``floor(H / patch)`` x ``floor(W / patch)``
  (the authors' ``NonOverlappingCropPatches``; it drops one more row or column of patches when exactly one
  side is a multiple of the patch size, which is not reproduced). Training: ``train_patches`` random
  patch positions per image (their ``RandomCropPatches``, 32), the same for the distorted and the
  reference image, drawn from torch's global generator (so a resumed run draws the same); 0 uses the
  grid in training too.
- Initialisation (theirs is PyTorch's default everywhere but the non-local output projections, which
  start at zero here too; their README reports unstable training and suggests starting from WResNet's
  weights): He-normal convolutions with zero biases (with PyTorch's default the activations of this
  batch-norm-free stack shrink 1.5-2x per stage and the scores start constant); the offset convolution
  at zero, so the deformable convolutions start as plain ones; the reference branch's deformable filter
  a copy of the distorted branch's, so ``d - r`` starts as the distortion's and not the difference of two
  random filters; the weight head's last bias at 1, so its final ReLU starts open for every patch.
- The tail ends with the spatial mean of its map (their ``avg_pool2d(x, 2)`` on the 2x2 map of a
  32-pixel patch: the same numbers), so other patch sizes (multiples of 16) work.
- ``widths``: the channels of the four parts (64, 128, 256, 512 as theirs). ``head_inputs``: which of
  ``diff`` (d - r), ``dist`` and ``ref`` the two heads read (all three, theirs, by default). The learning
  check uses (8, 16, 32, 64), 16-pixel patches on the grid, and ``head_inputs = "diff"``: from scratch on
  216 tiny images the content parts, about 25 times larger than the difference at initialisation, hold the
  heads on a content-only plateau for up to 16 epochs depending on the seed (seed 0 leaves it by epoch 5);
  reading only ``d - r`` it learns within 10 epochs for every seed tried (docs/models/radn.md).
- Their forward loops over the images of a batch; here the batch is one tensor (patches of all images
  together; the attention and the pooling per image), the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..metrics.registry import register
from .base import IQAModel, check_pair, load_trained
from .layers import DeformConv2d

STRIDE = 16  # trunk 4 x tail 4: a patch side must be a multiple of this
_LN10 = math.log(10.0)


class ResidualStage(nn.Module):
    """The modified residual block: four 3x3 convolutions with ReLU and no batch norm; the first may
    stride; the output is ``relu(conv4(...)) + relu(conv1(x))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, stride, 1)]
                                   + [nn.Conv2d(cout, cout, 3, 1, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = F.relu(self.convs[0](x))
        y = first
        for conv in self.convs[1:]:
            y = F.relu(conv(y))
        return y + first


class PatchAttention(nn.Module):
    """A non-local block over the patch vectors of each image: (N, P, C) -> (N, P, C),
    ``x + W softmax(theta(x) phi(x)^T) g(x)`` (embedded Gaussian, no scaling, ``W`` zero-initialised)."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.theta, self.phi, self.g = (nn.Linear(channels, inner) for _ in range(3))
        self.out = nn.Linear(inner, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(self.theta(x) @ self.phi(x).transpose(1, 2), dim=-1)
        return x + self.out(attn @ self.g(x))


class PairJudge(nn.Module):
    """The contrastive pre-training's two-layer network: scores (s_i, s_j) -> the logit of "i is better
    than j", antisymmetric: ``f(s_i, s_j) - f(s_j, s_i)``."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        def f(x, y):
            return self.net(torch.stack([x, y, x - y], dim=-1)).squeeze(-1)
        return f(a, b) - f(b, a)


def grid_patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, P, C, size, size): non-overlapping patches from the top-left, row by row."""
    n, c, h, w = x.shape
    gh, gw = h // size, w // size
    x = x[..., :gh * size, :gw * size].reshape(n, c, gh, size, gw, size)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c, size, size)


def random_patches(x: torch.Tensor, size: int, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) and top-left corners (N, K) -> (N, K, C, size, size)."""
    steps = torch.arange(size, device=x.device)
    rows = (ys[:, :, None] + steps)[:, :, :, None]  # (N, K, size, 1)
    cols = (xs[:, :, None] + steps)[:, :, None, :]  # (N, K, 1, size)
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    return x[batch, :, rows, cols].permute(0, 1, 4, 2, 3)  # advanced indices first: (N, K, s, s, C)


@register("radn", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=(), trained=False,
          paper="Shi et al., Region-Adaptive Deformable Network for Image Quality Assessment, CVPR-W 2021 "
                "(arXiv 2104.11599); NTIRE 2021 Perceptual IQA, team THUIIGROUP1919, 4th",
          code="https://github.com/IIGROUP/RADN (no licence stated); src/iqarena/models/radn.py",
          colour="RGB; grey repeated to three channels", min_size=lambda o: int(o["patch"]),
          size_note="one patch (the patch option, 32 by default)")
class RADN(IQAModel):
    """Full-reference quality (higher is better): a weighted mean of patch scores from reference-oriented
    deformable features and patch-level attention, trained from scratch."""

    kind = "fr"
    frozen_batchnorm = False  # there is none; nothing is pretrained

    def __init__(self, trained: bool | str = False, pretrained: bool = False, patch: int = 32,
                 train_patches: int = 32, widths: tuple[int, ...] | list[int] = (64, 128, 256, 512),
                 dropout: float = 0.5, contrastive: float = 0.0, contrastive_pairs: str = "content",
                 judge_hidden: int = 32, elo_scale: float = 400.0, head_inputs: str = "diff,dist,ref", test_crop: int = 0, test_layout: str = "five",
                 test_crops: int = 5):
        super().__init__(test_crop, test_layout, test_crops)
        if pretrained is not False and pretrained is not True:
            raise InputError(f"pretrained must be true or false, got {pretrained!r}.", option="pretrained")
        # pretrained is accepted for a uniform interface: RADN has no ImageNet part (it trains from scratch)
        if patch < STRIDE or patch % STRIDE:
            raise InputError(f"patch must be a multiple of {STRIDE} (the network's total stride), got {patch}.",
                             option="patch")
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 2:
            raise InputError(f"widths must be four channel counts >= 2 (64, 128, 256, 512 as published), got "
                             f"{widths}.", option="widths")
        if contrastive_pairs not in ("content", "all"):
            raise InputError(f"contrastive_pairs must be 'content' or 'all', got {contrastive_pairs!r}.",
                             option="contrastive_pairs")
        if contrastive < 0 or train_patches < 0 or not elo_scale > 0:
            raise InputError("contrastive and train_patches must be >= 0 and elo_scale > 0.")
        parts = tuple(p.strip() for p in head_inputs.split(","))
        if not parts or len(set(parts)) != len(parts) or not set(parts) <= {"diff", "dist", "ref"}:
            raise InputError(f"head_inputs must name some of diff, dist, ref (comma-separated), got {head_inputs!r}.",
                             option="head_inputs")
        self.head_parts = parts
        self.patch, self.train_patches = int(patch), int(train_patches)
        self.contrastive, self.contrastive_pairs, self.elo_scale = float(contrastive), contrastive_pairs, elo_scale
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(ResidualStage(3, c1, 1), ResidualStage(c1, c2, 2),
                                      ResidualStage(c2, c3, 2), ResidualStage(c3, c3, 1))
        self.offset = nn.Conv2d(c3, 18, 3, padding=1)
        self.deform_dist = DeformConv2d(c3, c3, 3, padding=1)
        self.deform_ref = DeformConv2d(c3, c3, 3, padding=1)
        self.tail = nn.Sequential(ResidualStage(c3, c4, 2), nn.Conv2d(c4, c4, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(c4, c4, 3, 1, 1), nn.ReLU())
        self.attention_dist = PatchAttention(c4, c4 // 2)
        self.attention_ref = PatchAttention(c4, c4 // 2)
        k = len(parts)
        self.quality = nn.Sequential(nn.Linear(k * c4, c4), nn.ReLU(), nn.Dropout(dropout), nn.Linear(c4, 1))
        self.weight = nn.Sequential(nn.Linear(k * c4, c4), nn.ReLU(), nn.Dropout(dropout), nn.Linear(c4, 1),
                                    nn.ReLU())
        self.judge = PairJudge(judge_hidden)
        self._initialise()
        self._last_raw: torch.Tensor | None = None
        if trained:
            load_trained(self, Path(trained))

    def _initialise(self) -> None:
        """He initialisation of the convolutions (no batch norm rescales them), zero offsets, the two
        deformable convolutions equal (so ``d - r`` starts as the distortion's, not the difference of two
        random filters), and a weight head that starts positive (its last ReLU would otherwise give every
        patch the same 1e-6 and no gradient)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, DeformConv2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        with torch.no_grad():
            self.deform_ref.weight.copy_(self.deform_dist.weight)
        nn.init.ones_(self.weight[3].bias)

    def _patches(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and self.train_patches:
            n, _, h, w = dist.shape
            k = self.train_patches
            ys = torch.randint(0, h - self.patch + 1, (n, k)).to(dist.device)
            xs = torch.randint(0, w - self.patch + 1, (n, k)).to(dist.device)
            return random_patches(dist, self.patch, ys, xs), random_patches(ref, self.patch, ys, xs)
        return grid_patches(dist, self.patch), grid_patches(ref, self.patch)

    def patch_scores(self, dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, P) patch scores and (N, P) positive weights (standardised scale)."""
        check_pair("radn", dist, ref, self.patch, f"it scores {self.patch}x{self.patch} patches")
        pd, pr = self._patches(dist.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1))
        n, p = pd.shape[:2]
        both = self.features(torch.cat([pd, pr]).flatten(0, 1))
        fd, fr = both[:n * p], both[n * p:]
        offset = self.offset(fr)
        fd, fr = self.deform_dist(fd, offset), self.deform_ref(fr, offset)
        vectors = self.tail(torch.cat([fd, fr])).mean(dim=(2, 3))
        vd = self.attention_dist(vectors[:n * p].view(n, p, -1))
        vr = self.attention_ref(vectors[n * p:].view(n, p, -1))
        part = {"diff": lambda: vd - vr, "dist": lambda: vd, "ref": lambda: vr}
        f = torch.cat([part[p]() for p in self.head_parts], dim=-1)
        return self.quality(f).squeeze(-1), self.weight(f).squeeze(-1) + 1e-6

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        q, w = self.patch_scores(dist, ref)
        raw = (q * w).sum(1) / w.sum(1)
        self._last_raw = raw if self.training else None
        return self.unstandardise(raw)

    def auxiliary_loss(self, targets: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``contrastive`` x the judge's Elo cross-entropy on pairs of the last training batch (see the
        module docstring); None when off."""
        if not self.contrastive or self._last_raw is None:
            return None
        s = self._last_raw
        n = s.shape[0]
        y = targets["score"].to(s.dtype)
        mask = torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1)
        if self.contrastive_pairs == "content":
            c = targets["content"]
            mask &= c[:, None] == c[None, :]
        logit = self.judge(s[:, None].expand(n, n), s[None, :].expand(n, n))
        p = torch.sigmoid((y[:, None] - y[None, :]) * (_LN10 / self.elo_scale))
        ce = -(p * F.logsigmoid(logit) + (1 - p) * F.logsigmoid(-logit))
        mask = mask.to(s.dtype)
        return self.contrastive * (ce * mask).sum() / mask.sum().clamp_min(1.0)


def convert_authors_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state_dict of the authors' ``model/RADN.py`` (IIGROUP/RADN; keys ``conv1`` .. ``conv22``,
    ``conv_offset``, ``deform``, ``deform2``, ``Nonlocal1/2``, ``fc1_q`` ...) under this module's names; the
    non-local blocks' 1x1 convolutions become linear layers. ``judge.*`` is not in theirs (load with
    strict=False, or keep this model's)."""
    names = {f"conv{4 * s + i + 1}": f"features.{s}.convs.{i}" for s in range(4) for i in range(4)}
    names |= {f"conv{17 + i}": f"tail.0.convs.{i}" for i in range(4)}
    names |= {"conv21": "tail.1", "conv22": "tail.3", "conv_offset": "offset", "deform": "deform_dist",
              "deform2": "deform_ref", "fc1_q": "quality.0", "fc2_q": "quality.3", "fc1_w": "weight.0",
              "fc2_w": "weight.3"}
    for theirs, ours in (("Nonlocal1", "attention_dist"), ("Nonlocal2", "attention_ref")):
        names |= {f"{theirs}.{a}": f"{ours}.{b}" for a, b in (("theta", "theta"), ("phi", "phi"), ("g", "g"),
                                                                ("W", "out"))}
    out = {}
    for key, value in sd.items():
        key = key.removeprefix("module.")
        module, _, leaf = key.rpartition(".")
        if module not in names:
            raise InputError(f"{key} is not a tensor of the authors' RADN.")
        if module.startswith("Nonlocal"):
            value = value.reshape(value.shape[0], -1) if leaf == "weight" else value
        out[f"{names[module]}.{leaf}"] = value
    return out
