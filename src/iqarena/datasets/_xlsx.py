"""Just enough of the Office Open XML spreadsheet format to read label tables (CSIQ's csiq.DMOS.xlsx)
without a spreadsheet library: sheet names, shared strings, numbers, inline and formula strings."""

from __future__ import annotations

import re
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from ..errors import InputError

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
_CELL = re.compile(r"([A-Z]+)(\d+)")


def _column(ref: str) -> int:
    letters = _CELL.match(ref).group(1)
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _text(node) -> str:
    return "".join(t.text or "" for t in node.iter(f"{{{_NS['m']}}}t"))


def read_xlsx(path: str | Path) -> dict[str, list[list]]:
    """Every sheet of a .xlsx file as rows of cell values (str or float; missing cells are None)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"cannot read {path} as an .xlsx spreadsheet: {exc}. Save it as .xlsx or export a CSV.") from exc
    with zf:
        names = set(zf.namelist())
        shared = []
        if "xl/sharedStrings.xml" in names:
            root = ET.fromstring(zf.read("xl/sharedStrings.xml"))
            shared = [_text(si) for si in root.findall("m:si", _NS)]
        rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        target = {r.get("Id"): r.get("Target") for r in rels.findall("rel:Relationship", _NS)}
        book = ET.fromstring(zf.read("xl/workbook.xml"))
        sheets: dict[str, list[list]] = {}
        for sheet in book.find("m:sheets", _NS):
            rid = sheet.get(f"{{{_NS['r']}}}id")
            t = target[rid]
            member = t.lstrip("/") if t.startswith("/") else str(PurePosixPath("xl") / t)
            sheets[sheet.get("name")] = _rows(ET.fromstring(zf.read(member)), shared)
    return sheets


def _rows(sheet, shared: list[str]) -> list[list]:
    rows: list[list] = []
    for row in sheet.iter(f"{{{_NS['m']}}}row"):
        values: dict[int, object] = {}
        col = -1
        for c in row.findall("m:c", _NS):
            col = _column(c.get("r")) if c.get("r") else col + 1
            kind, v = c.get("t"), c.find("m:v", _NS)
            if kind == "inlineStr":
                val = _text(c)
            elif v is None:
                continue
            elif kind == "s":
                val = shared[int(v.text)]
            elif kind in ("str", "e"):
                val = v.text or ""
            elif kind == "b":
                val = float(v.text)
            else:
                val = float(v.text)
            values[col] = val
        if values:
            width = max(values) + 1
            rows.append([values.get(i) for i in range(width)])
    return rows
