"""Feature tables for the ensembles: one row per distorted image, one column per feature.

Three sources, one :class:`FeatureTable`:

- an ``iqarena evaluate`` output folder: its ``scores.csv`` (the run's cached scores, one column per
  metric; ``run.json`` names the metrics and the dataset);
- any table ``name,feature1,feature2,...`` (CSV with a header; the first column names the image);
- deep features computed here by a registered extractor (``EXTRACTORS``): ``vgg16_egb`` (EGB's
  VGG-16 taps, full reference) and ``efficientnet_lite0`` (pooled EfficientNet-Lite0 statistics,
  no reference).

A table remembers how its columns can be computed from images (``sources``): registered metrics
(with their options) or an extractor. That is what makes a fitted ensemble usable as a metric.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..datasets import Dataset
from ..datasets.table import read_text_file
from ..errors import InputError
from ..metrics import METRICS, MetricSpec
from ..registry import Registry


@dataclass(frozen=True)
class FeatureTable:
    names: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray  # (images, features) float64
    #: how the columns are computed from images: ``{"metric": name, "options": {...}}`` per column, or
    #: one ``{"extractor": name}`` for all of them; empty when unknown (a plain table)
    sources: tuple[dict, ...] = field(default=())
    origin: str = ""

    def __post_init__(self):
        if self.values.shape != (len(self.names), len(self.columns)):
            raise InputError(f"{self.origin}: {self.values.shape[0]} rows x {self.values.shape[1]} values for "
                             f"{len(self.names)} names and {len(self.columns)} columns.")
        if len(set(self.names)) != len(self.names):
            dup = next(n for n in self.names if self.names.count(n) > 1)
            raise InputError(f"{self.origin}: image {dup!r} appears twice; give each image once.")

    def select(self, columns: Sequence[str]) -> "FeatureTable":
        """These columns, in this order; InputError naming the ones that are missing."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise InputError(f"{self.origin} has no feature {', '.join(missing)} (it has "
                             f"{', '.join(self.columns[:12])}{' ...' if len(self.columns) > 12 else ''}). Score "
                             "the missing metrics (iqarena evaluate -m ...), or choose other columns.",
                             option="features")
        idx = [self.columns.index(c) for c in columns]
        sources = tuple(self.sources[i] for i in idx) if len(self.sources) == len(self.columns) else self.sources
        return FeatureTable(self.names, tuple(columns), self.values[:, idx], sources, self.origin)

    def rows_for(self, names: Sequence[str]) -> np.ndarray:
        """The rows of ``names`` (each must be here once), in that order."""
        where = {n: i for i, n in enumerate(self.names)}
        folded = {n.replace("\\", "/").lower(): i for i, n in enumerate(self.names)}
        idx, missing = [], []
        for n in names:
            i = where.get(n, folded.get(n.replace("\\", "/").lower()))
            (missing.append(n) if i is None else idx.append(i))
        if missing:
            raise InputError(f"{self.origin} has no features for {len(missing)} of the {len(names)} labelled images "
                             f"(first: {missing[0]!r}). Features and labels must name the same images.",
                             option="features")
        return self.values[idx]

    def check_finite(self, values: np.ndarray | None = None) -> None:
        """InputError naming the first column (the metric that produced it) with NaN or Inf values."""
        v = self.values if values is None else values
        bad = ~np.isfinite(v)
        if bad.any():
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            raise InputError(f"feature {self.columns[j]!r} of {self.origin} has {int(bad[:, j].sum())} NaN or "
                             f"infinite values (the metric that produced them could not score those images); "
                             "drop that column (--columns) or those images.", option="features")

    def save_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(("name", *self.columns))
            for name, row in zip(self.names, self.values):
                w.writerow((name, *(repr(float(v)) for v in row)))
        return path


# ---------------------------------------------------------------- reading

def spec_from_text(text: str) -> MetricSpec:
    """``str(MetricSpec)`` back to the spec: ``lpips`` or ``lpips(net='vgg', ...)``."""
    if "(" not in text:
        return MetricSpec.of(text)
    name, args = text.split("(", 1)
    call = ast.parse(f"f({args}", mode="eval").body
    return MetricSpec.of(name, **{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})


def _metric_sources(columns: Sequence[str]) -> tuple[dict, ...]:
    sources = []
    for c in columns:
        try:
            spec = spec_from_text(c)
        except (InputError, SyntaxError, ValueError):
            return ()
        sources.append({"metric": spec.name, "options": dict(spec.options)})
    return tuple(sources)


def read_features(path: str | Path) -> FeatureTable:
    """An ``iqarena evaluate`` output folder, or a ``name,feature...`` table (CSV with a header)."""
    path = Path(path)
    if path.is_dir():
        return _from_run(path)
    text = read_text_file(path, "feature table")
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise InputError(f"{path} is not a feature table: it needs a header 'name,feature1,...' and a row per image.",
                         option="features")
    header = [c.strip() for c in rows[0]]
    names, values = [], []
    for line, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise InputError(f"{path}, line {line}: {len(r)} fields where the header has {len(header)}.",
                             option="features")
        try:
            values.append([float(c) for c in r[1:]])
        except ValueError:
            raise InputError(f"{path}, line {line}: a feature is not a number ({r[1:]!r:.80}).",
                             option="features") from None
        names.append(r[0].strip())
    columns = tuple(header[1:])
    return FeatureTable(tuple(names), columns, np.asarray(values, dtype=np.float64), _metric_sources(columns),
                        str(path))


def _from_run(folder: Path) -> FeatureTable:
    from ..evaluate.run import RUN_FILE, SCORES_FILE

    scores = folder / SCORES_FILE
    if not scores.is_file():
        raise InputError(f"{folder} holds no {SCORES_FILE}: give the output folder of `iqarena evaluate -m ...` "
                         "(a run that scored metrics), or a feature table.", option="features")
    table: dict[str, dict[str, float]] = {}
    names: dict[str, None] = {}
    with scores.open(newline="") as fh:
        for row in csv.DictReader(fh):
            table.setdefault(row["metric"], {})[row["dist"]] = float(row["score"])
            names[row["dist"]] = None
    try:
        order = json.loads((folder / RUN_FILE).read_text()).get("metrics") or list(table)
    except (OSError, json.JSONDecodeError):
        order = list(table)
    columns = tuple(m for m in order if m in table)
    values = np.array([[table[m].get(n, np.nan) for m in columns] for n in names], dtype=np.float64)
    return FeatureTable(tuple(names), columns, values, _metric_sources(columns), str(folder))


# ---------------------------------------------------------------- deep features

class Extractor(nn.Module):
    """(dist, ref) image batches -> (N, F) features; ``kind`` fr or nr; ``columns`` names the F features."""

    kind = "fr"
    columns: tuple[str, ...] = ()


EXTRACTORS: Registry[Callable[[], Extractor]] = Registry("feature extractor",
                                                        listing="`iqarena ensemble features --help`")


@EXTRACTORS.register("vgg16_egb")
class VGG16EGB(Extractor):
    """EGB's features (Hammou et al., CVPRW 2021): both images resized to 224x224, VGG-16 activations after
    block4_conv2, block4_conv3 and block5_conv1 (ReLU applied, as Keras's layer outputs), global average
    pooling, |ref - dist|: 1,536 numbers.

    Differences from the published code, on purpose: the ImageNet VGG-16 file is torchvision's (catalogue
    ``vgg16``, which iqarena already uses for LPIPS and DISTS) with its RGB mean/std normalisation, where
    EGB used Keras's weights and Caffe-style BGR mean subtraction; the resize is nearest-neighbour with
    pixel centres, as Keras's ``load_img(target_size=...)`` default."""

    kind = "fr"
    taps = {20: "block4_conv2", 22: "block4_conv3", 25: "block5_conv1"}  # torchvision ``features`` indices
    columns = tuple(f"vgg16.{name}.{c}" for name in taps.values() for c in range(512))

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        from ..backbones import VGG16, from_state_dict
        from ..weights import load_state_dict

        vgg = from_state_dict(lambda: VGG16(include_top=False), load_state_dict(weights or "vgg16"), "VGG16 backbone")
        self.layers = vgg.features[:26].eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.expand(-1, 3, -1, -1), size=(224, 224), mode="nearest-exact")
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                out.append(x.mean(dim=(2, 3)))
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if ref is None:
            raise InputError("vgg16_egb is full-reference: give the reference images too.", option="ref")
        return (self.pooled(ref) - self.pooled(dist)).abs()


@EXTRACTORS.register("efficientnet_lite0")
class EfficientNetStats(Extractor):
    """No-reference: the ImageNet EfficientNet-Lite0 (the PyPI package's file) at full resolution, the mean
    and standard deviation of every stage's and the head's activations (4,128 numbers): the frozen
    features of ``iqarena_nr`` at scale 1."""

    kind = "nr"

    def __init__(self):
        super().__init__()
        from ..models.trunk import STAGES, trunk, width

        self.net = trunk(pretrained=True, train_from=STAGES).eval()
        self.columns = tuple(f"effnet.s{i}.{stat}{c}" for i, w in enumerate(width(self.net))
                             for stat in ("mean", "std") for c in range(w))

    @torch.no_grad()
    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        from ..models.trunk import mean_std, pyramid

        return torch.cat([mean_std(f) for f in pyramid(self.net, dist.expand(-1, 3, -1, -1))], dim=1)


def extract_features(ds: Dataset, extractor: str = "vgg16_egb", *, device: str = "cpu",
                     progress: bool = False) -> FeatureTable:
    """Deep features of every image of ``ds`` (one image at a time: sizes may differ)."""
    from ..execution import dataset_items, load_item, progress_bar

    net = EXTRACTORS.get(extractor)().to(device)
    key = EXTRACTORS.resolve(extractor)
    if net.kind == "fr" and not ds.has_reference:
        raise InputError(f"{key} compares an image with its reference, and {ds.name} has none; use a no-reference "
                         "extractor (efficientnet_lite0).", option="features")
    items = dataset_items(ds)
    out = np.empty((len(items), len(net.columns)))
    with progress_bar(progress, len(items), f"features ({key})") as advance:
        for i, item in enumerate(items):
            dist, ref = load_item(item, need_ref=net.kind == "fr")
            dist = dist[None].to(device)
            ref = ref[None].to(device) if ref is not None else None
            out[i] = net(dist, ref).double().cpu().numpy()[0]
            advance(1)
    return FeatureTable(tuple(r.dist for r in ds.rows), net.columns, out, ({"extractor": key},),
                        f"{key} features of {ds.name}")


def metric_names_in(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in METRICS]


def dataset_features(ds: Dataset, *, metrics: Sequence[str | MetricSpec] = (), extractor: str | None = None,
                     store=None, executor=None, device: str = "cpu", progress: bool = False) -> FeatureTable:
    """Features of every image of ``ds``: the scores of ``metrics`` (through the shared score store, so
    what an `iqarena evaluate` run scored is reused) or an extractor's deep features."""
    if extractor:
        return extract_features(ds, extractor, device=device, progress=progress)
    from ..evaluate.run import score_dataset

    specs = [m if isinstance(m, MetricSpec) else spec_from_text(m) for m in metrics]
    if not specs:
        raise InputError("no features: give metrics, an extractor, or a feature table.", option="features")
    scores = score_dataset(ds, specs, store=store, executor=executor, progress=progress)
    columns = tuple(str(s) for s in specs)
    values = np.column_stack([scores[c] for c in columns])
    return FeatureTable(tuple(r.dist for r in ds.rows), columns, values,
                        tuple({"metric": s.name, "options": dict(s.options)} for s in specs), f"scores of {ds.name}")
