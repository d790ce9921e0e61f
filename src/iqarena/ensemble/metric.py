"""A fitted ensemble as a metric: ``create_metric("models/kele")``, ``iqarena score -m models/kele`` and
``iqarena evaluate -m models/kele`` compute the ensemble's features from the images (its metrics with
their options, or its deep extractor) and apply the fitted learners.

Only an ensemble whose features say how they are computed can score images: one fitted on an
``iqarena evaluate`` run, on a table whose columns are metric names, or on extracted deep features.
One fitted on an arbitrary table predicts from tables (``iqarena ensemble predict --features``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..metrics import METRICS, MetricInfo, create_metric
from ..metrics.checkpoint import PATH_FORMATS, watch
from .features import EXTRACTORS
from .model import MANIFEST, Ensemble, read_manifest


class EnsembleMetric(nn.Module):
    """Features of a batch (metric scores or deep features), then the ensemble's prediction."""

    def __init__(self, folder: str):
        super().__init__()
        self.ensemble = Ensemble.load(folder)
        sources = self.ensemble.sources
        if not sources:
            raise InputError(f"the ensemble in {folder} was fitted on a feature table that does not say how its "
                             "features are computed from images; it predicts from tables only "
                             "(iqarena ensemble predict --features).")
        self.parts = nn.ModuleList(
            [EXTRACTORS.get(s["extractor"])() if "extractor" in s else create_metric(s["metric"], **s["options"])
             for s in sources])
        self.needs_ref = [getattr(p, "kind", None) == "fr" or getattr(getattr(p, "info", None), "kind", "") == "fr"
                          for p in self.parts]

    @torch.no_grad()
    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        cols = []
        for part, fr in zip(self.parts, self.needs_ref):
            out = part(dist, ref) if fr else part(dist)
            cols.append(out.reshape(dist.shape[0], -1).double().cpu())
        x = torch.cat(cols, dim=1).numpy()
        return torch.from_numpy(self.ensemble.predict(x)).to(dist.device, torch.float64)


def _holds_ensemble(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def register_ensemble(path: str | Path, name: str | None = None) -> MetricInfo:
    """Register the fitted ensemble in the folder ``path`` as a metric named ``name`` (default: the path)."""
    folder = Path(path)
    if folder.name == MANIFEST:
        folder = folder.parent
    m = read_manifest(folder)
    key = str(name or path)
    manifest = str((folder / MANIFEST).resolve())
    resolved = str(folder.resolve())

    def build() -> EnsembleMetric:
        return EnsembleMetric(resolved)

    build.__module__ = __name__
    info = MetricInfo(name=key, kind=m["kind"], higher_better=bool(m["label_higher_better"]),
                      score_range=(-math.inf, math.inf), target=build, module=True, family="ensemble",
                      paper=f"an ensemble ({m['preset']}) fitted by iqarena", code=resolved, files=(manifest,),
                      colour="as each of its features' metrics")
    info = METRICS.add(key, info, replace=True)
    watch(info, manifest, lambda p, n: register_ensemble(Path(p).parent, n))
    return info


PATH_FORMATS.append((_holds_ensemble, register_ensemble))
