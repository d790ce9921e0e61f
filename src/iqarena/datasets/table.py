"""A dataset from one label table: CSV with a header, or headerless ``name,score`` lines.

Header names are matched case-insensitively: the image column may be called dist, distorted, image,
name ...; the reference column ref or reference (optional); the score column score, mos, dmos ...;
optional group and system (algorithm) columns. Paths are relative to ``root`` (default: the
table's folder). Without a header each line is ``name,score`` (one comma; a name may hold spaces)
or ``name score`` (whitespace), as PIPAL's label lists and challenge submissions.

Text is UTF-8; a leading byte-order mark (as Windows editors write) is dropped. Blank lines and lines
starting with ``#`` are skipped; line numbers in messages count every line of the file.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..errors import InputError
from .base import Dataset, Row, require_root, resolve_files

DIST = ("dist", "distorted", "dist_img", "dis_img", "dis", "image", "image_name", "img", "name", "filename", "file",
        "dis_img_path", "dist_path", "path")
REF = ("ref", "reference", "ref_img", "ref_img_path", "ref_path", "reference_image")
SCORE = ("score", "mos", "dmos", "label", "quality", "elo", "prediction", "pred")
GROUP = ("group", "type", "distortion", "dis_type", "dist_type", "category")
SYSTEM = ("system", "algorithm", "method")


def decode_text(data: bytes, source: str | Path) -> str:
    """``data`` decoded as UTF-8 without a leading byte-order mark; InputError naming the first bad line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{source}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text. Save the file "
                         "as UTF-8 (plain ASCII names and numbers are UTF-8).") from None


def data_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that is neither blank nor a ``#`` comment; numbers count from 1
    over all lines (``\\n``, ``\\r\\n`` or ``\\r`` endings)."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [(n, ln) for n, ln in enumerate(lines, start=1) if ln.strip() and not ln.lstrip().startswith("#")]


def split_line(line: str) -> list[str]:
    """The fields of a headerless line: split at commas when it has one, else at whitespace."""
    if "," in line:
        return [p.strip() for p in line.split(",")]
    return line.split()


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a float (``nan`` and ``inf`` included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(fields: list[str], names: tuple[str, ...]) -> str | None:
    low = {f.lower(): f for f in fields}
    return next((low[n] for n in names if n in low), None)


def is_header(cells: list[str]) -> bool:
    """Whether a first line's cells are a header: they name a known column and hold no number."""
    return _pick(cells, DIST + REF + SCORE) is not None and not any(is_number(c) for c in cells)


def read_rows(path: str | Path, score_column: str | None = None, text: str | None = None, *,
              image_column: str | None = None) -> list[Row]:
    """The rows of a label table, paths as written (not checked against any folder).

    ``text``: the table's content when it does not come from ``path`` itself (a file inside a zip).
    ``image_column`` / ``score_column``: the columns to use (case-insensitive); naming either makes a
    header line with both of them required.
    """
    return [row for _, row in numbered_rows(path, score_column, text, image_column=image_column)]


def read_text_file(path: Path, what: str) -> str:
    """A text file's content (UTF-8, BOM dropped); InputError naming ``what`` when it is not there."""
    if not path.is_file():
        raise InputError(f"{what} {path} not found. Check the path.")
    return decode_text(path.read_bytes(), path)


def numbered_rows(path: str | Path, score_column: str | None = None, text: str | None = None, *,
                  image_column: str | None = None) -> list[tuple[int, Row]]:
    """:func:`read_rows` with the line number of each row."""
    path = Path(path)
    lines = data_lines(read_text_file(path, "label file") if text is None else text)
    if not lines:
        raise InputError(f"{path} is empty: it holds no 'name,score' lines and no table. Give the right file.")
    explicit = tuple(c for c in (image_column, score_column) if c)
    try:
        if not explicit and not is_header([c.strip() for c in next(csv.reader([lines[0][1]]))]):
            return _headerless(path, lines)
        return _table(path, lines, image_column, score_column)
    except csv.Error as exc:
        raise InputError(f"{path} is not a readable table: {exc}. Write one 'name,score' line per image, or a "
                         "CSV table with a header.") from None


def _table(path: Path, lines: list[tuple[int, str]], image_column: str | None,
           score_column: str | None) -> list[tuple[int, Row]]:
    reader = csv.reader(ln for _, ln in lines)
    fields = [f.strip() for f in next(reader)]
    dist = _pick(fields, (image_column.lower(),) if image_column else DIST)
    score = _pick(fields, (score_column.lower(),) if score_column else SCORE)
    if dist is None or score is None:
        raise InputError(f"{path}: the header {_wanted(image_column, score_column)}; it has "
                         f"{', '.join(fields)}. Name the columns in the header, or choose yours with the image "
                         "and score column options.")
    ref, group, system = _pick(fields, REF), _pick(fields, GROUP), _pick(fields, SYSTEM)
    where = {name: fields.index(name) for name in (dist, score, ref, group, system) if name}

    def cell(cells: list[str], name: str | None) -> str:
        k = where.get(name, len(cells))
        return cells[k].strip() if k < len(cells) else ""

    rows = []
    for cells in reader:
        lineno = lines[reader.line_num - 1][0]
        if not cell(cells, dist):
            raise InputError(f"{path}, line {lineno}: empty image name. Write the image's path in column {dist!r}.")
        rows.append((lineno, Row(cell(cells, dist), cell(cells, ref) or None,
                                 _score(cell(cells, score), path, lineno),
                                 group=cell(cells, group), system=cell(cells, system))))
    return rows


def _wanted(image_column: str | None, score_column: str | None) -> str:
    """What the header lacks, in words."""
    if image_column and score_column:
        return f"needs columns {image_column!r} and {score_column!r}"
    image = f"column {image_column!r}" if image_column else "an image column (dist, image, name ...)"
    score = f"column {score_column!r}" if score_column else "a score column (score, mos, dmos ...)"
    return f"needs {image} and {score}"


def _headerless(path: Path, lines: list[tuple[int, str]]) -> list[tuple[int, Row]]:
    rows = []
    for lineno, line in lines:
        parts = split_line(line)
        if len(parts) != 2 or not parts[0]:
            raise InputError(f"{path}, line {lineno}: expected 'name,score' (or a CSV header), got {line!r}. Write "
                             "one image name and one score per line.")
        rows.append((lineno, Row(parts[0], None, _score(parts[1], path, lineno))))
    return rows


def _score(text: str, path: Path, lineno: int) -> float:
    """A score cell as a finite float; InputError with the file, line and fix otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        problem = "is not a number" if value is None else "is not finite"
        raise InputError(f"{path}, line {lineno}: score {text!r} {problem}. Write every score as a finite decimal "
                         "number such as 0.731.")
    return value


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
