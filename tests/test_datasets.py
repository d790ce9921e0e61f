"""Dataset readers on the official layouts: real PIPAL label files with stand-in images written at the
official names, the real CLIVE subset (skipped when ../shared is absent), synthetic stand-ins for the
other sets, and seeded splits by reference."""

from __future__ import annotations

import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from iqarena import IQAError
from iqarena.datasets import (Dataset, Row, load_dataset, read_clive, read_csiq, read_csv_dataset, read_kadid10k,
                              read_koniq10k, read_live, read_pipal, read_tid2013, split_by_reference)
from iqarena.datasets.classic import read_xlsx_sheets
from iqarena.datasets.pipal import read_labels
from iqarena.errors import InputError, ResourceError

from conftest import SHARED

DATA = Path(__file__).parent / "data" / "pipal"
TRAIN = DATA / "pipal_train_labels_A0001-A0002.txt"
VAL = DATA / "pipal21_val_labels_A0005-A0019.txt"
PIPAL_LABELS = SHARED / "data" / "pipal-labels"
CLIVE = SHARED / "data" / "clive"
# images per distortion group and reference in PIPAL training (groups 00..06; 116 in all)
PIPAL_GROUP_SIZES = {"00": 12, "01": 16, "02": 10, "03": 24, "04": 13, "05": 14, "06": 27}


def _png(path: Path, size: int = 8, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _touch(path: Path) -> None:
    try:
        open(path, "wb").close()
    except FileNotFoundError:
        path.parent.mkdir(parents=True)
        open(path, "wb").close()


def _official_pipal(root: Path, lines: list[str], prefix: str = "Train", per_reference_labels: bool = True,
                    write=_png) -> list[tuple[str, float]]:
    """The official layout for the given label lines: {prefix}_Ref, {prefix}_Dis, {prefix}_Label/AXXXX.txt."""
    entries = [(name.strip(), float(score)) for name, score in (ln.split(",") for ln in lines if ln.strip())]
    by_ref: dict[str, list[str]] = {}
    for name, score in entries:
        by_ref.setdefault(name[:5], []).append(f"{name},{score}")  # official per-reference format, no space
        write(root / f"{prefix}_Dis" / name)
    for ref, ls in by_ref.items():
        write(root / f"{prefix}_Ref" / f"{ref}.bmp")
        if per_reference_labels:
            (root / f"{prefix}_Label").mkdir(parents=True, exist_ok=True)
            (root / f"{prefix}_Label" / f"{ref}.txt").write_text("\n".join(ls) + "\n")
    return entries


# ---------------------------------------------------------------- PIPAL

def test_pipal_train_official_layout(tmp_path):
    entries = _official_pipal(tmp_path, TRAIN.read_text().splitlines())
    ds = read_pipal(tmp_path, "train")
    assert len(ds) == 232 and ds.higher_better and ds.split == "train"
    assert [(Path(r.dist).name, r.score) for r in ds.rows] == entries
    first = ds.rows[0]
    assert first == Row("Train_Dis/A0001_00_00.bmp", "Train_Ref/A0001.bmp", 1520.0648, "00", "00_00")
    assert {r.ref for r in ds.rows} == {"Train_Ref/A0001.bmp", "Train_Ref/A0002.bmp"}
    per_ref_group = Counter((r.ref, r.group) for r in ds.rows)
    for ref in ("Train_Ref/A0001.bmp", "Train_Ref/A0002.bmp"):
        assert {g: per_ref_group[(ref, g)] for g in PIPAL_GROUP_SIZES} == PIPAL_GROUP_SIZES
    assert len({r.system for r in ds.rows}) == 116
    assert all(p.dist.is_file() and p.ref.is_file() for p in ds.pairs())


def test_pipal_distorted_images_in_subfolders(tmp_path):
    _official_pipal(tmp_path, TRAIN.read_text().splitlines())
    part = tmp_path / "Train_Dis" / "Distortion_2"
    part.mkdir()
    moved = sorted((tmp_path / "Train_Dis").glob("A0002_*.bmp"))
    for p in moved:
        p.rename(part / p.name)
    ds = read_pipal(tmp_path)
    assert len(ds) == 232
    assert sum(r.dist.startswith("Train_Dis/Distortion_2/") for r in ds.rows) == len(moved) == 116


def test_pipal_val_single_label_list(tmp_path):
    lines = VAL.read_text().splitlines()
    _official_pipal(tmp_path, lines, prefix="Val", per_reference_labels=False)
    (tmp_path / "pipal21_val_labels.txt").write_text(VAL.read_text())  # found by name
    ds = read_pipal(tmp_path, "val")
    assert len(ds) == 80 and {r.group for r in ds.rows} == {"10"}
    assert len({r.system for r in ds.rows}) == 40
    assert ds.rows[0] == Row("Val_Dis/A0005_10_00.bmp", "Val_Ref/A0005.bmp", 1238.7325, "10", "10_00")
    explicit = load_dataset("pipal", tmp_path, split="val", labels=VAL)
    assert explicit.rows == ds.rows


def test_pipal_says_what_is_missing(tmp_path):
    _official_pipal(tmp_path, TRAIN.read_text().splitlines())
    (tmp_path / "Train_Dis" / "A0002_03_07.bmp").unlink()
    with pytest.raises(IQAError, match=r"1 image file\(s\).*Train_Dis/A0002_03_07.bmp"):
        read_pipal(tmp_path)
    with pytest.raises(IQAError, match="Val_Ref/ not found"):
        read_pipal(tmp_path, "val")
    with pytest.raises(IQAError, match="splits train, val, test"):
        read_pipal(tmp_path, "dev")
    _official_pipal(tmp_path / "nolabels", VAL.read_text().splitlines(), prefix="Val", per_reference_labels=False)
    with pytest.raises(IQAError, match="Give the label file"):
        read_pipal(tmp_path / "nolabels", "val")
    bad = tmp_path / "bad.txt"
    bad.write_text("A0001_00_00.bmp, 12x\n")
    with pytest.raises(IQAError, match="bad.txt, line 1"):
        read_labels(bad)


@pytest.mark.skipif(not PIPAL_LABELS.is_dir(), reason="../shared/data/pipal-labels (full PIPAL label lists) absent")
def test_pipal_reader_on_the_full_real_label_files(tmp_path):
    """All 23,200 training and 1,000 validation labels, read through the official layout (empty stand-in files)."""
    train_lines = (PIPAL_LABELS / "pipal_train_labels.txt").read_text().splitlines()
    entries = _official_pipal(tmp_path, train_lines, write=_touch)
    ds = read_pipal(tmp_path, "train")
    assert len(ds) == len(entries) == 23200
    assert [(Path(r.dist).name, r.score) for r in ds.rows] == entries
    assert len({r.ref for r in ds.rows}) == 200
    assert Counter(Counter(r.system for r in ds.rows).values()) == {200: 116}
    assert Counter(r.group for r in ds.rows) == {g: 200 * n for g, n in PIPAL_GROUP_SIZES.items()}
    assert 900 < ds.scores.min() < ds.scores.max() < 1900

    val_lines = (PIPAL_LABELS / "pipal21_val_labels.txt").read_text().splitlines()
    _official_pipal(tmp_path, val_lines, prefix="Val", per_reference_labels=False, write=_touch)
    val = read_pipal(tmp_path, "val", labels=PIPAL_LABELS / "pipal21_val_labels.txt")
    assert len(val) == 1000 and len({r.ref for r in val.rows}) == 25
    assert Counter(Counter(r.system for r in val.rows).values()) == {25: 40}
    assert {r.group for r in val.rows} == {"10"}
    # the NTIRE validation contents are disjoint from the training contents
    assert not {Path(r.ref).stem for r in val.rows} & {Path(r.ref).stem for r in ds.rows}


# ---------------------------------------------------------------- classic sets

def test_tid2013_layout_case_insensitive(tmp_path):
    (tmp_path / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n4.10000 i01_02_5.bmp\n\n6.2 i02_01_1.bmp\n")
    for n in ("I01.BMP", "I02.BMP"):
        _touch(tmp_path / "reference_images" / n)
    for n in ("i01_01_1.bmp", "I01_02_5.BMP", "i02_01_1.bmp"):
        _touch(tmp_path / "distorted_images" / n)
    ds = read_tid2013(tmp_path)
    assert [(r.dist, r.ref, r.score, r.group, r.system) for r in ds.rows] == [
        ("distorted_images/i01_01_1.bmp", "reference_images/I01.BMP", 5.51429, "01", "01_1"),
        ("distorted_images/I01_02_5.BMP", "reference_images/I01.BMP", 4.1, "02", "02_5"),
        ("distorted_images/i02_01_1.bmp", "reference_images/I02.BMP", 6.2, "01", "01_1")]
    assert ds.higher_better
    (tmp_path / "distorted_images" / "i02_01_1.bmp").unlink()
    with pytest.raises(IQAError, match="distorted_images/i02_01_1.bmp"):
        read_tid2013(tmp_path)
    with pytest.raises(IQAError, match="mos_with_names.txt not found"):
        read_tid2013(tmp_path / "reference_images")


def test_live_release2(tmp_path):
    sizes = {"jp2k": 227, "jpeg": 233, "wn": 174, "gblur": 174, "fastfading": 174}
    refs = np.empty((1, 982), dtype=object)
    orgs = np.zeros((1, 982))
    k = 0
    for folder, n in sizes.items():
        for j in range(1, n + 1):
            refs[0, k] = f"ref{k % 29}.bmp"
            orgs[0, k] = 1.0 if j % 7 == 0 else 0.0
            if not orgs[0, k]:
                _touch(tmp_path / folder / f"img{j}.bmp")
            k += 1
    for i in range(29):
        _touch(tmp_path / "refimgs" / f"ref{i}.bmp")
    dmos = np.arange(982, dtype=float)[None] / 10
    savemat(tmp_path / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    ds = read_live(tmp_path)
    assert len(ds) == 982 - int(orgs.sum()) and not ds.higher_better and ds.score_name == "DMOS"
    assert ds.rows[0] == Row("jp2k/img1.bmp", "refimgs/ref0.bmp", 0.0, "jp2k")
    wn6 = next(r for r in ds.rows if r.dist == "wn/img6.bmp")   # global index 227 + 233 + 5 = 465
    assert wn6.score == pytest.approx(46.5) and wn6.ref == "refimgs/ref1.bmp" and wn6.group == "wn"
    savemat(tmp_path / "dmos_realigned.mat", {"dmos_new": dmos + 100, "orgs": orgs, "dmos_std": dmos})
    assert read_live(tmp_path).rows[0].score == 100.0
    assert read_live(tmp_path, realigned=False).rows[0].score == 0.0
    (tmp_path / "gblur" / "img1.bmp").unlink()
    with pytest.raises(IQAError, match="gblur/img1.bmp"):
        read_live(tmp_path)


def _xlsx(path: Path, rows: list[list]) -> None:
    """A workbook as CSIQ ships it: a note sheet, then the label table in sheet all_by_image."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.title = "note"
    book.active["A1"] = "CSIQ"
    sheet = book.create_sheet("all_by_image")
    for row in rows:
        sheet.append(row)
    book.save(path)


def test_csiq_xlsx_and_csv(tmp_path):
    table = [["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
             [1600, 1, "noise", 1, 0.01, 0.061989],
             ["aerial_city", 3, "jpeg 2000", 2, 0.02, 0.5],
             ["aerial_city", 4, "f noise", 5, 0.03, 0.25],
             ["boston", 6, "contrast", 3, 0.04, 0.125]]
    _xlsx(tmp_path / "csiq.DMOS.xlsx", table)
    sheets = read_xlsx_sheets(tmp_path / "csiq.DMOS.xlsx")
    assert list(sheets) == ["note", "all_by_image"] and sheets["note"] == [["CSIQ"]]
    assert sheets["all_by_image"][1] == [1600.0, 1.0, "noise", 1.0, 0.01, 0.061989]
    assert all(type(v) is float for v in sheets["all_by_image"][1] if not isinstance(v, str))
    for n in ("1600", "aerial_city", "boston"):
        _touch(tmp_path / "src_imgs" / f"{n}.png")
    for rel in ("awgn/1600.AWGN.1.png", "jpeg2000/aerial_city.jpeg2000.2.png", "fnoise/aerial_city.fnoise.5.png",
                "contrast/boston.contrast.3.png"):
        _touch(tmp_path / "dst_imgs" / rel)
    ds = read_csiq(tmp_path)
    assert [(r.dist, r.ref, r.score, r.group) for r in ds.rows] == [
        ("dst_imgs/awgn/1600.AWGN.1.png", "src_imgs/1600.png", 0.061989, "awgn"),
        ("dst_imgs/jpeg2000/aerial_city.jpeg2000.2.png", "src_imgs/aerial_city.png", 0.5, "jpeg2000"),
        ("dst_imgs/fnoise/aerial_city.fnoise.5.png", "src_imgs/aerial_city.png", 0.25, "fnoise"),
        ("dst_imgs/contrast/boston.contrast.3.png", "src_imgs/boston.png", 0.125, "contrast")]
    assert not ds.higher_better
    (tmp_path / "csiq.DMOS.xlsx").unlink()
    (tmp_path / "csiq.csv").write_text("\n".join(",".join(str(c) for c in row) for row in table) + "\n")
    assert read_csiq(tmp_path).rows == ds.rows
    (tmp_path / "csiq.csv").unlink()
    with pytest.raises(IQAError, match="csiq.DMOS.xlsx"):
        read_csiq(tmp_path)


def test_csiq_corrupt_xlsx(tmp_path):
    pytest.importorskip("openpyxl")
    _touch(tmp_path / "src_imgs" / "1600.png")
    _touch(tmp_path / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    (tmp_path / "csiq.DMOS.xlsx").write_bytes(b"image,dmos\n1600,0.5\n")   # a CSV saved under the .xlsx name
    with pytest.raises(InputError, match=r"csiq\.DMOS\.xlsx.*\.xlsx spreadsheet"):
        read_csiq(tmp_path)
    with zipfile.ZipFile(tmp_path / "csiq.DMOS.xlsx", "w") as zf:       # a zip, but no workbook inside
        zf.writestr("hello.txt", "not a workbook")
    with pytest.raises(InputError, match=r"csiq\.DMOS\.xlsx"):
        read_csiq(tmp_path)


def test_csiq_xlsx_without_openpyxl(tmp_path, monkeypatch):
    _touch(tmp_path / "src_imgs" / "1600.png")
    _touch(tmp_path / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    (tmp_path / "csiq.DMOS.xlsx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "openpyxl", None)   # not installed: say which extra, and that a CSV works
    with pytest.raises(ResourceError, match=r"pip install 'iqarena\[datasets\]'.*CSV"):
        read_csiq(tmp_path)


def test_kadid10k(tmp_path):
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n"
                                       "I01_25_05.png,I01.png,1.9,0.8\n")
    for n in ("I01.png", "I01_01_01.png", "I01_25_05.png"):
        _touch(tmp_path / "images" / n)
    ds = read_kadid10k(tmp_path)
    assert ds.rows[1] == Row("images/I01_25_05.png", "images/I01.png", 1.9, "25", "25_05")
    assert ds.higher_better


def test_koniq10k_official_sets(tmp_path):
    (tmp_path / "koniq10k_distributions_sets.csv").write_text(
        "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore,set\n"
        "a.jpg,0,0,1,2,3,6,3.9,0.5,60.1,training\nb.jpg,0,1,1,2,0,4,3.1,0.4,45.0,test\n"
        "c.jpg,1,1,1,1,1,5,3.0,1.0,40.0,validation\n")
    for n in "abc":
        _touch(tmp_path / "1024x768" / f"{n}.jpg")
    ds = read_koniq10k(tmp_path)
    assert [r.score for r in ds.rows] == [3.9, 3.1, 3.0] and not ds.has_reference
    assert [r.dist for r in load_dataset("koniq10k", tmp_path, split="test").rows] == ["1024x768/b.jpg"]
    assert read_koniq10k(tmp_path, score="MOS_zscore").rows[0].score == 60.1
    with pytest.raises(IQAError, match="512x384"):
        read_koniq10k(tmp_path, resolution="512x384")


# ---------------------------------------------------------------- LIVE-Challenge

@pytest.mark.skipif(not CLIVE.is_dir(), reason="../shared/data/clive (real CLIVE subset) absent")
def test_clive_real_subset():
    ds = read_clive(CLIVE)
    with_training = read_clive(CLIVE, training=True)
    assert len(with_training) == 937 and len(ds) == 930
    assert not ds.has_reference and ds.higher_better
    first = {Path(r.dist).name: r.score for r in with_training.rows}
    assert first["t1.png"] == 63.963406 and first["102.png"] == 44.694985 and "t1.png" not in {
        Path(r.dist).name for r in ds.rows}
    assert 0 < ds.scores.min() < ds.scores.max() < 100
    assert all(p.dist.is_file() for p in ds.pairs())


def test_clive_official_release_layout(tmp_path):
    names = np.empty((9, 1), dtype=object)
    for i, n in enumerate(["t1.bmp", "t2.bmp", "3.bmp", "10.bmp", "1000.JPG", "11.bmp", "12.bmp", "13.bmp", "14.bmp"]):
        names[i, 0] = n
        _touch(tmp_path / "Images" / ("trainingImages/" if n.startswith("t") else "") / n)
    (tmp_path / "Data").mkdir()
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.arange(9.0)[None] * 10})
    ds = read_clive(tmp_path)
    assert [(r.dist, r.score) for r in ds.rows][:2] == [("Images/3.bmp", 20.0), ("Images/10.bmp", 30.0)]
    assert len(ds) == 7
    both = read_clive(tmp_path, training=True)
    assert both.rows[0].dist == "Images/trainingImages/t1.bmp" and len(both) == 9
    (tmp_path / "Images" / "1000.JPG").unlink()
    with pytest.raises(IQAError, match="Images/1000.JPG"):
        read_clive(tmp_path)
    with pytest.raises(IQAError, match="neither the official release"):
        read_clive(tmp_path / "Images")


# ---------------------------------------------------------------- generic CSV and splits

def test_csv_dataset_header_and_headerless(tmp_path):
    for n in ("d1.png", "d2.png", "r.png"):
        _touch(tmp_path / "imgs" / n)
    (tmp_path / "labels.csv").write_text("Distorted,Reference,MOS,Type\nimgs/d1.png,imgs/r.png,3.5,blur\n"
                                         "imgs/d2.png,imgs/r.png,2.0,noise\n")
    ds = read_csv_dataset(tmp_path / "labels.csv")
    assert ds.rows == (Row("imgs/d1.png", "imgs/r.png", 3.5, "blur"), Row("imgs/d2.png", "imgs/r.png", 2.0, "noise"))
    (tmp_path / "imgs" / "list.txt").write_text("d1.png, 1.5\nd2.png 0.5\n")
    ds2 = load_dataset("csv", labels=tmp_path / "imgs" / "list.txt")
    assert [(r.dist, r.ref, r.score) for r in ds2.rows] == [("d1.png", None, 1.5), ("d2.png", None, 0.5)]
    (tmp_path / "bad.csv").write_text("dist,score\nimgs/d3.png,1\n")
    with pytest.raises(IQAError, match="imgs/d3.png"):
        read_csv_dataset(tmp_path / "bad.csv")
    (tmp_path / "nocol.csv").write_text("dist,foo\nimgs/d1.png,1\n")
    with pytest.raises(IQAError, match="score column"):
        read_csv_dataset(tmp_path / "nocol.csv")
    with pytest.raises(IQAError, match="needs a label file"):
        load_dataset("csv", tmp_path)
    with pytest.raises(IQAError, match="unknown dataset"):
        load_dataset("pipal2", tmp_path)


def test_split_by_reference_is_seeded_and_disjoint(tmp_path):
    rows = tuple(Row(f"d{r}_{i}.png", f"ref{r}.png", float(i), system=str(i)) for r in range(20) for i in range(6))
    ds = Dataset("toy", tmp_path, rows)
    parts = split_by_reference(ds, (0.6, 0.2, 0.2), seed=3)
    contents = {k: {r.ref for r in v.rows} for k, v in parts.items()}
    assert [len(contents[k]) for k in ("train", "val", "test")] == [12, 4, 4]
    assert not (contents["train"] & contents["val"] or contents["train"] & contents["test"]
                or contents["val"] & contents["test"])
    assert sum(len(v) for v in parts.values()) == len(ds) and parts["val"].split == "val"
    again = split_by_reference(ds, (0.6, 0.2, 0.2), seed=3)
    assert all(again[k].rows == parts[k].rows for k in parts)
    other = split_by_reference(ds, (0.6, 0.2, 0.2), seed=4)
    assert {r.ref for r in other["test"].rows} != contents["test"]
    with pytest.raises(IQAError, match="sum to 1"):
        split_by_reference(ds, (0.5, 0.2, 0.2))
    # through load_dataset on a set without official splits: the same seeded split
    (tmp_path / "t.csv").write_text("dist,ref,score\n" + "".join(f"{r.dist},{r.ref},{r.score}\n"
                                                                 for r in rows))
    for r in rows:
        _touch(tmp_path / r.dist)
        _touch(tmp_path / r.ref)
    val = load_dataset("csv", labels=tmp_path / "t.csv", split="val", seed=3)
    assert {r.ref for r in val.rows} == contents["val"]
