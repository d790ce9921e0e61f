"""PIPAL (Gu et al., ECCV 2020) and its NTIRE 2021 extension: official folder layout and label files.

Official release::

    Train_Ref/A0001.bmp ...              200 references, 288x288
    Train_Dis/A0001_00_00.bmp ...        23,200 distorted images (subfolders allowed)
    Train_Label/A0001.txt ...            one file per reference, lines ``A0001_00_00.bmp,1520.0648``

NTIRE 2021 validation / test: ``Val_Ref``, ``Val_Dis`` (``Test_Ref``, ``Test_Dis``), labels as a
``Val_Label/`` folder or one list file (``val_label.txt``, ``pipal21_val_labels.txt`` ...), or given
with ``labels=``. Scores are Elo ratings, higher is better. ``AXXXX_TT_LL``: reference ``AXXXX``,
distortion group ``TT`` (00..06 in training, 10 for the GAN outputs of validation/test), and ``TT_LL``
names one algorithm/setting across references (the per-algorithm analysis of the challenge's Figure 4).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError
from .base import Dataset, Row, find_ci, parse_float, read_label_text, require_dir, require_root

SPLITS = {"train": "Train", "val": "Val", "test": "Test"}
NAME = re.compile(r"^(A\d{4})_(\d{2})_(\d{2})(\.\w+)$", re.IGNORECASE)


def read_labels(path: str | Path) -> list[tuple[str, float]]:
    """``name, score`` lines (comma, optional spaces; blank lines skipped) from a file or a folder of .txt files."""
    path = Path(path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise InputError(f"label folder {path} holds no .txt files.")
    if not path.exists():
        raise InputError(f"label file {path} not found.")
    out: list[tuple[str, float]] = []
    for f in files:
        for lineno, line in enumerate(read_label_text(f).splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in re.split(r"[,\s]+", line) if p.strip()]
            if len(parts) < 2:
                raise InputError(f"{f}, line {lineno}: expected 'name,score', got {line!r}.")
            out.append((parts[0], parse_float(parts[1], f"{f}, line {lineno}")))
    if not out:
        raise InputError(f"{path}: no labels found (expected lines 'A0001_00_00.bmp,1520.0648').")
    return out


def _find_labels(root: Path, prefix: str, split: str) -> Path:
    folder = find_ci(root, f"{prefix}_Label")
    if folder is not None and folder.is_dir():
        return folder
    pattern = re.compile(rf".*{split}.*label.*\.(txt|csv)$", re.IGNORECASE)
    hits = sorted(p for p in root.iterdir() if p.is_file() and pattern.match(p.name))
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise InputError(f"PIPAL {split}: several label files in {root}: {', '.join(h.name for h in hits)}. "
                         "Choose one as the label file.", option="labels")
    raise InputError(f"PIPAL {split}: no labels in {root}: expected a folder {prefix}_Label/ (one .txt per reference, "
                     f"lines 'A0001_00_00.bmp,1520.0648') or a single list such as {split}_label.txt. "
                     "Give the label file.", option="labels")


def _dis_folder(root: Path, prefix: str, split: str) -> Path:
    for name in (f"{prefix}_Dis", f"{prefix}_Dist", f"{prefix}_Distortion"):
        found = find_ci(root, name)
        if found is not None and found.is_dir():
            return found
    raise InputError(f"PIPAL {split}: folder {prefix}_Dis/ not found in {root} (it should hold the distorted images "
                     f"such as A0001_00_00.bmp). Point the dataset root at the folder that contains {prefix}_Ref/ and {prefix}_Dis/.", option="root")


def _index(folder: Path, root: Path) -> dict[str, str]:
    """Lower-case file name -> path relative to ``root`` for every file below ``folder`` (os.walk: no stat per file)."""
    out = {}
    base = folder.relative_to(root).as_posix()
    for dirpath, _, files in os.walk(folder):
        rel = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        prefix = base if rel == "." else f"{base}/{rel}"
        for f in files:
            out.setdefault(f.lower(), f"{prefix}/{f}")
    return out


def read_pipal(root: str | Path, split: str = "train", labels: str | Path | None = None) -> Dataset:
    """Read one PIPAL split (train, val or test) in the official layout; see the module docstring."""
    if split not in SPLITS:
        raise InputError(f"PIPAL has the splits {', '.join(SPLITS)}; got {split!r}.")
    root = require_root(root, "PIPAL")
    prefix = SPLITS[split]
    ref_dir = require_dir(root, f"{prefix}_Ref", f"PIPAL {split}", "the reference images such as A0001.bmp")
    dis_dir = _dis_folder(root, prefix, split)
    entries = read_labels(labels if labels is not None else _find_labels(root, prefix, split))

    dis_index, ref_index = _index(dis_dir, root), _index(ref_dir, root)
    rows, seen, missing = [], set(), []
    for name, score in entries:
        m = NAME.match(name)
        if m is None:
            raise InputError(f"PIPAL label {name!r} is not of the form A0001_00_00.bmp (reference_group_index).")
        if name.lower() in seen:
            raise InputError(f"PIPAL labels name {name} twice. Remove the duplicate line.")
        seen.add(name.lower())
        ref_name = m.group(1) + m.group(4)
        dis, ref = dis_index.get(name.lower()), ref_index.get(ref_name.lower())
        if dis is None:
            missing.append(f"{dis_dir.name}/{name}")
        if ref is None:
            missing.append(f"{ref_dir.name}/{ref_name}")
        if dis is None or ref is None:
            continue
        rows.append(Row(dis, ref, score, group=m.group(2), system=f"{m.group(2)}_{m.group(3)}"))
    if missing:
        uniq = list(dict.fromkeys(missing))
        shown = ", ".join(uniq[:5]) + (f" ... ({len(uniq)} in all)" if len(uniq) > 5 else "")
        raise InputError(f"PIPAL {split}: {len(uniq)} image file(s) named by the labels are missing under {root}: "
                         f"{shown}. Copy the complete {prefix}_Ref/ and {prefix}_Dis/ folders there.")
    return Dataset("pipal", root, tuple(rows), higher_better=True, score_name="Elo MOS", split=split)
