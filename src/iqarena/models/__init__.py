"""Learned IQA: models (one file per method), losses, training, prediction with crop ensembles.

Importing this package registers its models in the metric registry (family ``model``); iqarena's
own package metadata names it under the entry-point group ``iqarena.metrics``, so ``iqarena score -m
iqarena_nr`` finds it without the metrics layer importing this one. Training and prediction live in
``train.py`` and ``predict.py`` and are imported when used.
"""

from . import (  # noqa: F401  (registers the models: one file per method)
    ahiq,
    asna,
    iqarena_fr,
    iqarena_nr,
    iqma,
    iqt,
    l2pips,
    pieapp_alexnet,
    radn,
    sensitivity_unet,
    sodeep,
    swd,
    yahaha,
)
from .base import IQAModel, crop_boxes
from .losses import LOSSES, build_loss

__all__ = ["IQAModel", "LOSSES", "build_loss", "crop_boxes"]
