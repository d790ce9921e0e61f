"""All metrics. Each module in this package registers its metrics on import (see registry.py); the
registry, the checkpoint loader and the fingerprints are the package's machinery, not metrics."""

import importlib
import pkgutil

from .checkpoint import read_checkpoint, register_checkpoint, save_checkpoint
from .fingerprint import fingerprint
from .registry import (METRICS, Metric, MetricInfo, MetricSpec, available_metrics, create_metric, expand_metrics,
                       get_info, is_available, list_metrics, register, register_variant)

_MACHINERY = {"registry", "checkpoint", "fingerprint"}

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _MACHINERY and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["METRICS", "Metric", "MetricInfo", "MetricSpec", "available_metrics", "create_metric", "expand_metrics",
           "fingerprint", "get_info", "is_available", "list_metrics", "read_checkpoint", "register",
           "register_checkpoint", "register_variant", "save_checkpoint"]
