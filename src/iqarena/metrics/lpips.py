"""LPIPS: learned perceptual image patch similarity, v0.1, with AlexNet (default), VGG16 or SqueezeNet 1.1.

Zhang, Isola, Efros, Shechtman, Wang, "The unreasonable effectiveness of deep features as a perceptual
metric", CVPR 2018. Original code: https://github.com/richzhang/PerceptualSimilarity (pip package
``lpips`` 0.1.4).

As the original with ``normalize=True``: input in [0, 1] mapped to [-1, 1], then the v0.1 scaling layer
(shift [-.030, -.088, -.188], scale [.458, .448, .450]); the backbone's ReLU outputs (5 taps for
AlexNet and VGG16, 7 for SqueezeNet) are unit-normalised over channels (eps 1e-10), their squared
difference weighted by the learned 1x1 layer, averaged over space and summed over taps. Full
resolution, no resizing. Grey input is repeated to three channels (the original takes RGB only).
Parity with the ``lpips`` package on the same backbone weights: max |difference| below 1e-6
(docs/deep-metrics.md). ``LPIPS.spatial_map`` gives the per-pixel map (each tap's map upsampled
bilinearly to the input size, as the original's ``spatial=True``).

Needs the ImageNet backbone (catalogue ``alexnet``, ``vgg16`` or ``squeezenet1_1``, downloaded once with
``iqarena weights fetch``) and the v0.1 linear layers (shipped with iqarena).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import VGG16, AlexNet, SqueezeNet11, from_state_dict
from ..errors import InputError
from ..weights import load_state_dict
from .registry import register

_NETS = {"alex": (AlexNet, "alexnet", "lpips-v0.1-alex"), "vgg": (VGG16, "vgg16", "lpips-v0.1-vgg"),
         "squeeze": (SqueezeNet11, "squeezenet1_1", "lpips-v0.1-squeeze")}
_PAPER = "Zhang et al., The unreasonable effectiveness of deep features as a perceptual metric, CVPR 2018"
_CODE = "https://github.com/richzhang/PerceptualSimilarity (lpips 0.1.4)"
_COLOUR = "RGB (grey repeated to 3 channels); [0,1] -> [-1,1] -> v0.1 scaling layer"
#: smallest side whose feature maps keep at least one pixel at the last tap (max pooling without padding)
_MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}
_SIZE = dict(min_size=lambda o: _MIN_SIZE.get(o["net"], 1),
             size_note="the backbone's pooling must leave at least one pixel at its last tap")


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Repeat a grey (N, 1, H, W) image to three channels; RGB passes through."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def unit_normalize(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout: the same tensor, 10-25 % faster convolutions on CPU (measured with torch 2.14)."""
    return x.contiguous(memory_format=torch.channels_last)


def frozen(net: nn.Module) -> nn.Module:
    """Eval mode, no parameter gradients (gradients still flow to the input)."""
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@register("lpips", kind="fr", higher_better=False, score_range=(0, 1), paper=_PAPER, code=_CODE, colour=_COLOUR,
          weights=("alexnet", "lpips-v0.1-alex"), net="alex", **_SIZE)
@register("lpips_vgg", kind="fr", higher_better=False, score_range=(0, 1), paper=_PAPER, code=_CODE, colour=_COLOUR,
          weights=("vgg16", "lpips-v0.1-vgg"), net="vgg", **_SIZE)
@register("lpips_squeeze", kind="fr", higher_better=False, score_range=(0, 1), paper=_PAPER, code=_CODE,
          colour=_COLOUR, weights=("squeezenet1_1", "lpips-v0.1-squeeze"), net="squeeze", **_SIZE)
class LPIPS(nn.Module):
    """LPIPS v0.1 distance (lower is more similar).

    ``backbone`` / ``linear``: a catalogue name (default: the published files) or a path to a state_dict
    with the published key names (e.g. your own copy or fine-tuned weights; not hash-checked)."""

    def __init__(self, net: str = "alex", backbone: str | Path | None = None, linear: str | Path | None = None):
        super().__init__()
        if net not in _NETS:
            raise InputError(f"net must be one of {', '.join(_NETS)}, got {net!r}")
        cls, backbone_name, linear_name = _NETS[net]
        self.net = frozen(from_state_dict(lambda: cls(include_top=False), load_state_dict(backbone or backbone_name),
                                          f"{net} backbone"))
        lin = load_state_dict(linear or linear_name)
        ws = [lin[f"lin{i}.model.1.weight"].reshape(1, -1, 1, 1).float() for i in range(len(cls.stage_ends))]
        for i, w in enumerate(ws):
            self.register_buffer(f"lin{i}", w)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.taps = len(ws)

    def _diffs(self, dist: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        """Per tap: the linear layer applied to the squared difference of unit-normalised features, (N,1,h,w)."""
        n = dist.shape[0]
        x = torch.cat([as_rgb(dist), as_rgb(ref)]).to(self.shift.dtype)
        x = channels_last((2 * x - 1 - self.shift) / self.scale)
        out = []
        for i, f in enumerate(self.net.stages(x)):
            f = unit_normalize(f)
            d = (f[:n] - f[n:]).pow(2)
            out.append((d * getattr(self, f"lin{i}")).sum(1, keepdim=True))
        return out

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return sum(d.mean(dim=(2, 3)) for d in self._diffs(dist, ref)).squeeze(1)

    def spatial_map(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Per-pixel LPIPS, (N, 1, H, W): each tap's map upsampled (bilinear, align_corners=False) and summed."""
        size = dist.shape[-2:]
        return sum(F.interpolate(d, size=size, mode="bilinear", align_corners=False) for d in self._diffs(dist, ref))
