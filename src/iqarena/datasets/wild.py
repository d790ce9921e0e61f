"""Readers for the authentic-distortion (no-reference) sets: LIVE-Challenge (CLIVE) and KonIQ-10k.

LIVE In the Wild Image Quality Challenge (Ghadiyaram and Bovik), official release::

    Images/*.bmp|JPG                          1,162 test images
    Images/trainingImages/t1.bmp ... t7.bmp   the 7 images shown to raters for training
    Data/AllImages_release.mat                AllImages_release (1,169 names: t1..t7 first)
    Data/AllMOS_release.mat                   AllMOS_release (MOS 0-100, higher is better)

or a flat copy: ``images/`` with ``mos.csv`` (columns ``image`` and ``mos``), as in iqarena's
shared subset. The 7 training images are left out unless ``training=True`` (the usual 1,162-image
protocol).

KonIQ-10k (Hosu et al.)::

    1024x768/*.jpg (or 512x384/)              10,073 images
    koniq10k_distributions_sets.csv           image_name, ..., MOS, ..., set (training/validation/test)
    or koniq10k_scores_and_distributions.csv  image_name, ..., MOS, SD, MOS_zscore (no set column)
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import InputError
from .base import Dataset, Row, find_ci, label_table, parse_float, require_dir, require_root, resolve_files
from .classic import _cellstr, _loadmat

_TRAINING = re.compile(r"^t\d+\.\w+$", re.IGNORECASE)


def read_clive(root: str | Path, training: bool = False) -> Dataset:
    """LIVE-Challenge: authentic distortions, no references; MOS 0-100, higher is better."""
    root = require_root(root, "LIVE-Challenge")
    flat = find_ci(root, "mos.csv")
    if flat is not None:
        rows = _clive_flat(root, flat)
        source = "mos.csv"
    elif find_ci(root, "Data") is not None:
        rows = _clive_release(root)
        source = "Data/AllMOS_release.mat"
    else:
        raise InputError(f"LIVE-Challenge: {root} holds neither the official release (Images/ and Data/AllImages_release.mat, "
                         "Data/AllMOS_release.mat) nor a flat copy (images/ and mos.csv with columns image,mos).")
    if not training:
        rows = [r for r in rows if not _TRAINING.match(Path(r.dist).name)]
    notes = (f"labels from {source}", "training images t1..t7 " + ("included" if training else "left out"))
    return Dataset("clive", root, tuple(resolve_files("LIVE-Challenge", root, rows)), score_name="MOS", notes=notes)


def _clive_flat(root: Path, labels: Path) -> list[Row]:
    images = require_dir(root, "images", "LIVE-Challenge", "the rated images named in mos.csv")
    rows = []
    with label_table(labels) as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if not {"image", "mos"} <= set(fields):
            raise InputError(f"LIVE-Challenge: {labels.name} needs columns image and mos; found {fields}.")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            rows.append(Row(f"{images.name}/{row['image']}", None, parse_float(row["mos"], f"{labels.name}, line {lineno}")))
    return rows


def _clive_release(root: Path) -> list[Row]:
    data = require_dir(root, "Data", "LIVE-Challenge", "AllImages_release.mat and AllMOS_release.mat")
    images = require_dir(root, "Images", "LIVE-Challenge", "the 1,162 images and trainingImages/")
    names_file, mos_file = find_ci(data, "AllImages_release.mat"), find_ci(data, "AllMOS_release.mat")
    for f, n in ((names_file, "AllImages_release.mat"), (mos_file, "AllMOS_release.mat")):
        if f is None:
            raise InputError(f"LIVE-Challenge: {data}/{n} not found.")
    names = _cellstr(_loadmat(names_file, "AllImages_release", "LIVE-Challenge"))
    mos = _loadmat(mos_file, "AllMOS_release", "LIVE-Challenge").ravel()
    if len(names) != mos.size:
        raise InputError(f"LIVE-Challenge: {len(names)} names but {mos.size} MOS values in {data}.")
    train_dir = find_ci(images, "trainingImages")
    rows = []
    for name, score in zip(names, mos):
        folder = images
        if _TRAINING.match(name) and train_dir is not None and find_ci(images, name) is None:
            folder = train_dir
        rows.append(Row(folder.relative_to(root).as_posix() + "/" + name, None, float(score)))
    return rows


KONIQ_FILES = ("koniq10k_distributions_sets.csv", "koniq10k_scores_and_distributions.csv")
KONIQ_SETS = {"training": "train", "train": "train", "validation": "val", "val": "val", "test": "test"}


def read_koniq10k(root: str | Path, split: str | None = None, resolution: str = "1024x768",
                  score: str = "MOS") -> Dataset:
    """KonIQ-10k: 10,073 in-the-wild images; MOS 1-5, higher is better.

    ``split`` (train, val, test) selects the official sets from the ``set`` column of
    koniq10k_distributions_sets.csv. ``score`` may be ``MOS_zscore`` where the file has it.
    """
    root = require_root(root, "KonIQ-10k")
    labels = next((p for p in (find_ci(root, n) for n in KONIQ_FILES) if p is not None), None)
    if labels is None:
        raise InputError(f"KonIQ-10k: no label file in {root}: expected {' or '.join(KONIQ_FILES)}.")
    images = require_dir(root, resolution, "KonIQ-10k", f"the {resolution} JPEG images (or pass resolution='512x384')")
    rows, sets = [], []
    with label_table(labels) as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "image_name" not in fields or score not in fields:
            raise InputError(f"KonIQ-10k: {labels.name} needs columns image_name and {score}; found {fields}.")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            part = KONIQ_SETS.get(row.get("set", "").lower(), "")
            rows.append(Row(f"{images.name}/{row['image_name']}", None,
                            parse_float(row[score], f"{labels.name}, line {lineno}")))
            sets.append(part)
    if split is not None:
        if split not in ("train", "val", "test"):
            raise InputError(f"KonIQ-10k has the official splits train, val, test; got {split!r}.")
        if not any(sets):
            raise InputError(f"KonIQ-10k: {labels.name} has no 'set' column; the official splits need "
                             "koniq10k_distributions_sets.csv.")
        rows = [r for r, s in zip(rows, sets) if s == split]
    return Dataset("koniq10k", root, tuple(resolve_files("KonIQ-10k", root, rows)), score_name=score,
                   split=split or "", notes=(f"labels from {labels.name}",))
