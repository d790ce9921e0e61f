"""Ensembles over metric scores and deep features: boosters (XGBoost, LightGBM, CatBoost) and simple
learners bagged over folds grouped by reference content, the NTIRE 2021 recipes of debut.kele and
EGB as presets, averages of predictors, feature importance. A fitted ensemble's folder is a metric:
give its path wherever a metric name goes.

>>> from iqarena.ensemble import fit_ensemble, read_features
>>> table = read_features("runs/pipal-train")          # an `iqarena evaluate` output folder
>>> ens = fit_ensemble(table, labels, contents, preset="debut.kele")
>>> ens.save("models/kele"); create_metric("models/kele")

Importing this package registers the folder format (``iqarena.metrics`` entry point ``ensemble``).
"""

from .average import NORMALISE, average_predictions
from .features import EXTRACTORS, FeatureTable, dataset_features, extract_features, read_features
from .learners import LEARNERS, Learner, build_learner
from .metric import EnsembleMetric, register_ensemble
from .model import Ensemble, content_folds, fit_ensemble, read_manifest
from .presets import PRESETS, Preset, get_preset
from .report import write_report

__all__ = ["EXTRACTORS", "Ensemble", "EnsembleMetric", "FeatureTable", "LEARNERS", "Learner", "NORMALISE",
           "PRESETS", "Preset", "average_predictions", "build_learner", "content_folds", "dataset_features",
           "extract_features",
           "fit_ensemble", "get_preset", "read_features", "read_manifest", "register_ensemble", "write_report"]
