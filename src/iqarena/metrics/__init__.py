"""All metrics. Each module in this package registers its metrics on import (see registry.py)."""

import importlib
import pkgutil

from .registry import MetricInfo, create_metric, get_info, list_metrics, register

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "registry" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["MetricInfo", "create_metric", "get_info", "list_metrics", "register"]
