"""Trained checkpoints as metrics: a file that records which registered module it trains, the options
it was built with and its weights registers at run time, so ``create_metric("run/best.pt")``,
``iqarena score -m run/best.pt`` and ``iqarena evaluate -m run/best.pt`` work like any metric name.

The file is a ``torch.save`` dict::

    {"format": "iqarena-checkpoint", "version": 1, "metric": "<registered module name>",
     "options": {...}, "state_dict": {...}, "meta": {...}}

It is read with ``weights_only=True`` (no code is unpickled). Its content is part of the
fingerprint, so a checkpoint retrained under the same file name never reuses stale scores.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import InputError
from ..io import atomic_output, output_path
from .registry import METRICS, MetricInfo, get_info

FORMAT = "iqarena-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, metric: str, net: nn.Module, options: dict | None = None,
                    meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write ``net``'s weights as a checkpoint of the registered module ``metric`` (atomically)."""
    path = output_path(path, overwrite)
    info = get_info(metric)
    if not info.module:
        raise InputError(f"{info.name} is a function metric without weights; only module metrics have checkpoints.")
    blob = {"format": FORMAT, "version": VERSION, "metric": info.name, "options": dict(options or {}),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "meta": dict(meta or {})}
    with atomic_output(path) as tmp:
        torch.save(blob, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, checked; InputError saying what the file is instead."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means it is not our file
        raise InputError(f"{path} is not a torch checkpoint ({exc.__class__.__name__}: {exc}).") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{path} is not an iqarena checkpoint (no format {FORMAT!r}); save it with "
                         "iqarena.metrics.save_checkpoint, or give a registered metric name.")
    if blob.get("version") != VERSION:
        raise InputError(f"{path} is an iqarena checkpoint of version {blob.get('version')}; this iqarena reads "
                         f"version {VERSION}.")
    return blob


def _build(base: MetricInfo, path: str, **options) -> nn.Module:
    """The base module with the checkpoint's weights, read from the file now (so it is the file as it is)."""
    source = path
    state_dict = read_checkpoint(path)["state_dict"]
    net = base.target(**options)
    missing, unexpected = [], []
    try:
        result = net.load_state_dict(state_dict, strict=False)
        missing, unexpected = result.missing_keys, result.unexpected_keys
    except RuntimeError as exc:  # shapes differ
        raise InputError(f"{source} does not fit {base.name}: {str(exc).splitlines()[-1].strip()}. Is it a "
                         "checkpoint of another model or other options?") from None
    if missing or unexpected:
        raise InputError(f"{source} does not fit {base.name}: missing keys {missing[:5]}, unexpected keys "
                         f"{unexpected[:5]}. Is it a checkpoint of another model?")
    return net


#: registered name -> (size, mtime) of the file it was read from, and how to read it again
_STAMPS: dict[str, tuple[tuple[int, int], Callable[[str, str], MetricInfo]]] = {}

#: kinds of user files and folders that register as metrics when their path is given as a name:
#: (does this path hold one?, register it under a name). Checkpoint files are built in; higher layers
#: add theirs (``iqarena.ensemble`` adds fitted ensemble folders) when they are imported.
PATH_FORMATS: list[tuple[Callable[[Path], bool], Callable[[str, str], MetricInfo]]] = []


def _stamp(path: str | Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


def watch(info: MetricInfo, path: str | Path, reread: Callable[[str, str], MetricInfo]) -> None:
    """Read ``info`` again (``reread(path, name)``) when the file at ``path`` changes (see :func:`current`)."""
    _STAMPS[info.name.lower()] = (_stamp(path), reread)


def register_checkpoint(path: str | Path, name: str | None = None) -> MetricInfo:
    """Register the checkpoint at ``path`` under ``name`` (default: the path as given) and return its entry."""
    key = str(name or path)
    blob = read_checkpoint(path)
    base = get_info(blob["metric"])
    resolved = str(Path(path).resolve())
    factory = functools.wraps(base.target)(functools.partial(_build, base, resolved))
    info = replace(base, name=key, target=factory, module=True, defaults={**base.defaults, **blob["options"]},
                   family="checkpoint", files=base.files + (resolved,), trained=True)
    info = METRICS.add(key, info, replace=True)
    watch(info, resolved, register_checkpoint)
    return info


def register_path(path: str | Path) -> MetricInfo:
    """Register the file or folder at ``path`` as a metric named by the path: a checkpoint file, or a
    folder of a kind in ``PATH_FORMATS`` (a fitted ensemble)."""
    p = Path(path)
    METRICS.names()  # loads the plugins, which add their path formats
    for holds, register_as in PATH_FORMATS:
        if holds(p):
            return register_as(str(path), str(path))
    if p.is_dir():
        raise InputError(f"{p} is a folder but not a metric: give a metric name, a checkpoint file or a fitted "
                         "ensemble's folder (`iqarena ensemble fit -o`).")
    return register_checkpoint(path)


def current(info: MetricInfo) -> MetricInfo:
    """``info``, read again if it was registered from a file that changed since."""
    stamp = _STAMPS.get(info.name.lower())
    if stamp is None:
        return info
    path = info.files[-1]
    if Path(path).is_file() and _stamp(path) != stamp[0]:
        return stamp[1](path, info.name)
    return info
