"""IQA datasets as tables of (distorted, reference, score, group) rows under a root folder.

>>> from iqarena.datasets import load_dataset
>>> ds = load_dataset("pipal", "/data/PIPAL", split="train")   # official layout, checked
>>> ds.rows[0]        # Row(dist='Train_Dis/A0001_00_00.bmp', ref='Train_Ref/A0001.bmp', score=1520.06...)
>>> parts = split_by_reference(ds, (0.8, 0.2), seed=0, names=("train", "val"))   # disjoint contents

Readers: pipal, tid2013, tid2008, live, csiq, kadid10k, clive, koniq10k and csv (any label table).
Each checks its folder and names exactly what is missing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError
from ..registry import Registry
from .base import Dataset, Row, split_by_reference
from .classic import read_csiq, read_kadid10k, read_live, read_tid2008, read_tid2013
from .pipal import read_pipal
from .table import read_csv_dataset, read_rows
from .wild import read_clive, read_koniq10k


@dataclass(frozen=True)
class Reader:
    name: str
    read: Callable[..., Dataset]
    title: str
    official_splits: tuple[str, ...] = ()
    full_reference: bool = True


DATASETS: Registry[Reader] = Registry("dataset", group="iqarena.datasets", listing="`iqarena evaluate --help`")
for _r, _aliases in (
    (Reader("pipal", read_pipal, "PIPAL / NTIRE 2021 (Elo MOS)", ("train", "val", "test")), ("ntire2021",)),
    (Reader("tid2013", read_tid2013, "TID2013 (MOS)"), ()),
    (Reader("tid2008", read_tid2008, "TID2008 (MOS)"), ()),
    (Reader("live", read_live, "LIVE release 2 (DMOS)"), ("live2",)),
    (Reader("csiq", read_csiq, "CSIQ (DMOS)"), ()),
    (Reader("kadid10k", read_kadid10k, "KADID-10k (DCR MOS)"), ("kadid", "kadid-10k")),
    (Reader("clive", read_clive, "LIVE-Challenge (MOS)", full_reference=False), ("livec", "live-challenge")),
    (Reader("koniq10k", read_koniq10k, "KonIQ-10k (MOS)", ("train", "val", "test"), full_reference=False),
     ("koniq", "koniq-10k")),
    (Reader("csv", read_csv_dataset, "any label table (CSV or name,score lines)", full_reference=False), ()),
):
    DATASETS.add(_r.name, _r, aliases=_aliases)


def load_dataset(name: str, root: str | Path | None = None, *, split: str | None = None,
                 labels: str | Path | None = None, seed: int = 0,
                 fractions: Sequence[float] = (0.6, 0.2, 0.2), **options) -> Dataset:
    """Read a dataset by name; ``split`` picks an official split where the set has them (PIPAL, KonIQ-10k)
    and otherwise a seeded split by reference content (``fractions`` of train/val/test, ``seed``).

    ``labels`` is the label file for ``csv`` (required) and PIPAL (optional, a single list file).
    Other keyword ``options`` go to the reader (``realigned`` for LIVE, ``training`` for CLIVE ...).
    """
    key = DATASETS.resolve(name)
    reader = DATASETS[key]
    params = inspect.signature(reader.read).parameters
    unknown = [k for k in options if k not in params]
    if unknown:
        raise InputError(f"dataset {key} has no option {', '.join(unknown)}.")
    if key == "csv":
        if labels is None:
            raise InputError("the csv dataset needs a label file (a CSV with image and score columns).",
                             option="labels")
        ds = reader.read(labels, root, **options)
    else:
        if root is None:
            raise InputError(f"dataset {key} needs its root folder (the folder of the official release).",
                             option="root")
        if labels is not None:
            if "labels" not in params:
                raise InputError(f"dataset {key} reads its own label files; a label file applies to pipal and csv "
                                 "only.", option="labels")
            options["labels"] = labels
        if reader.official_splits and split is not None:
            return reader.read(root, split=split, **options)
        ds = reader.read(root, **options)
    if split is None or split == "all":
        return ds
    names = ("train", "val", "test")
    if split not in names:
        raise InputError(f"split must be one of all, {', '.join(names)}; got {split!r}.")
    return split_by_reference(ds, fractions, seed, names)[split]


__all__ = ["DATASETS", "Dataset", "Reader", "Row", "load_dataset", "read_clive", "read_csiq",
           "read_csv_dataset", "read_kadid10k", "read_koniq10k", "read_live", "read_pipal", "read_rows",
           "read_tid2008", "read_tid2013", "split_by_reference"]
