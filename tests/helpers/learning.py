"""The learning check every challenge model passes (docs/models.md): train it on CPU, with a small
backbone setting, on a small synthetic PIPAL-layout set (`iqarena synth`), and score references it never
saw well above its untrained start. Used by the tests of each model (tests/test_model_*.py); with
IQARENA_LEARNING_REPORT=FILE every run appends its numbers to FILE, which benchmarks/models_learning.py
renders as one table.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from PIL import Image

from iqarena.models.config import load_config
from iqarena.models.data import load_splits
from iqarena.models.train import build_model, train, validate

SAMPLE = Path(str(resources.files("iqarena") / "sample"))
#: distortions whose strength any model must see at 48 px, four levels each
DISTORTIONS = ("blur", "noise", "jpeg", "downup_bicubic", "contrast", "quantisation")
SIDE = 48


def synth_set(root: Path, side: int = SIDE) -> Path:
    """12 references (a 2x2 grid of ``side``-pixel crops from three of the bundled sample photos) x 6
    distortions x 4 levels = 288 images, labelled by PSNR and SSIM together on PIPAL's Elo-like scale."""
    from iqarena.datasets.synth import make_synthetic_set

    refs = root / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    for name in ("I03", "I04", "I19"):
        with Image.open(SAMPLE / "ref" / f"{name}.png") as im:
            im = im.convert("RGB")
            w, h = im.size
            x0, y0 = (w - 2 * side) // 2, (h - 2 * side) // 2
            for i in range(2):
                for j in range(2):
                    box = (x0 + j * side, y0 + i * side, x0 + (j + 1) * side, y0 + (i + 1) * side)
                    im.crop(box).save(refs / f"{name}_{i}{j}.png")
    out = root / "set"
    make_synthetic_set(refs, out, distortions=list(DISTORTIONS), levels=4, label=["psnr", "ssim"], seed=0)
    return out


@dataclass
class Learned:
    before: float  # validation SRCC of the untrained model (the same seed and initialisation)
    after: float  # best validation SRCC after training
    epochs: int
    seconds_per_epoch: float


def learning_run(data: Path, out: Path, model: str, options: dict | None = None, **flags) -> Learned:
    """Train ``model`` with ``options`` on the synthetic set (3 references of 12 held out) and return its
    validation SRCC before and after; ``flags`` override the defaults (``{"optim.lr": "1e-3"}``)."""
    settings = {"model.name": model, "model.options": _toml(options or {}), "data.dataset": "pipal",
                "data.root": str(data), "data.split": "reference", "data.fractions": "[0.75, 0.25]",
                "data.crop": "0", "data.batch_size": "16", "train.epochs": "6", "train.loss": "plcc+0.1*srcc",
                "optim.lr": "1e-3", "optim.warmup_epochs": "0.5", "train.progress": "false",
                "train.out": str(out), **{k: str(v) for k, v in flags.items()}}
    cfg = load_config(None, settings)
    torch.manual_seed(cfg.train.seed)  # the initialisation train() will make
    untrained, info = build_model(cfg)
    _, val = load_splits(cfg.data)
    before = validate(untrained.eval(), info.kind, val, torch.device("cpu"), f"untrained:{model}")["srcc"]
    train(cfg, log=lambda *_: None)
    with (out / "epochs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    after = max(float(r["val_srcc"]) for r in rows)
    seconds = sum(float(r["seconds"]) for r in rows) / len(rows)
    result = Learned(before if math.isfinite(before) else 0.0, after, len(rows), seconds)
    report = os.environ.get("IQARENA_LEARNING_REPORT")
    if report:  # benchmarks/models_learning.py collects every model's check into one table
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"model": model, "options": options or {}, "flags": flags, "data": data.name,
                                 **dataclasses.asdict(result)}) + "\n")
    return result


def _toml(options: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)
    return "{" + ", ".join(f"{k} = {value(v)}" for k, v in options.items()) + "}"
