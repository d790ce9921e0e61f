"""A dataset from one label table: CSV with a header, or headerless ``name,score`` lines.

Header names are matched case-insensitively: the image column may be called dist, distorted, image,
name ...; the reference column ref or reference (optional); the score column score, mos, dmos ...;
optional group and system (algorithm) columns. Paths are relative to ``root`` (default: the
table's folder). Without a header each line is ``name,score`` (commas and/or spaces), as PIPAL's
label lists and challenge submissions.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import InputError
from .base import Dataset, Row, parse_float, require_root, resolve_files

DIST = ("dist", "distorted", "dist_img", "dis_img", "dis", "image", "image_name", "img", "name", "filename", "file",
        "dis_img_path", "dist_path", "path")
REF = ("ref", "reference", "ref_img", "ref_img_path", "ref_path", "reference_image")
SCORE = ("score", "mos", "dmos", "label", "quality", "elo", "prediction", "pred")
GROUP = ("group", "type", "distortion", "dis_type", "dist_type", "category")
SYSTEM = ("system", "algorithm", "method")


def _pick(fields: list[str], names: tuple[str, ...]) -> str | None:
    low = {f.lower(): f for f in fields}
    return next((low[n] for n in names if n in low), None)


def read_rows(path: str | Path, score_column: str | None = None, text: str | None = None) -> list[Row]:
    """The rows of a label table, paths as written (not checked against any folder).

    ``text``: the table's content when it does not come from ``path`` itself (a file inside a zip).
    """
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise InputError(f"label file {path} not found.")
        text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path} is empty.")
    first = [c.strip() for c in next(csv.reader([lines[0]]))]
    if _pick(first, DIST + REF + SCORE) is None and score_column not in first:
        return _headerless(path, lines)
    reader = csv.DictReader(lines)
    fields = [f.strip() for f in reader.fieldnames or []]
    dist = _pick(fields, DIST)
    score = score_column if score_column in fields else _pick(fields, SCORE) if score_column is None else None
    if dist is None or score is None:
        want = f"a score column ({score_column!r})" if score_column else "a score column (score, mos, dmos ...)"
        raise InputError(f"{path}: the header needs an image column (dist, image, name ...) and {want}; found {fields}.")
    ref, group, system = _pick(fields, REF), _pick(fields, GROUP), _pick(fields, SYSTEM)
    rows = []
    for lineno, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not row.get(dist):
            raise InputError(f"{path}, line {lineno}: empty image name.")
        rows.append(Row(row[dist], row.get(ref) or None if ref else None,
                        parse_float(row.get(score, ""), f"{path}, line {lineno}"),
                        group=row.get(group, "") if group else "", system=row.get(system, "") if system else ""))
    return rows


def _headerless(path: Path, lines: list[str]) -> list[Row]:
    rows = []
    for lineno, line in enumerate(lines, start=1):
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        if len(parts) < 2:
            raise InputError(f"{path}, line {lineno}: expected 'name,score' (or a CSV header), got {line!r}.")
        rows.append(Row(parts[0], None, parse_float(parts[1], f"{path}, line {lineno}")))
    return rows


def read_csv_dataset(labels: str | Path, root: str | Path | None = None, higher_better: bool = True,
                     score_column: str | None = None, name: str = "csv") -> Dataset:
    """A dataset from a label table; every listed image (and reference) must exist under ``root``."""
    labels = Path(labels)
    root = require_root(root if root is not None else labels.parent, "csv dataset")
    rows = read_rows(labels, score_column)
    notes = [f"labels from {labels.name}"]
    if not higher_better:
        notes.append("labels read as lower-is-better")
    return Dataset(name, root, tuple(resolve_files(f"csv dataset {labels.name}", root, rows)),
                   higher_better=higher_better, score_name="score", notes=tuple(notes))
