"""Reading images into float tensors in [0, 1], and pairing distorted with reference files.

Every mode Pillow opens is handled: grey (L, 1), palette (P, a grey palette stays grey), RGB,
RGBA and LA (alpha dropped), 16-bit grey (I;16) and 32-bit integer/float grey (I, F).
"""

from __future__ import annotations

import csv
import io
import os
import struct
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

#: what Pillow raises on a damaged, truncated or hostile file (its decoders are not uniform about it)
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  KeyError, ZeroDivisionError, struct.error)


def _to_array(img: Image.Image) -> np.ndarray:
    """Pillow image -> float32 array (H, W, C) in [0, 1], C = 1 or 3."""
    mode = img.mode
    if mode == "P":
        img = img.convert("L") if _palette_is_grey(img) else img.convert("RGB")
        mode = img.mode
    if mode in ("1", "L"):
        arr = np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
    elif mode == "LA":
        arr = np.asarray(img, dtype=np.float32)[..., :1] / 255.0
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32)[..., None] / 65535.0
    elif mode == "I":
        raw = np.asarray(img)
        peak = 65535.0 if raw.max(initial=0) > 255 else 255.0
        arr = raw.astype(np.float32)[..., None] / peak
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)[..., None]
    elif mode in ("RGB", "RGBA"):
        arr = np.asarray(img, dtype=np.float32)[..., :3] / 255.0
    else:  # CMYK, YCbCr, HSV, LAB ...
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return arr


def read_image(path: str | Path) -> torch.Tensor:
    """Read one image file as a float32 tensor (C, H, W) in [0, 1], C = 1 (grey) or 3 (RGB).

    A palette image whose palette is grey (for example a greyscale GIF) comes back with C = 1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}. Check the path.")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_array(img)
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {path} is too large to read safely: {exc} If you trust the file, raise the "
                         "limit (PIL.Image.MAX_IMAGE_PIXELS) or downscale the image first.") from exc
    except MemoryError:
        raise InputError(f"image {path} does not fit in memory once decoded. Downscale it first.") from None
    except _DECODE_ERRORS as exc:
        raise InputError(f"cannot read image {path}: {exc or type(exc).__name__}. The file is damaged, "
                         "truncated or not an image; give a PNG, BMP, JPEG, GIF or TIFF file.") from exc
    if not np.isfinite(arr).all():
        raise InputError(f"image {path} contains NaN or infinite values. Fix or replace the file.")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _palette_is_grey(img: Image.Image) -> bool:
    pal = np.asarray(img.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return bool(len(pal)) and bool((pal[:, 0] == pal[:, 1]).all() and (pal[:, 1] == pal[:, 2]).all())


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}. Check the path.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"no images in folder {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


def output_path(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` as a Path, or an IQAError if it exists and ``overwrite`` is off: nothing a user made is
    replaced silently."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; allow replacing it (overwrite=True), or choose another output.",
                         option="overwrite")
    return path


@contextmanager
def atomic_output(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; when the block ends without an error it replaces ``path``
    in one step (readers see the old file or the new one, never half of one), else it is removed.
    ``durable`` also flushes it to disk first (it survives a power cut, not only a killed process)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Pair:
    """One item to score: a distorted image and, for full-reference metrics, its reference."""

    dist: Path
    ref: Path | None = None


def collect_pairs(dist: str | Path | None = None, ref: str | Path | None = None,
                  pairs_csv: str | Path | None = None) -> list[Pair]:
    """Build the list of pairs from files, folders (paired by file name) or a CSV with columns dist,ref.

    Paths in the CSV are relative to the CSV's folder unless absolute. Without a reference, every
    pair has ``ref=None`` (only no-reference metrics apply).
    """
    if pairs_csv is not None:
        return _pairs_from_csv(Path(pairs_csv))
    if dist is None:
        raise InputError("nothing to score: give distorted images (a file or folder) or a pairs CSV.", option="dist")
    dist, ref = Path(dist), Path(ref) if ref is not None else None
    if dist.is_dir():
        dfiles = list_images(dist)
        if ref is None:
            return [Pair(d) for d in dfiles]
        if not ref.is_dir():
            raise InputError(f"the distorted images {dist} are a folder, so the references must be a folder too, "
                             f"but {ref} is not.", option="ref")
        rfiles = {p.name: p for p in list_images(ref)}
        missing = [d.name for d in dfiles if d.name not in rfiles]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(f"{len(missing)} distorted image(s) have no reference of the same name in {ref}: {shown}. "
                             "Name each reference like its distorted image, or give a pairs CSV.", option="pairs")
        return [Pair(d, rfiles[d.name]) for d in dfiles]
    if not dist.exists():
        raise InputError(f"distorted image {dist} does not exist. Check the path.", option="dist")
    if ref is not None and not ref.is_file():
        raise InputError(f"reference {ref} is not a file. With one distorted file, give one reference file.",
                         option="ref")
    return [Pair(dist, ref)]


def _pairs_from_csv(path: Path) -> list[Pair]:
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text. Save the file as "
                         "UTF-8.") from None
    try:
        return _pairs_from_text(path, text)
    except csv.Error as exc:
        raise InputError(f"{path} is not a readable CSV table: {exc}. Write one 'dist,ref' line per pair.") from None


def _pairs_from_text(path: Path, text: str) -> list[Pair]:
    base = path.parent
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "dist" not in fields:
            hint = (" Columns are separated by commas, not semicolons or tabs."
                    if any(";" in f or "\t" in f for f in fields) else "")
            raise InputError(f"{path}: the header must name a 'dist' column (and 'ref' for full-reference metrics); "
                             f"found {fields}.{hint}")
        out = []
        for row in reader:
            lineno = reader.line_num
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("dist"):
                raise InputError(f"{path}, line {lineno}: empty 'dist' value.")
            d = Path(row["dist"])
            r = Path(row["ref"]) if row.get("ref") else None
            out.append(Pair(d if d.is_absolute() else base / d, (r if r.is_absolute() else base / r) if r else None))
    if not out:
        raise InputError(f"{path} lists no pairs.")
    return out
