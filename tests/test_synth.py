"""Synthetic PIPAL-layout training sets (iqarena.datasets.synth, `iqarena synth`): distortions, layout, labels."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqarena.datasets import load_dataset
from iqarena.datasets.synth import (DISTORTIONS, available_distortions, combine_scores, label_metrics,
                                    make_synthetic_set, to_elo_scale)
from iqarena.errors import InputError
from iqarena.io import read_image
from iqarena.metrics import create_metric

from conftest import SAMPLE

CROP = 128  # JPEG 2000's strongest levels need 128 px (its codestream's fixed part fills smaller targets)
SEEDED = {"motion_blur", "noise", "colour_cast"}  # the distortions that draw random numbers


def _crops(folder: Path, names=("I03", "I04", "I06"), side: int = CROP) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        with Image.open(SAMPLE / "ref" / f"{n}.png") as im:
            w, h = im.size
            im.convert("RGB").crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).save(
                folder / f"photo_{n}.png")
    return folder


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(1 / mse)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for sub in ("Train_Ref", "Train_Dis", "Train_Label") for p in sorted((root / sub).iterdir())}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    return _crops(tmp_path_factory.mktemp("refs"))


@pytest.fixture(scope="module")
def made(refs, tmp_path_factory):
    """All distortions at 3 levels on 3 references, labelled by PSNR and SSIM together."""
    out = tmp_path_factory.mktemp("synth") / "set"
    ds = make_synthetic_set(refs, out, levels=3, label=["psnr", "ssim"], seed=0)
    return out, ds


def test_registry_codes_and_parameters():
    codes = [d.code for d in DISTORTIONS.values()]
    assert len(codes) == len(set(codes)) == 13 and all(len(c) == 2 and c.isdigit() for c in codes)
    assert DISTORTIONS["04"].name == "jpeg2000" and DISTORTIONS["gaussian_blur"].name == "blur"
    assert DISTORTIONS["jpeg"].values(5) == [50, 28, 16, 9, 5]
    assert DISTORTIONS["downup_bicubic"].values(5) == [2, 3, 4, 6, 8]
    assert DISTORTIONS["downup_bicubic"].values(3) == [2, 4, 8]
    assert DISTORTIONS["blur"].values(5) == pytest.approx([0.6, 0.8972, 1.3416, 2.0062, 3.0], abs=1e-4)
    # this machine's Pillow writes both JPEG 2000 and WebP, so every distortion is available here
    assert set(available_distortions()) == {d.name for d in DISTORTIONS.values()}


def test_each_distortion_is_monotone_in_psnr_on_real_photos(refs):
    """Five levels, three real photos: PSNR against the reference falls strictly with the level, for every type."""
    for p in sorted(refs.iterdir()):
        x = np.asarray(Image.open(p), dtype=np.float32) / 255
        for name in available_distortions():
            d = DISTORTIONS[name]
            ps = []
            for level in range(1, 6):
                y = d(x, level, np.random.default_rng([0, 2, 0, int(d.code)]), levels=5)
                assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
                ps.append(_psnr(np.rint(y * 255) / 255, x))
            assert all(a > b + 0.05 for a, b in itertools.pairwise(ps)), (p.name, name, np.round(ps, 2))


def test_distortion_is_pure_and_takes_torch(refs):
    x = np.asarray(Image.open(sorted(refs.iterdir())[0]), dtype=np.float32) / 255
    before = x.copy()
    for name in ("noise", "jpeg", "ringing"):
        a = DISTORTIONS[name](x, 2, np.random.default_rng(5))
        b = DISTORTIONS[name](x, 2, np.random.default_rng(5))
        t = DISTORTIONS[name](torch.from_numpy(x), 2, np.random.default_rng(5))
        assert np.array_equal(a, b) and isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), a)
    assert np.array_equal(x, before)
    with pytest.raises(InputError, match="level must be"):
        DISTORTIONS["blur"](x, 6, np.random.default_rng(0))
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        DISTORTIONS["blur"](x[..., 0], 1, np.random.default_rng(0))
    with pytest.raises(InputError, match="dtype"):
        DISTORTIONS["blur"]((x * 255).astype(np.uint8), 1, np.random.default_rng(0))


def test_set_loads_with_the_pipal_reader(made, refs):
    out, ds = made
    n_types = len(available_distortions())
    again = load_dataset("pipal", out, split="train")
    assert len(ds) == len(again) == 3 * n_types * 3 == 117
    assert len({r.ref for r in again.rows}) == 3
    assert sorted({r.group for r in again.rows}) == sorted(d.code for d in DISTORTIONS.values())
    assert sorted({r.system for r in again.rows}) == sorted(f"{d.code}_{k:02d}" for d in DISTORTIONS.values()
                                                          for k in (1, 2, 3))
    assert again.rows[0].dist == "Train_Dis/A0001_00_01.bmp" and again.rows[0].ref == "Train_Ref/A0001.bmp"
    assert again.scores.min() == pytest.approx(1000) and again.scores.max() == pytest.approx(2000)
    assert (out / "refs.csv").read_text().splitlines()[1].startswith("A0001.bmp,photo_I03.png,128,128,128,128")
    meta = json.loads((out / "synth.json").read_text())
    assert meta["status"] == "complete" and meta["settings"]["seed"] == 0 and meta["settings"]["levels"] == 3
    assert meta["settings"]["label"] == ["psnr", "ssim"] and meta["iqarena_version"]
    assert set(meta["label_recipe"]["metrics"]) == {"psnr", "ssim"}
    assert len(meta["files"]) == 3 + 117 + 3 + 2
    # the reference written is the photo itself (lossless BMP of the 8-bit pixels)
    assert np.array_equal(np.asarray(Image.open(out / "Train_Ref" / "A0002.bmp")),
                          np.asarray(Image.open(refs / "photo_I04.png")))


def test_written_levels_are_monotone(made):
    out, _ = made
    for r in range(1, 4):
        ref = np.asarray(Image.open(out / "Train_Ref" / f"A{r:04d}.bmp"), dtype=np.float64) / 255
        for d in DISTORTIONS.values():
            ps = [_psnr(np.asarray(Image.open(out / "Train_Dis" / f"A{r:04d}_{d.code}_{k:02d}.bmp")) / 255, ref)
                  for k in (1, 2, 3)]
            assert ps[0] > ps[1] > ps[2], (r, d.name, ps)


def test_labels_equal_the_metrics_recomputed_on_the_written_files(made):
    out, ds = made
    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    raw = {"psnr": [], "ssim": []}
    for row in ds.rows:
        x, y = read_image(out / row.dist)[None], read_image(out / row.ref)[None]
        raw["psnr"].append(float(psnr(x, y)))
        raw["ssim"].append(float(ssim(x, y)))
    z = [(np.array(v) - np.mean(v)) / np.std(v) for v in raw.values()]  # both: higher is better
    mean = (z[0] + z[1]) / 2
    expected = 1000 + 1000 * (mean - mean.min()) / (mean.max() - mean.min())
    assert np.abs(ds.scores - expected).max() < 2e-3


def test_label_mapping_on_known_numbers():
    assert to_elo_scale(np.array([0.0, 1.0, 3.0])) == pytest.approx([1000, 1000 + 1000 / 3, 2000])
    assert to_elo_scale(np.array([0.4, 0.4])) == pytest.approx([1500, 1500])
    # opposite directions agree: z of [1, 2, 3] (higher better) and of [30, 20, 10] (lower better) are both
    # [-1.2247, 0, 1.2247]
    comb, used = combine_scores({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([30.0, 20.0, 10.0])},
                                {"a": True, "b": False})
    assert comb == pytest.approx([-1.224745, 0, 1.224745], abs=1e-6)
    assert to_elo_scale(comb) == pytest.approx([1000, 1500, 2000])
    assert used["b"] == {"higher_better": False, "mean": 20.0, "std": pytest.approx(8.164966), "clipped_infinite": 0}
    # a metric without spread adds zeros; the other's z-scores are halved by the mean, which the mapping undoes
    comb, _ = combine_scores({"a": np.array([0.0, 1, 2, 3]), "c": np.ones(4)}, {"a": True, "c": True})
    assert comb == pytest.approx(np.array([-3, -1, 1, 3]) / np.sqrt(5) / 2)
    assert to_elo_scale(comb) == pytest.approx([1000, 1000 + 1000 / 3, 1000 + 2000 / 3, 2000])
    # an infinite PSNR (unchanged image) counts as the best finite one
    comb, used = combine_scores({"psnr": np.array([np.inf, 30.0, 20.0])}, {"psnr": True})
    assert to_elo_scale(comb) == pytest.approx([2000, 2000, 1000]) and used["psnr"]["clipped_infinite"] == 1


def test_same_seed_same_bytes_other_seed_differs(made, refs, tmp_path):
    out, _ = made
    a = make_synthetic_set(refs, tmp_path / "a", levels=3, label="psnr", seed=0)
    b = make_synthetic_set(refs, tmp_path / "b", levels=3, label="psnr", seed=0)
    c = make_synthetic_set(refs, tmp_path / "c", levels=3, label="psnr", seed=1)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb and len(fa) == 3 + 117 + 3
    assert (tmp_path / "a" / "synth.json").read_bytes() == (tmp_path / "b" / "synth.json").read_bytes()
    # the images do not depend on the label recipe
    assert {k: v for k, v in fa.items() if "Label" not in k} == {k: v for k, v in _files(out).items()
                                                                 if "Label" not in k}
    codes = {DISTORTIONS[n].code for n in SEEDED}
    for name in fa:
        if name.startswith("Train_Dis/"):
            assert (fa[name] != fc[name]) == (name.split("_")[2] in codes), name
    assert [r.score for r in a.rows] == [r.score for r in b.rows] != [r.score for r in c.rows]


def test_per_ref_subset_is_seeded(refs, tmp_path):
    a = make_synthetic_set(refs, tmp_path / "a", levels=2, per_ref=4, label="psnr", seed=7,
                           distortions="blur,noise,jpeg,contrast")
    b = make_synthetic_set(refs, tmp_path / "b", levels=2, per_ref=4, label="psnr", seed=7,
                           distortions=["contrast", "02", "jpg", "gaussian_blur"])
    assert len(a) == 12 and [r.dist for r in a.rows] == [r.dist for r in b.rows]
    assert len({tuple(r.system for r in a.rows if r.ref == ref) for ref in {r.ref for r in a.rows}}) > 1
    with pytest.raises(InputError, match="per_ref must be"):
        make_synthetic_set(refs, tmp_path / "c", levels=2, per_ref=9, label="psnr",
                           distortions="blur,noise,jpeg,contrast")


def test_size_shrinks_and_crops(refs, tmp_path):
    ds = make_synthetic_set(refs, tmp_path / "a", levels=1, label="psnr", distortions="blur", size=(100, 60))
    assert Image.open(ds.path(ds.rows[0].ref)).size == (60, 100)
    ds = make_synthetic_set(refs, tmp_path / "b", levels=1, label="psnr", distortions="blur", size=64)
    assert Image.open(ds.path(ds.rows[0].dist)).size == (64, 64)
    assert "A0001.bmp,photo_I03.png,128,128,64,64" in (tmp_path / "b" / "refs.csv").read_text()


def test_refuses_to_overwrite_and_keeps_what_it_did_not_make(refs, tmp_path):
    out = tmp_path / "set"
    make_synthetic_set(refs, out, levels=2, label="psnr", distortions="blur,jpeg")
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    with pytest.raises(InputError, match="not empty") as exc:
        make_synthetic_set(refs, out, levels=2, label="psnr", distortions="blur,jpeg")
    assert exc.value.option == "overwrite" and _files(out) == before
    # with overwrite a smaller set replaces ours entirely (no stale A0003 left for the reader) and keeps notes.txt
    two = _crops(tmp_path / "two", names=("I03", "I04"))
    ds = make_synthetic_set(two, out, levels=2, label="psnr", distortions="noise", overwrite=True)
    assert len(ds) == 4 and len(load_dataset("pipal", out, split="train")) == 4
    assert sorted(p.name for p in (out / "Train_Dis").iterdir()) == [
        "A0001_02_01.bmp", "A0001_02_02.bmp", "A0002_02_01.bmp", "A0002_02_02.bmp"]
    assert not (out / "Train_Ref" / "A0003.bmp").exists() and (out / "notes.txt").read_text() == "mine"
    # a label file someone else made is never replaced, even with overwrite
    other = tmp_path / "pipal"
    (other / "Train_Label").mkdir(parents=True)
    (other / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp,1520.0648\n")
    with pytest.raises(InputError, match="did not make"):
        make_synthetic_set(refs, other, levels=2, label="psnr", distortions="blur", overwrite=True)
    assert (other / "Train_Label" / "A0001.txt").read_text() == "A0001_00_00.bmp,1520.0648\n"
    assert sorted(p.name for p in other.rglob("*")) == ["A0001.txt", "Train_Label"]


def test_bad_label_recipes(refs, tmp_path):
    with pytest.raises(InputError, match="unknown label metric 'psnrr'; full-reference metrics: .*ms_ssim") as exc:
        label_metrics("psnrr")
    assert "niqe" not in str(exc.value) and exc.value.option == "label"
    with pytest.raises(InputError, match="niqe is a no-reference metric"):
        make_synthetic_set(refs, tmp_path / "a", label=["psnr", "niqe"])
    with pytest.raises(InputError, match="at least one"):
        label_metrics(" , ")
    with pytest.raises(InputError, match="repeat"):
        label_metrics("ssim,SSIM")
    assert label_metrics("ms_ssim, fsimc") == ["ms_ssim", "fsimc"]
    # MS-SSIM (the default label) needs 176 px per side: refused before anything is written
    with pytest.raises(InputError, match="ms_ssim cannot score reference .*176"):
        make_synthetic_set(refs, tmp_path / "b")
    with pytest.raises(InputError, match="jpeg2000 needs references of at least 128"):
        make_synthetic_set(refs, tmp_path / "c", label="psnr", size=64)
    with pytest.raises(InputError, match="unknown distortion 'blurr'"):
        make_synthetic_set(refs, tmp_path / "d", label="psnr", distortions="blurr")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_cli(refs, tmp_path):
    from typer.testing import CliRunner

    from iqarena.cli import app

    out = tmp_path / "set"
    args = ["synth", str(refs), "-o", str(out), "--label", "psnr,ssim", "--levels", "2", "--distortions",
            "blur,webp", "--per-ref", "3", "--seed", "4", "--max-side", "96"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ds = load_dataset("pipal", out, split="train")
    assert len(ds) == 9 and Image.open(ds.path(ds.rows[0].ref)).size == (96, 96)
    assert json.loads((out / "synth.json").read_text())["settings"]["size"] == 96
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, InputError) and "(command line: --overwrite)" in str(res.exception)
    res = CliRunner().invoke(app, [*args, "--overwrite", "--label", "niqe"])
    assert isinstance(res.exception, InputError) and "(command line: --label)" in str(res.exception)
