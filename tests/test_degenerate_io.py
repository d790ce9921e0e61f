"""Degenerate input (issue 16) for the readers, the label parsers and the commands.

Image files truncated, with flipped bytes or junk, and ones that claim huge dimensions (Pillow's
decompression-bomb limit); label tables and pairs lists with byte-order marks, other delimiters, quotes,
NUL bytes, non-UTF-8 bytes and duplicate names; and user errors given to the ``iqarena`` command. The
invariant: a result, or an ``IQAError`` naming the problem; for the command, exit code 2 and one line
``error: ...`` with no traceback. Hypothesis runs derandomized with few examples (seconds in all).
"""

from __future__ import annotations

import io
import struct
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from iqarena.datasets import load_dataset
from iqarena.datasets.pipal import read_labels
from iqarena.datasets.table import read_rows
from iqarena.errors import IQAError
from iqarena.io import collect_pairs, read_image

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _encoded(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    arr = {"L": rng.integers(0, 256, (9, 11), dtype=np.uint8), "RGB": rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
           "RGBA": rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
           "I;16": rng.integers(0, 65536, (9, 11), dtype=np.uint16)}[mode]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)  # the mode follows the array (L, RGB, RGBA, I;16)
    return buf.getvalue()


FILES = {f"{fmt}-{mode}": _encoded(fmt, mode) for fmt, mode in
         [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "I;16"), ("JPEG", "L"), ("JPEG", "RGB"),
          ("BMP", "RGB"), ("GIF", "L"), ("TIFF", "RGB"), ("TIFF", "I;16"), ("WEBP", "RGB")]}


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (valid CRC), followed by a tiny image's data."""
    data = bytearray(_encoded("PNG", "L"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@st.composite
def damaged(draw):
    raw = bytearray(FILES[draw(st.sampled_from(sorted(FILES)))])
    how = draw(st.sampled_from(["truncate", "flip", "junk", "empty-ish"]))
    if how == "truncate":
        del raw[draw(st.integers(0, len(raw) - 1)):]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif how == "junk":
        raw += draw(st.binary(min_size=1, max_size=64))
    else:
        raw = raw[:draw(st.integers(0, 16))]
    return bytes(raw)


@FAST
@given(damaged())
def test_damaged_image_files_read_or_raise_iqaerror(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("img") / "x.png"
    path.write_bytes(data)
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1 << 16  # a flipped header byte must not make the test decode gigapixels
    try:
        x = read_image(path)
    except IQAError as exc:
        assert str(path) in str(exc)
        return
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert x.ndim == 3 and x.shape[0] in (1, 3) and x.isfinite().all()


def test_every_bundled_format_reads(tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
        x = read_image(tmp_path / name)
        assert x.shape[1:] == (9, 11) and x.shape[0] == (1 if name.endswith(("-L", "I;16")) else 3)


@pytest.mark.parametrize("size", [(30000, 30000), (100000, 2000)])
def test_decompression_bomb_is_an_iqaerror(tmp_path, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(*size))
    with pytest.raises(IQAError, match="too large to read safely.*MAX_IMAGE_PIXELS"):
        read_image(path)


# --- label tables, PIPAL lists, pairs files ------------------------------------------------------------------

CHUNKS = ["a.png", "b.png", "A0001_00_00.bmp", "dist", "ref", "score", "mos", "image", ",", ";", "\t", " ", "\n",
          "\r\n", "\r", "#", "\ufeff", '"', "0.5", "1e3", "-2", "nan", "inf", "x", "\x00", "é", "12,5", ",,"]


@st.composite
def label_bytes(draw):
    text = "".join(draw(st.lists(st.sampled_from(CHUNKS), max_size=30)))
    raw = text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:  # a spreadsheet export in another code page, or a stray byte
        raw += draw(st.sampled_from([b"\xe9", b"\xff\xfe", b"\x80abc"]))
    return raw


@FAST
@given(label_bytes())
def test_label_parsers_read_or_raise_iqaerror(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("labels")
    path = folder / "labels.txt"
    path.write_bytes(raw)
    for parse in (read_rows, read_labels, lambda p: collect_pairs(pairs_csv=p)):
        try:
            out = parse(path)
        except IQAError:
            continue
        assert isinstance(out, list) and out


def test_bom_semicolons_and_duplicates(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_bytes("\ufeffdist,score\r\na.png,0.5\r\nb.png,0.7\r\n".encode())
    assert [r.dist for r in read_rows(labels)] == ["a.png", "b.png"]
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes("\ufeffdist,ref\na.png,b.png\n".encode())
    assert collect_pairs(pairs_csv=pairs)[0].dist == tmp_path / "a.png"
    pairs.write_text("dist;ref\na.png;b.png\n")
    with pytest.raises(IQAError, match="separated by commas"):
        collect_pairs(pairs_csv=pairs)
    pairs.write_bytes(b"dist,ref\ncaf\xe9.png,b.png\n")
    with pytest.raises(IQAError, match="line 2: byte 0xe9 is not UTF-8"):
        collect_pairs(pairs_csv=pairs)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name)
    labels.write_text("dist,score\na.png,0.5\nb.png,0.7\nA.png,0.6\n")
    with pytest.raises(IQAError, match="name the image A.png twice"):
        load_dataset("csv", labels=labels)


def test_official_label_files_with_a_bom_read(tmp_path):
    """KADID-10k's dmos.csv saved by a Windows editor (BOM) and TID2013's list in another code page."""
    root = tmp_path / "kadid"
    (root / "images").mkdir(parents=True)
    for n in ("I01.png", "I01_01_01.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / n)
    (root / "dmos.csv").write_bytes("\ufeffdist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.5,0.1\n".encode())
    assert load_dataset("kadid10k", root).rows[0].score == 4.5
    tid = tmp_path / "tid"
    for d in ("reference_images", "distorted_images"):
        (tid / d).mkdir(parents=True)
    (tid / "mos_with_names.txt").write_bytes(b"5.1 i01_01_1.bmp\n4.\xe9 i01_01_2.bmp\n")
    with pytest.raises(IQAError, match="line 2: byte 0xe9 is not UTF-8"):
        load_dataset("tid2013", tid)


# --- the command ----------------------------------------------------------------------------------------------

def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """``iqarena ARGS`` in this process through the real entry point: (exit code, stdout, stderr)."""
    from iqarena.cli import main

    monkeypatch.setattr(sys, "argv", ["iqarena", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code: int, err: str, match: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]


@pytest.fixture
def files(tmp_path):
    def save(name, arr):
        Image.fromarray(arr).save(tmp_path / name)
        return tmp_path / name

    rng = np.random.default_rng(0)
    out = {"tiny": save("tiny.png", np.full((10, 10, 3), 128, np.uint8)),
           "black": save("black.png", np.zeros((128, 128, 3), np.uint8)),
           "grey": save("grey.png", np.full((64, 64), 128, np.uint8)),
           "a": save("a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
           "b": save("b.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))}
    (tmp_path / "broken.png").write_bytes(FILES["PNG-RGB"][:40])
    (tmp_path / "bomb.png").write_bytes(png_claiming(30000, 30000))
    (tmp_path / "semi.csv").write_text("dist;ref\na.png;a.png\n")
    out.update(broken=tmp_path / "broken.png", bomb=tmp_path / "bomb.png", semi=tmp_path / "semi.csv", root=tmp_path)
    return out


def test_user_errors_exit_2_with_one_line(monkeypatch, capsys, files):
    f = files
    cases = [
        (("score", "-m", "ssim", "--dist", f["tiny"], "--ref", f["tiny"]), "ssim needs images of at least 11x11"),
        (("score", "-m", "ssim", "--dist", f["broken"], "--ref", f["broken"]), "cannot read image"),
        (("score", "-m", "psnr", "--dist", f["bomb"], "--ref", f["bomb"]), "too large to read safely"),
        (("score", "-m", "psnr", "--dist", f["a"], "--ref", f["b"]), "size mismatch"),
        (("score", "-m", "nosuchmetric", "--dist", f["a"]), "unknown metric"),
        (("score", "-m", "psnr", "--dist", f["root"] / "missing.png", "--ref", f["a"]), "does not exist"),
        (("score", "-m", "psnr", "--pairs", f["semi"]), "separated by commas"),
        (("score", "-m", "niqe", "--dist", f["tiny"]), "niqe needs images of at least 96x96"),
        (("evaluate", "--dataset", "tid2013", "--root", f["root"] / "nothing"), "does not exist"),
    ]
    for args, match in cases:
        assert_user_error(*run_cli(monkeypatch, capsys, *args)[::2], match)


def test_nan_and_inf_cells_are_marked(monkeypatch, capsys, files):
    code, out, _ = run_cli(monkeypatch, capsys, "score", "-m", "psnr", "-m", "fsim", "-m", "gmsd", "--dist",
                           files["grey"], "--ref", files["grey"])
    assert code == 0
    assert "inf*" in out and "nan*" in out
    assert "inf* psnr: identical images" in out and "nan* fsim: no structure in either image" in out
    code, out, _ = run_cli(monkeypatch, capsys, "score", "-m", "niqe", "-m", "piqe", "--dist", files["black"],
                           "--format", "csv")
    rows = out.strip().splitlines()
    assert code == 0 and rows[0] == "dist,ref,metric,score,note"
    assert rows[1].split(",")[3] == "nan" and "flat image" in rows[1] and rows[2].endswith(",")


@settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(label_bytes())
def test_score_with_any_pairs_file_exits_0_or_2(monkeypatch, capsys, tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("cli")
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(folder / "a.png")
    (folder / "pairs.csv").write_bytes(raw)
    code, _, err = run_cli(monkeypatch, capsys, "score", "-m", "psnr", "--pairs", folder / "pairs.csv")
    if code:
        assert_user_error(code, err, "")


def test_metrics_lists_the_minimum_sizes(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "metrics")
    assert code == 0 and "min size" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("│ ssim "))
    assert "11x11" in line


def test_evaluate_reports_the_rows_each_metric_lost_and_why(monkeypatch, capsys, tmp_path):
    import json

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(np.full((48, 48), 90, np.uint8)).save(tmp_path / "flat.png")
    rows = ["dist,ref,score"]
    for i in range(6):
        noisy = np.clip(ref + rng.normal(0, 4 * (i + 1), ref.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / f"d{i}.png")
        rows.append(f"d{i}.png,ref.png,{10 - i}")
    rows += ["ref.png,ref.png,11", "flat.png,flat.png,9.5"]  # PSNR inf twice; FSIM NaN on the flat pair
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--dataset", "csv", "--labels", tmp_path / "labels.csv",
                           "-m", "psnr", "-m", "fsim", "--bootstrap", "0", "--no-plots", "-o", out,
                           "--store", tmp_path / "store")
    assert code == 0, err
    assert "psnr: 2 image(s) with a non-finite score left out of its statistics: 2 inf (identical images" in err
    assert "fsim: 1 image(s) with a non-finite score left out of its statistics: 1 nan (no structure" in err
    run = json.loads((out / "run.json").read_text())
    assert run["dropped"]["psnr"]["inf"]["rows"] == 2 and run["dropped"]["fsim"]["nan"]["rows"] == 1
    table = {m["metric"]: m for m in json.loads((out / "table.json").read_text())["metrics"]}
    assert table["psnr"]["dropped"] == 2 and table["psnr"]["n"] == 6
    assert "identical images" in table["psnr"]["dropped_why"]["inf"]["cause"]
    assert "2 inf (identical images" in (out / "report.md").read_text()
