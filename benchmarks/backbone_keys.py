"""Write tests/data/backbone_keys.json: state_dict key names and shapes of the published ImageNet models.

Run once in the peers' environment (it needs torchvision and timm; no weights are downloaded):

    /tmp/peers/bin/python benchmarks/backbone_keys.py

iqarena's backbones (src/iqarena/backbones) must produce exactly these keys and shapes, so that the
published checkpoints load unchanged. Inception-ResNet-v2 is listed under the key names of Cadene's
``pretrainedmodels`` checkpoint (timm's names with its ``classif`` head renamed ``last_linear``).
"""

from __future__ import annotations

import json
from pathlib import Path

import timm
import torch
import torchvision
from torchvision import models

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "backbone_keys.json"


def shapes(model: torch.nn.Module, rename: dict[str, str] | None = None) -> dict[str, list[int]]:
    out = {}
    for k, v in model.state_dict().items():
        for old, new in (rename or {}).items():
            if k.startswith(old):
                k = new + k[len(old):]
        out[k] = list(v.shape)
    return out


def main() -> None:
    with torch.device("meta"):
        nets = {
            "alexnet": models.alexnet(),
            "vgg16": models.vgg16(),
            "squeezenet1_1": models.squeezenet1_1(),
            "resnet18": models.resnet18(),
            "resnet34": models.resnet34(),
            "resnet50": models.resnet50(),
            "resnet101": models.resnet101(),
            "resnet152": models.resnet152(),
        }
        irv2 = timm.create_model("inception_resnet_v2", pretrained=False)
    table = {name: shapes(net) for name, net in nets.items()}
    table["inception_resnet_v2"] = shapes(irv2, {"classif.": "last_linear."})
    meta = {"_source": f"torchvision {torchvision.__version__}, timm {timm.__version__}, torch {torch.__version__}"}
    OUT.write_text(json.dumps({**meta, **table}, indent=0, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
