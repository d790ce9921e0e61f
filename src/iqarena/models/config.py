"""The training configuration: a TOML file of four sections, every key also a command-line flag.

```toml
[model]
name = "iqarena_nr"                 # a registered model (iqarena metrics lists them, family model)
options = { hidden = 256 }          # its constructor options

[data]
dataset = "clive"                   # any iqarena.datasets reader (pipal, kadid10k, csv ...)
root = "data/clive"
split = "reference"                 # "official" where the set has one, else a seeded split by content
fractions = [0.8, 0.2]              # train, val shares of the contents (split = "reference")
crop = 384                          # training crop side (0: whole images)

[optim]
optimizer = "adamw"
lr = 3e-4

[train]
epochs = 10
loss = "plcc+0.1*l1"
out = "runs/nr"
```

``iqarena train cfg.toml --optim.lr 1e-3 --train.epochs 2`` overrides any key; an unknown key or a
value of the wrong type is an InputError naming the valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError


@dataclass
class ModelConfig:
    name: str = "iqarena_nr"
    options: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    dataset: str = "csv"
    root: str = ""
    labels: str = ""  # label file (csv; a PIPAL list)
    reader_options: dict = field(default_factory=dict)  # e.g. {"training": true} for CLIVE
    split: str = "reference"  # official | reference
    fractions: list = field(default_factory=lambda: [0.8, 0.2])  # train, val (split = "reference")
    split_seed: int = 0
    fold: int = -1  # k-fold cross-validation: this fold (0..folds-1) is the validation part
    folds: int = 5
    crop: int = 0  # training crop side; 0 = whole images (equal sizes needed within a batch)
    crops_per_image: int = 1  # multi-crop batches: this many crops of each image per step
    flip: bool = True  # random horizontal flip (the same for an image and its reference)
    batch_size: int = 8  # images per step (x crops_per_image crops)
    workers: int = 0  # data-loading processes
    cache: bool = False  # keep decoded images in memory (uint8)
    cache_features: bool = False  # a model with a frozen trunk: compute its features once, train the head on them
    oversample_below: float = 0.0  # label quantile (0-1): images scored below it are drawn oversample_factor
    oversample_factor: int = 2  # times per epoch (IQMA's low-score resampling); 0.0 = off
    per_reference: int = 0  # batches made of runs of this many images of one reference (pairwise losses); 0 = random


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3e-4
    backbone_lr: float = 0.1  # multiplier of lr for parameters under ``backbone.``
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd
    schedule: str = "cosine"  # cosine | step | constant
    warmup_epochs: float = 0.0
    freeze_backbone_epochs: float = 0.0  # two-stage training: ``backbone.`` parameters get no update for this
    #                                      many epochs, then ``lr * backbone_lr`` (L2PIPS's frozen-then-unfrozen)
    step_epochs: int = 10  # step schedule: multiply by gamma every step_epochs
    gamma: float = 0.1
    clip_grad: float = 0.0  # max gradient norm; 0 = off
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 with a scaler)


@dataclass
class TrainConfig:
    epochs: int = 10
    loss: str = "plcc+0.1*l1"  # a loss spec (losses.md), or "none": the model's own objective alone
    seed: int = 0
    init: str = ""  # a checkpoint (a run's best.pt, or a file of some of the model's tensors) to start from
    out: str = "runs/train"
    device: str = "cpu"
    save_every: int = 0  # steps between mid-epoch checkpoints (last.pt); 0 = at the end of each epoch only
    max_steps_per_epoch: int = 0  # cut epochs short (smoke tests); 0 = whole epochs
    progress: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_classes() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hints[name] for name in SECTIONS}


def keys() -> list[str]:
    """Every valid ``section.key``."""
    return [f"{s}.{f.name}" for s, cls in _section_classes().items() for f in dataclasses.fields(cls)]


def _coerce(value, kind, where: str):
    """``value`` as the field's type; strings (from flags) are parsed as TOML values where needed."""
    origin = typing.get_origin(kind) or kind
    if isinstance(value, str) and origin is not str:
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise InputError(f"{where}: {value!r} is not a valid value (a number, true/false, [..] or {{..}}).") \
                from None
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, float), str: isinstance(value, str), list: isinstance(value, list),
          dict: isinstance(value, dict)}.get(origin, True)
    if not ok:
        raise InputError(f"{where}: expected {origin.__name__}, got {type(value).__name__} {value!r}.")
    return value


def _unknown(key: str, valid: list[str], where: str) -> InputError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return InputError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(valid)}.")


def from_dict(data: dict, where: str = "config") -> Config:
    """A Config from nested dicts (a parsed TOML file); every key and type checked."""
    classes = _section_classes()
    sections = {}
    for name, body in data.items():
        if name not in classes:
            raise _unknown(name, list(classes), where)
        if not isinstance(body, dict):
            raise InputError(f"{where}: [{name}] must be a table of keys.")
        cls = classes[name]
        hints = typing.get_type_hints(cls)
        valid = [f.name for f in dataclasses.fields(cls)]
        for k in body:
            if k not in valid:
                raise _unknown(f"{name}.{k}", [f"{name}.{v}" for v in valid], where)
        sections[name] = cls(**{k: _coerce(v, hints[k], f"{where}: {name}.{k}") for k, v in body.items()})
    return Config(**sections)


def load_config(path: str | Path | None = None, overrides: dict[str, str] | None = None) -> Config:
    """The config of a TOML file (or the defaults), with ``section.key -> value`` overrides applied."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file {path} not found.")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path} is not valid TOML: {exc}.") from None
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if not name or section not in SECTIONS:
            raise _unknown(key, keys(), "option")
        data.setdefault(section, {})[name] = value
    return from_dict(data, str(path) if path else "config")


#: short flags for the keys a user changes most: ``iqarena train recipes/iqt_pipal.toml --root PIPAL``
SHORT_FLAGS = {"root": "data.root", "labels": "data.labels", "out": "train.out", "device": "train.device",
               "epochs": "train.epochs"}


def parse_flags(args: list[str]) -> dict[str, str]:
    """``--section.key value`` / ``--section.key=value`` / ``--section.flag`` (true) pairs -> overrides;
    ``--root``, ``--labels``, ``--out``, ``--device``, ``--epochs`` stand for their ``section.key``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        head, eq, tail = arg.partition("=")
        if head[2:] in SHORT_FLAGS and head.startswith("--"):
            arg = f"--{SHORT_FLAGS[head[2:]]}{eq}{tail}"
        if not arg.startswith("--") or "." not in arg:
            raise InputError(f"unexpected argument {arg!r}; options look like --optim.lr 1e-3 "
                             f"(valid: {', '.join(keys())}).")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is None or (nxt.startswith("--") and "." in nxt):
                value = "true"
            else:
                value, i = nxt, i + 1
        out[name.replace("-", "_")] = value
        i += 1
    return out
