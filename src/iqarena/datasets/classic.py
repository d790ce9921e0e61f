"""Readers for the classic synthetic-distortion sets in their official layouts.

TID2013 / TID2008 (Ponomarenko et al.)::

    mos_with_names.txt            lines "5.51429 i01_01_1.bmp" (MOS 0-9, higher is better)
    reference_images/I01.BMP      25 references
    distorted_images/i01_01_1.bmp reference_type_level (TID2013: 24 types x 5 levels; TID2008: 17 x 4)

LIVE release 2 (Sheikh et al.)::

    refimgs/*.bmp                 29 references
    jp2k/ jpeg/ wn/ gblur/ fastfading/   img1.bmp ... (227, 233, 174, 174, 174 images, in this order)
    dmos.mat                      dmos, orgs (1 x 982, same order); dmos_realigned.mat: dmos_new
    refnames_all.mat              refnames_all (1 x 982): the reference of each image
    DMOS, lower is better. Rows with orgs == 1 (the references themselves) are left out.

CSIQ (Larson and Chandler)::

    src_imgs/1600.png             30 references
    dst_imgs/awgn/1600.AWGN.1.png ... folders awgn, jpeg, jpeg2000, fnoise, blur, contrast
    csiq.DMOS.xlsx                sheet with columns image, dst_idx, dst_type, dst_lev, dmos_std, dmos
                                  (or the same columns in a .csv). DMOS, lower is better.

KADID-10k (Lin et al.)::

    dmos.csv                      dist_img,ref_img,dmos,var (the 'dmos' is a DCR mean, higher is better)
    images/I01.png, images/I01_01_01.png   reference_type_level
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError, ResourceError
from .base import (Dataset, Row, as_text, find_ci, label_table, parse_float, read_label_text, require_dir,
                   require_file, require_root, resolve_files)


# ---------------------------------------------------------------- TID2013 / TID2008

_TID = re.compile(r"^(i\d{2})_(\d{2})_(\d)\.(\w+)$", re.IGNORECASE)


def _read_tid(root: str | Path, name: str) -> Dataset:
    root = require_root(root, name)
    labels = require_file(root, "mos_with_names.txt", name, "lines 'MOS image_name'")
    ref_dir = require_dir(root, "reference_images", name, "the references I01.BMP ...")
    dis_dir = require_dir(root, "distorted_images", name, "the distorted images i01_01_1.bmp ...")
    rows = []
    for lineno, line in enumerate(read_label_text(labels).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise InputError(f"{labels}, line {lineno}: expected 'MOS image_name', got {line!r}.")
        m = _TID.match(parts[1])
        if m is None:
            raise InputError(f"{labels}, line {lineno}: image name {parts[1]!r} is not of the form i01_01_1.bmp.")
        ref = f"{ref_dir.name}/{m.group(1).upper()}.{m.group(4)}"
        rows.append(Row(f"{dis_dir.name}/{parts[1]}", ref, parse_float(parts[0], f"{labels}, line {lineno}"),
                        group=m.group(2), system=f"{m.group(2)}_{m.group(3)}"))
    return Dataset(name.lower(), root, tuple(resolve_files(name, root, rows)), score_name="MOS")


def read_tid2013(root: str | Path) -> Dataset:
    """TID2013: 3,000 images, 25 references, 24 distortion types at 5 levels; MOS higher is better."""
    return _read_tid(root, "TID2013")


def read_tid2008(root: str | Path) -> Dataset:
    """TID2008: 1,700 images, 25 references, 17 distortion types at 4 levels; MOS higher is better."""
    return _read_tid(root, "TID2008")


# ---------------------------------------------------------------- LIVE release 2

LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


def _loadmat(path: Path, key: str, dataset: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (ValueError, NotImplementedError, OSError) as exc:
        raise InputError(f"{dataset}: cannot read {path}: {exc}.") from exc
    if key not in data:
        found = ", ".join(k for k in data if not k.startswith("__"))
        raise InputError(f"{dataset}: {path.name} has no variable {key!r} (found: {found}).")
    return data[key]


def _cellstr(arr: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings (any shape) as a flat list of str."""
    out = []
    for item in np.asarray(arr, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        out.append(str(item).strip())
    return out


def read_live(root: str | Path, realigned: bool = True) -> Dataset:
    """LIVE release 2: 779 distorted images of 29 references, 5 types; DMOS, lower is better.

    ``realigned=True`` (default) uses ``dmos_realigned.mat`` (``dmos_new``) when present, as the
    LIVE authors recommend; otherwise ``dmos.mat``.
    """
    root = require_root(root, "LIVE")
    ref_dir = require_dir(root, "refimgs", "LIVE", "the 29 reference images")
    folders = [require_dir(root, f, "LIVE", f"{n} images img1.bmp ... img{n}.bmp") for f, n in LIVE_FOLDERS]
    aligned = find_ci(root, "dmos_realigned.mat")
    if realigned and aligned is not None:
        dmos = _loadmat(aligned, "dmos_new", "LIVE").ravel().astype(np.float64)
        orgs = _loadmat(aligned, "orgs", "LIVE").ravel()
        note = "DMOS from dmos_realigned.mat (dmos_new)"
    else:
        path = require_file(root, "dmos.mat", "LIVE", "variables dmos and orgs")
        dmos = _loadmat(path, "dmos", "LIVE").ravel().astype(np.float64)
        orgs = _loadmat(path, "orgs", "LIVE").ravel()
        note = "DMOS from dmos.mat"
    refs = _cellstr(_loadmat(require_file(root, "refnames_all.mat", "LIVE", "variable refnames_all"),
                             "refnames_all", "LIVE"))
    total = sum(n for _, n in LIVE_FOLDERS)
    if not (dmos.size == orgs.size == len(refs) == total):
        raise InputError(f"LIVE: expected {total} entries in dmos, orgs and refnames_all, found "
                         f"{dmos.size}, {orgs.size}, {len(refs)}. Is this release 2?")
    rows, k = [], 0
    for folder, (kind, n) in zip(folders, LIVE_FOLDERS):
        for j in range(1, n + 1):
            if not orgs[k]:
                rows.append(Row(f"{folder.name}/img{j}.bmp", f"{ref_dir.name}/{refs[k]}", float(dmos[k]), group=kind))
            k += 1
    return Dataset("live", root, tuple(resolve_files("LIVE", root, rows)), higher_better=False, score_name="DMOS",
                   notes=(note, "reference images (orgs == 1) left out"))


# ---------------------------------------------------------------- CSIQ

CSIQ_TYPES = {  # dst_type text -> (folder, file-name token); dst_idx 1..6 in this order
    "awgn": ("awgn", "AWGN"), "jpeg": ("jpeg", "JPEG"), "jpeg2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"), "blur": ("blur", "BLUR"), "contrast": ("contrast", "contrast")}
_CSIQ_ALIASES = {"noise": "awgn", "whitenoise": "awgn", "jp2k": "jpeg2000", "pinknoise": "fnoise"}


def read_xlsx_sheets(path: Path) -> dict[str, list[list]]:
    """Every sheet of a .xlsx workbook (openpyxl, cached values of formulas) as rows of cell values: text,
    or numbers as floats (CSIQ's image ``1600`` is 1600.0); empty rows are left out, missing cells are None."""
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:
        raise ResourceError(f"reading {path.name} needs openpyxl: pip install 'iqarena[datasets]'. Or put a CSV "
                            "export of the sheet (same columns, e.g. csiq.DMOS.csv) in its place; CSV needs no "
                            "extra package.") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            return {ws.title: _sheet_rows(ws) for ws in book.worksheets}
        finally:
            book.close()
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, SyntaxError) as exc:
        raise InputError(f"cannot read {path} as an .xlsx spreadsheet: {exc}. Save it as .xlsx or export a "
                         "CSV.") from exc


def _sheet_rows(ws) -> list[list]:
    ws.reset_dimensions()  # some writers store a wrong used range; read every cell there is
    rows = []
    for row in ws.iter_rows(values_only=True):
        cells = [float(v) if isinstance(v, (int, bool)) else v for v in row]
        while cells and cells[-1] is None:
            cells.pop()
        if cells:
            rows.append(cells)
    return rows


def _csiq_table(root: Path) -> tuple[Path, list[list]]:
    candidates = [p for p in root.iterdir() if p.is_file() and p.name.lower().startswith("csiq")
                  and p.suffix.lower() in (".xlsx", ".csv")]
    if not candidates:
        raise InputError(f"CSIQ: no label table in {root}: expected csiq.DMOS.xlsx (or a .csv export of it with "
                         "columns image, dst_idx, dst_type, dst_lev, dmos).")
    candidates.sort(key=lambda p: ("dmos" not in p.name.lower(), p.suffix.lower() != ".xlsx", p.name))
    path = candidates[0]
    if path.suffix.lower() == ".csv":
        with label_table(path) as fh:
            return path, [row for row in csv.reader(fh)]
    for rows in read_xlsx_sheets(path).values():
        for i, row in enumerate(rows[:20]):
            head = [as_text(c).lower() if c is not None else "" for c in row]
            if "image" in head and "dmos" in head:
                return path, rows[i:]
    raise InputError(f"CSIQ: no sheet of {path.name} has a header row with 'image' and 'dmos' columns.")


def read_csiq(root: str | Path) -> Dataset:
    """CSIQ: 866 distorted images of 30 references, 6 types; DMOS in [0, 1], lower is better."""
    root = require_root(root, "CSIQ")
    src = require_dir(root, "src_imgs", "CSIQ", "the 30 reference PNGs")
    dst = require_dir(root, "dst_imgs", "CSIQ", "folders awgn, jpeg, jpeg2000, fnoise, blur, contrast")
    path, table = _csiq_table(root)
    head = [as_text(c).lower() if c is not None else "" for c in table[0]]
    need = ["image", "dst_lev", "dmos"]
    missing = [c for c in need if c not in head] + ([] if {"dst_type", "dst_idx"} & set(head) else ["dst_type"])
    if missing:
        raise InputError(f"CSIQ: {path.name} lacks the column(s) {', '.join(missing)} (found {head}).")
    col = {name: head.index(name) for name in head if name}
    order = list(CSIQ_TYPES)
    rows, folders = [], {}
    for lineno, cells in enumerate(table[1:], start=2):
        cells = list(cells) + [None] * (len(head) - len(cells))
        if cells[col["image"]] in (None, "") or cells[col["dmos"]] in (None, ""):
            continue
        image = as_text(cells[col["image"]])
        if "dst_type" in col and cells[col["dst_type"]] not in (None, ""):
            key = re.sub(r"[\s_-]", "", as_text(cells[col["dst_type"]]).lower())
            key = _CSIQ_ALIASES.get(key, key)
        else:
            key = order[int(float(cells[col["dst_idx"]])) - 1]
        if key not in CSIQ_TYPES:
            raise InputError(f"CSIQ: {path.name}, row {lineno}: unknown distortion type {key!r}.")
        folder, token = CSIQ_TYPES[key]
        if folder not in folders:
            found = find_ci(dst, folder)
            if found is None:
                raise InputError(f"CSIQ: folder dst_imgs/{folder}/ not found in {root}.")
            folders[folder] = found.name
        level = as_text(cells[col["dst_lev"]])
        score = parse_float(as_text(cells[col["dmos"]]), f"{path.name}, row {lineno}")
        rows.append(Row(f"{dst.name}/{folders[folder]}/{image}.{token}.{level}.png", f"{src.name}/{image}.png", score,
                        group=key, system=f"{key}.{level}"))
    if not rows:
        raise InputError(f"CSIQ: {path.name} holds no rated images.")
    return Dataset("csiq", root, tuple(resolve_files("CSIQ", root, rows)), higher_better=False, score_name="DMOS",
                   notes=(f"labels from {path.name}",))


# ---------------------------------------------------------------- KADID-10k

_KADID = re.compile(r"^I\d+_(\d{2})_(\d{2})\.\w+$", re.IGNORECASE)


def read_kadid10k(root: str | Path) -> Dataset:
    """KADID-10k: 10,125 images of 81 references, 25 types at 5 levels; DCR mean ('dmos'), higher is better."""
    root = require_root(root, "KADID-10k")
    labels = require_file(root, "dmos.csv", "KADID-10k", "columns dist_img,ref_img,dmos,var")
    images = require_dir(root, "images", "KADID-10k", "the distorted and reference PNGs")
    rows = []
    with label_table(labels) as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if not {"dist_img", "ref_img", "dmos"} <= set(fields):
            raise InputError(f"KADID-10k: {labels.name} needs columns dist_img, ref_img, dmos; found {fields}.")
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            m = _KADID.match(row["dist_img"])
            group, system = (m.group(1), f"{m.group(1)}_{m.group(2)}") if m else ("", "")
            rows.append(Row(f"{images.name}/{row['dist_img']}", f"{images.name}/{row['ref_img']}",
                            parse_float(row["dmos"], f"{labels.name}, line {lineno}"), group=group, system=system))
    return Dataset("kadid10k", root, tuple(resolve_files("KADID-10k", root, rows)), score_name="DCR MOS")
