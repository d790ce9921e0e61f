"""Ma's score (NRQM) and PI: features against feature_all.m run in GNU Octave, the regRF reader and forest
evaluation against regRF_predict in Octave on a forest trained there, the PIRM conventions, errors, and the
official values when Ma's model.mat is installed (tests/data/ma/README.md says how the fixtures were made)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from conftest import DATA, NAMES, SAMPLE, assert_printed_precision

import iqarena
from iqarena import weights
from iqarena.errors import InputError, IQAError, ResourceError
from iqarena.io import read_image
from iqarena.metrics import available_metrics
from iqarena.metrics.ma import (
    PerceptualIndex,
    gama_gen_gauss,
    load_ma_model,
    ma_features,
    ma_features_gray,
    pirm_y,
)
from iqarena.metrics.niqe import load_niqe_model, niqe_distance, niqe_features
from iqarena.ops.color import rgb2ycbcr_y8

MA = DATA / "ma"
FOREST = MA / "forest_octave.mat"

# Largest differences to Octave over the fixtures, relative to max(1, |value|): f1 2.2e-10 (the oriented-zone
# coefficients of variation of blocks whose coefficients are zero up to rounding), f2 3.1e-12, f3 8.7e-14; the
# bounds leave room for other BLAS/FFT builds.
TOL = {"f1": 1e-9, "f2": 1e-10, "f3": 1e-10}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def octave_features() -> dict:
    return json.loads((MA / "features_octave.json").read_text())


def _image(entry: dict) -> torch.Tensor:
    x = read_image(SAMPLE / "dist" / f"{entry['image']}.png")[None].double()
    if entry.get("crop"):
        r, c, h, w = entry["crop"]  # 1-based start, as the Octave driver
        x = x[..., r - 1: r - 1 + h, c - 1: c - 1 + w]
    return x


def _assert_features(got, entry: dict, label: str) -> None:
    for name, g in zip(("f1", "f2", "f3"), got):
        ref = np.asarray(entry[name])
        g = g[0].numpy()
        assert g.shape == ref.shape, f"{label} {name}: {g.shape} vs {ref.shape}"
        rel = np.abs(g - ref) / np.maximum(np.abs(ref), 1.0)
        assert rel.max() <= TOL[name], f"{label} {name}: max difference {rel.max():.3g} at {rel.argmax()}"


@pytest.mark.parametrize("key", ["crop_I03", "full_I19"])
def test_features_match_feature_all_in_octave(octave_features, key):
    entry = octave_features[key]
    x = _image(entry)
    assert list(x.shape[-2:]) == entry["shape"]
    _assert_features(ma_features(x), entry, key)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["full_I03", "full_I04", "full_I06", "full_I08"])
def test_features_of_the_other_calibration_images(octave_features, key):
    entry = octave_features[key]
    _assert_features(ma_features(_image(entry)), entry, key)


def test_pirm_input_features_match_octave(octave_features):
    # calc_scores.m: Y of rgb2ycbcr (uint8), 4 pixels shaved, then feature_all on that uint8 image
    entry = octave_features["pirm_I19"]
    y = pirm_y(_image(entry))
    assert list(y.shape[-2:]) == entry["shape"]
    _assert_features(ma_features_gray(y * 255), entry, "pirm_I19")


def test_batch_equals_one_by_one_and_grey_equals_equal_channels(octave_features):
    x = _image(octave_features["crop_I03"])
    both = torch.cat([x, x.flip(-1)])
    batch = ma_features(both)
    for i in range(2):
        single = ma_features(both[i: i + 1])
        for b, s in zip(batch, single):
            assert torch.allclose(b[i], s[0], rtol=1e-12, atol=1e-12)
    grey = (torch.floor(x[:, :1] * 255 + 0.5) / 255)
    for a, b in zip(ma_features(grey), ma_features(grey.expand(-1, 3, -1, -1))):
        assert torch.equal(a, b)


def test_ggd_shape_grid():
    # gama_gen_gauss.m: the closest of Gamma(1/g)Gamma(3/g)/Gamma(2/g)^2 on 0.03:0.001:10; a Gaussian has
    # ratio pi/2 -> shape 2, a Laplacian 2 -> shape 1 (large samples land within a few grid steps)
    g = torch.Generator().manual_seed(0)
    gauss = torch.randn(1, 400_000, generator=g, dtype=torch.float64)
    lap = torch.distributions.Laplace(0.0, 1.0).sample((1, 400_000)).double()
    assert abs(gama_gen_gauss(gauss).item() - 2.0) < 0.02
    assert abs(gama_gen_gauss(lap).item() - 1.0) < 0.02
    # a constant vector: ratio 0 -> the last grid value, as MATLAB's min(abs(r - 0))
    assert gama_gen_gauss(torch.ones(1, 48, dtype=torch.float64)).item() == 10.0


def test_rgb2ycbcr_y8_matlab_rounding():
    x = torch.tensor([200.0, 100.0, 50.0], dtype=torch.float64).view(1, 3, 1, 1) / 255
    # 16 + (65.481 * 200 + 128.553 * 100 + 24.966 * 50) / 255 = 122.666... -> 123
    assert rgb2ycbcr_y8(x).item() * 255 == pytest.approx(123.0, abs=1e-9)
    assert rgb2ycbcr_y8(torch.zeros(1, 3, 1, 1)).item() * 255 == pytest.approx(16.0, abs=1e-9)
    assert rgb2ycbcr_y8(torch.ones(1, 3, 1, 1)).item() * 255 == pytest.approx(235.0, abs=1e-9)


# ---------------------------------------------------------------- the regression forests


@pytest.fixture(scope="module")
def octave_predictions() -> dict:
    return scipy.io.loadmat(str(MA / "forest_predictions.mat"))


def test_forest_reader_and_evaluation_equal_octave(octave_predictions):
    model = load_ma_model(FOREST)
    assert [f.n_trees for f in model.forests] == [20, 20, 20]
    assert np.any(model.forests[1].coef != 0)  # trained with corr_bias: the bias correction is applied
    for k, forest in enumerate(model.forests, 1):
        got = forest.predict(octave_predictions[f"X{k}"])
        want = octave_predictions[f"pred{k}"].ravel()
        assert np.array_equal(got, want), f"forest {k}: max difference {np.abs(got - want).max():.3g}"
    score = model.predict(*(octave_predictions[f"X{k}"] for k in (1, 2, 3)))
    assert np.allclose(score, octave_predictions["score"].ravel(), rtol=0, atol=1e-13)


def _statuses(s) -> np.ndarray:
    """randomForest's nodestatus of a regRF struct, rebuilt from its daughters: -1 leaf, -3 split, 0 unused.
    (Octave writes its 1-byte char array as text, so scipy reads every byte >= 0x80 as U+FFFD.)"""
    ldau = np.asarray(s["lDau"])
    used = np.arange(ldau.shape[0])[:, None] < np.asarray(s["ndtree"]).ravel()[None, :]
    return np.where(used, np.where(ldau == 0, -1, -3), 0).astype(np.int8)


def _write_v73(path: Path, model_mat: dict) -> None:
    """The model as MATLAB's -v7.3 writer lays it out: HDF5 after a 512-byte MATLAB header, arrays transposed,
    the cell as object references, and nodestatus as randomforest-matlab's mex leaves it in MATLAB (1-byte values
    written into a char array of 2-byte elements: two nodes per element, the second half zero)."""
    import h5py

    m = model_mat["model"][0, 0]
    with h5py.File(path, "w", userblock_size=512) as f:
        g = f.create_group("model")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        refs = f.create_group("#refs#")
        ref_list = []
        for i, cell in enumerate(m["rf"].ravel()):
            s = cell[0, 0]
            sg = refs.create_group(f"rf{i}")
            sg.attrs["MATLAB_class"] = np.bytes_("struct")
            for name in s.dtype.names:
                v = np.asarray(s[name])
                if name == "nodestatus":
                    raw = np.zeros(v.size * 2, dtype=np.int8)
                    raw[: v.size] = _statuses(s).ravel(order="F")
                    v = np.frombuffer(raw.tobytes(), dtype="<u2").reshape(v.shape, order="F")
                    sg.create_dataset(name, data=v.T).attrs["MATLAB_class"] = np.bytes_("char")
                elif v.dtype.kind in "fiu":
                    sg.create_dataset(name, data=v.T)
            ref_list.append(sg.ref)
        g.create_dataset("rf", data=np.array(ref_list, dtype=h5py.ref_dtype).reshape(1, 3))
        g.create_dataset("linear", data=np.asarray(m["linear"], dtype=np.float64).T)
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 30 00:00:00 2026 HDF5 schema 1.00 .".ljust(116)
                 + b"\0" * 8 + b"\x00\x02IM")


def _write_v5_int8(path: Path, model_mat: dict) -> None:
    """The model re-saved by scipy with nodestatus as an int8 array (v5 format)."""
    m = model_mat["model"][0, 0]
    rf = np.empty((1, 3), dtype=object)
    for i, cell in enumerate(m["rf"].ravel()):
        s = cell[0, 0]
        rf[0, i] = {n: (_statuses(s) if n == "nodestatus" else s[n]) for n in s.dtype.names
                    if np.asarray(s[n]).dtype.kind in "fiuU"}
    scipy.io.savemat(str(path), {"model": {"rf": rf, "linear": m["linear"]}})


def test_reader_layouts(tmp_path, octave_predictions):
    mat = scipy.io.loadmat(str(FOREST), chars_as_strings=False)
    _write_v73(tmp_path / "v73.mat", mat)
    _write_v5_int8(tmp_path / "int8.mat", mat)
    octave, v73, int8 = (load_ma_model(p) for p in (FOREST, tmp_path / "v73.mat", tmp_path / "int8.mat"))
    assert {f.leaves_from for f in octave.forests} == {"lDau"}  # the text-encoded chars lost the statuses
    assert {f.leaves_from for f in v73.forests} == {"nodestatus (MATLAB packing)"}
    assert {f.leaves_from for f in int8.forests} == {"nodestatus"}
    x = [octave_predictions[f"X{k}"] for k in (1, 2, 3)]
    for model in (v73, int8):
        for fa, fb in zip(octave.forests, model.forests):
            assert np.array_equal(fa.terminal, fb.terminal) and np.array_equal(fa.split, fb.split)
            assert np.array_equal(fa.coef, fb.coef)
        assert np.array_equal(octave.predict(*x), model.predict(*x))


def test_metric_with_a_model_file(octave_features):
    entry = octave_features["crop_I03"]
    x = _image(entry)
    model = load_ma_model(FOREST)
    want = model.predict(*(np.asarray(entry[k])[None] for k in ("f1", "f2", "f3")))
    m = iqarena.create_metric("nrqm", model=str(FOREST))
    assert m.name == "ma"
    assert m(x.float()).item() == pytest.approx(want[0], abs=1e-5)
    assert m(x).dtype == torch.float64 and m(x).item() == pytest.approx(want[0], abs=1e-9)


def test_pi_composes_ma_and_niqe_on_the_pirm_input(octave_features):
    entry = octave_features["pirm_I19"]
    x = _image(entry)
    model = load_ma_model(FOREST)
    ma = model.predict(*(np.asarray(entry[k])[None] for k in ("f1", "f2", "f3")))[0]
    y = pirm_y(x)
    feats, _ = niqe_features(y)
    nq = niqe_distance(feats, load_niqe_model(None)).item()
    got = PerceptualIndex(model=FOREST)(x).item()
    assert got == pytest.approx(((10 - ma) + nq) / 2, abs=1e-9)


@pytest.mark.parametrize(("name", "side"), [("ma", 84), ("pi", 104)])
def test_min_size_with_a_model_file(name, side):
    m = iqarena.create_metric(name, model=str(FOREST))
    assert m.min_size == side
    g = torch.Generator().manual_seed(0)
    assert torch.isfinite(m(torch.rand(1, 3, side, side + 5, generator=g))).all()
    with pytest.raises(IQAError, match=f"at least {side}x{side}"):
        m(torch.rand(1, 3, side - 1, side + 5, generator=g))


def test_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("ma", "pi"):
        with pytest.raises(ResourceError, match="iqarena weights fetch ma-model") as exc:
            iqarena.create_metric(name)
        assert "github.com/chaoma99/sr-metric" in str(exc.value)
    assert "ma" not in available_metrics("nr") and "pi" not in available_metrics("nr")
    with pytest.raises(InputError, match="at least 48x48 pixels"):
        ma_features(torch.rand(1, 3, 40, 64))
    with pytest.raises(InputError, match="not found"):
        load_ma_model(tmp_path / "none.mat")
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(str(bad), {"something": np.zeros(3)})
    with pytest.raises(InputError, match="no variable 'model'"):
        load_ma_model(bad)


# ---------------------------------------------------------------- official values (need Ma's model.mat)

needs_model = pytest.mark.skipif(not weights.is_present("ma-model"),
                                 reason="Ma's model.mat is not installed (`iqarena weights fetch ma-model`, or "
                                        "`iqarena weights add ma-model PATH`); the official nrqm/pi values need it")


@needs_model
def test_official_nrqm(pairs):
    assert_printed_precision(iqarena.create_metric("ma")(pairs[0].double()).tolist(), "nrqm")


@needs_model
def test_official_pi(pairs):
    assert_printed_precision(iqarena.create_metric("pi")(pairs[0].double()).tolist(), "pi")


def test_official_rows_exist():
    from conftest import official

    assert len(official("nrqm")) == len(NAMES) and len(official("pi")) == len(NAMES)
