"""NIQE, BRISQUE, PIQE: calibration to the official values, properties, model fitting/training, errors."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
import torch
from conftest import NAMES, SHARED, assert_printed_precision, official
from properties import blur, monotone, noise

import iqarena
from iqarena.errors import IQAError, ResourceError
from iqarena.io import read_image
from iqarena.metrics.brisque import (brisque, brisque_features, load_brisque_model, parse_svr_model,
                                     read_feature_range, read_svr_model, scale_features, train_brisque)
from iqarena.metrics.niqe import estimate_niqe_model, load_niqe_model, niqe, niqe_features
from iqarena.metrics.piqe import piqe
from iqarena.ops.nss import fma_is_fused, matlab_colon

# The covariance inversion amplifies the rounding differences between MATLAB's BLAS and ours to ~1e-13, so
# NIQE's 15 printed digits are held to 5e-13 relative (docs/no-reference.md).
NIQE_REL_TOL = 5e-13

# A run of the BRISQUE release (public copy: github.com/Vampirehh/IQA-Master, tools/IQA/BRISQUE): svm-scale's
# output test_ind_scaled for one image and svm-predict's output file for it.
RELEASE_SCALED = [-0.575864, -0.118583, -0.176387, 0.0942554, -0.722177, -0.332815, -0.173944, 0.283607,
                  -0.742262, -0.294482, -0.139357, 0.0501511, -0.601654, -0.538425, -0.120491, -0.135838,
                  -0.575815, -0.609062, 0.402793, -0.0920068, 0.362319, -0.0626879, -0.587564, -0.373416,
                  0.343902, 0.315947, -0.645745, -0.274525, 0.349805, 0.287452, -0.60063, -0.305984,
                  0.461942, -0.508558, -0.442973, -0.578224]
RELEASE_OUTPUT = "6.8344"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dist64(pairs):
    return pairs[0].double()


@pytest.fixture(scope="module")
def niqe_values(dist64):
    return niqe(dist64)


def test_fused_multiply_add_available():
    # The MATLAB-parity filters rely on torch.addcmul being a true FMA (x86-64 with FMA, ARM64, CUDA).
    assert fma_is_fused(torch.device("cpu"))


def test_matlab_colon():
    gam = matlab_colon(0.2, 0.001, 10)
    assert gam.size == 9801 and gam[0] == 0.2 and gam[-1] == 10.0 and gam[4900] == 5.1
    assert np.allclose(gam, 0.2 + 0.001 * np.arange(9801), rtol=0, atol=1e-14)


def test_niqe_calibration(niqe_values):
    for name, v, (ref, _) in zip(NAMES, niqe_values.tolist(), official("niqe")):
        assert abs(v - ref) <= NIQE_REL_TOL * ref, f"niqe {name}: {v!r} vs official {ref}"


def test_brisque_calibration(dist64):
    got = brisque(dist64).tolist()
    for name, v, (ref, dec) in zip(NAMES, got, official("brisque")):
        assert abs(v - ref) <= 0.5 * 10 ** -dec + 1e-12, f"brisque {name}: {v!r} vs official {ref}"


def test_piqe_calibration(pairs):
    assert_printed_precision(piqe(pairs[0]).tolist(), "piqe")


def test_svr_reproduces_release_run():
    m = load_brisque_model()
    got = m.svr.predict(torch.tensor([RELEASE_SCALED], dtype=torch.float64)).item()
    assert f"{got:g}" == RELEASE_OUTPUT


def test_registry_and_module(pairs):
    for name in ("niqe", "brisque", "piqe"):
        info = iqarena.metrics.get_info(name)
        assert info.kind == "nr" and not info.higher_better and info.weights == ()
    m = iqarena.create_metric("piqe")
    assert torch.equal(m(pairs[0][:2]), piqe(pairs[0][:2]))


@pytest.mark.parametrize("metric", [niqe, brisque, piqe])
@pytest.mark.parametrize("distortion", [(blur, [0.5, 1.0, 2.0, 4.0]), (noise, [0.01, 0.03, 0.08, 0.2])])
def test_monotone_with_distortion(i01, metric, distortion):
    fn, levels = distortion
    scores = metric(torch.cat([fn(i01, s) for s in levels])).tolist()
    assert monotone(scores, higher_better=False), scores


@pytest.mark.parametrize("metric", [niqe, brisque, piqe])
def test_batch_equals_one_by_one(dist64, metric, niqe_values):
    batch = niqe_values if metric is niqe else metric(dist64)
    single = torch.cat([metric(dist64[i:i + 1]) for i in (0, 3)])
    assert torch.allclose(batch[[0, 3]], single, rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("metric", [niqe, brisque, piqe])
def test_grey_equals_rgb_converted(i01, metric):
    w = torch.tensor([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=torch.float64)
    rgb = i01.double()
    grey = torch.floor((torch.round(rgb * 255) * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + 0.5) / 255
    assert torch.allclose(metric(rgb), metric(grey), rtol=1e-12, atol=0)
    assert metric(i01).dtype == torch.float32 and metric(grey.float()).shape == (1,)


def test_flat_image():
    flat = torch.full((1, 1, 192, 192), 0.5)
    assert torch.isnan(niqe(flat)).all() and torch.isnan(brisque(flat)).all()  # undefined AGGD, as the release
    assert piqe(flat).item() == 100.0  # MATLAB piqe: a uniform image scores 100


def test_estimate_niqe_model_is_used(tmp_path, pairs, i01):
    refs = pairs[1][:3]
    model = estimate_niqe_model(list(refs), sharpness_threshold=0.75)
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and np.isfinite(model.cov).all()
    assert np.allclose(model.cov, model.cov.T)
    path = model.save(tmp_path / "pristine.mat")
    with pytest.raises(IQAError, match="exists"):
        model.save(path)
    loaded = load_niqe_model(path)
    assert np.array_equal(loaded.mu, model.mu) and np.array_equal(loaded.cov, model.cov)
    own = niqe(i01.double(), model=str(path))
    assert not torch.allclose(own, niqe(i01.double()))
    # the sharpness selection keeps only blocks above 0.75 x the sharpest one
    feats, sharp = niqe_features(refs[:1].double())
    keep = sharp[0] > 0.75 * sharp[0].max()
    assert 0 < keep.sum() < keep.numel()
    # a model fitted on these references finds them closer than their blurred versions
    assert (niqe(refs.double(), model=str(path)) < niqe(blur(refs, 2.0).double(), model=str(path))).all()


def test_estimate_niqe_model_from_folder(tmp_path, pairs):
    from PIL import Image

    for k, img in enumerate(pairs[1][:2]):
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"p{k}.png")
    a = estimate_niqe_model(tmp_path)
    b = estimate_niqe_model(list(pairs[1][:2]))
    assert np.allclose(a.mu, b.mu, rtol=1e-12) and np.allclose(a.cov, b.cov, rtol=1e-10, atol=1e-14)


def test_libsvm_round_trip(tmp_path, dist64):
    release = load_brisque_model()
    release.save(tmp_path / "copy")
    copy = load_brisque_model(tmp_path / "copy")
    assert np.array_equal(copy.svr.sv, release.svr.sv) and np.array_equal(copy.range.fmin, release.range.fmin)
    assert torch.equal(brisque(dist64, model=str(tmp_path / "copy")), brisque(dist64))
    assert copy.svr.header.get("probA") == "5.71401"


def test_train_brisque_synthetic(tmp_path, i01):
    levels = [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.8, 3.6]
    x = i01[..., 64:256, 128:384]
    imgs = torch.cat([x if s == 0 else blur(x, s) for s in levels] + [noise(x, s) for s in (0.02, 0.05, 0.1)])
    target = brisque(imgs.double()).double().numpy()
    model = train_brisque(list(imgs), target, output_dir=tmp_path / "m")
    assert (tmp_path / "m" / "allmodel").is_file() and (tmp_path / "m" / "allrange").is_file()
    refit = brisque(imgs.double(), model=str(tmp_path / "m")).numpy()
    assert np.abs(refit - target).max() < 0.2  # epsilon-tube 0.1 plus the solver tolerance
    assert model.svr.coef.size <= len(levels) + 3

    # the model is libsvm's fit as scikit-learn returns it, predicted by iqarena's own SVRModel
    svm = pytest.importorskip("sklearn.svm")
    scaled = scale_features(torch.cat([brisque_features(im[None].double()) for im in imgs]), model.range)
    probe = np.concatenate([scaled.numpy(), np.random.default_rng(0).uniform(-1, 1, (20, scaled.shape[1]))])
    libsvm = svm.SVR(kernel="rbf", C=1024.0, gamma=0.05, epsilon=0.1).fit(scaled.numpy(), target)
    ours = model.svr.predict(torch.from_numpy(probe)).numpy()
    assert np.abs(ours - libsvm.predict(probe)).max() < 1e-9
    assert model.svr.coef.size == libsvm.support_.size and model.svr.rho == -libsvm.intercept_[0]
    saved = read_svr_model(tmp_path / "m" / "allmodel")  # 17 significant digits: read back exactly
    assert np.array_equal(saved.sv, model.svr.sv) and np.array_equal(saved.coef, model.svr.coef)
    assert (saved.rho, saved.gamma) == (model.svr.rho, model.svr.gamma)
    assert np.array_equal(saved.predict(torch.from_numpy(probe)).numpy(), ours)
    with pytest.raises(IQAError, match="exists"):
        train_brisque(list(imgs[:3]), target[:3], output_dir=tmp_path / "m")
    with pytest.raises(IQAError, match="one score per image"):
        train_brisque(list(imgs[:3]), target[:2])


def test_train_brisque_without_scikit_learn(monkeypatch, i01):
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    with pytest.raises(ResourceError, match=r"pip install 'iqarena\[train\]'"):
        train_brisque([i01[0], i01[0]], [1.0, 2.0])


@pytest.mark.skipif(not (SHARED / "data" / "clive" / "mos.csv").is_file(), reason="needs ../shared/data/clive")
def test_train_brisque_on_clive(tmp_path):
    clive = SHARED / "data" / "clive"
    with (clive / "mos.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if not r["image"].startswith("t")][:24]
    files = [clive / "images" / r["image"] for r in rows]
    mos = np.array([float(r["mos"]) for r in rows])
    model = train_brisque(files, 100 - mos, output_dir=tmp_path / "clive")
    same_size = [f for f in files if read_image(f).shape[-2:] == (500, 500)]
    pred = brisque(torch.stack([read_image(f) for f in same_size]).double(), model=str(tmp_path / "clive"))
    target = np.array([100 - m for f, m in zip(files, mos) if f in same_size])
    assert np.corrcoef(pred.numpy(), target)[0, 1] > 0.9  # fits its training data
    assert read_svr_model(tmp_path / "clive" / "allmodel").coef.size == model.svr.coef.size


def test_errors(tmp_path, i01):
    with pytest.raises(IQAError, match="96x96"):
        niqe(torch.rand(1, 3, 80, 300))
    with pytest.raises(IQAError, match="at least 16x16"):
        brisque(torch.rand(1, 1, 10, 40))
    bad = tmp_path / "allmodel"
    bad.write_text("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nrho 1\nSV\n1 1:x\n")
    (tmp_path / "allrange").write_text("x\n-1 1\n1 0 1\n")
    with pytest.raises(IQAError, match="malformed"):
        brisque(i01, model=str(tmp_path))
    with pytest.raises(IQAError, match="RBF regression"):
        parse_svr_model("svm_type c_svc\nkernel_type linear\nSV\n1 1:0.5\n")
    with pytest.raises(IQAError, match="no 'SV' line"):
        parse_svr_model("gamma 1\n")
    (tmp_path / "r").write_text("y\n")
    with pytest.raises(IQAError, match="feature range"):
        read_feature_range(tmp_path / "r")
    with pytest.raises(IQAError, match="not found"):
        brisque(i01, model=str(tmp_path / "nowhere"))
    (tmp_path / "m.mat").write_bytes(b"not a mat file")
    with pytest.raises(IQAError, match="cannot read NIQE model"):
        niqe(i01, model=str(tmp_path / "m.mat"))
    import scipy.io
    scipy.io.savemat(tmp_path / "w.mat", {"mu_prisparam": np.zeros((1, 5))})
    with pytest.raises(IQAError, match="lacks"):
        niqe(i01, model=str(tmp_path / "w.mat"))
    with pytest.raises(IQAError, match="no images"):
        estimate_niqe_model(tmp_path)


def test_features_shapes(dist64):
    f, sharp = niqe_features(dist64[:2])
    assert f.shape == (2, 20, 36) and sharp.shape == (2, 20) and f.dtype == torch.float64
    assert brisque_features(dist64[:2]).shape == (2, 36)


def test_cli_niqe_fit_and_brisque_train(tmp_path, pairs, i01):
    from PIL import Image
    from typer.testing import CliRunner

    from iqarena.cli import app

    def save(img, path):
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)

    (tmp_path / "pristine").mkdir()
    for k, img in enumerate(pairs[1][:2]):
        save(img, tmp_path / "pristine" / f"r{k}.png")
    runner = CliRunner()
    out = tmp_path / "model.mat"
    res = runner.invoke(app, ["niqe-fit", str(tmp_path / "pristine"), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert np.allclose(load_niqe_model(out).mu, estimate_niqe_model(list(pairs[1][:2])).mu, rtol=1e-12)
    res = runner.invoke(app, ["niqe-fit", str(tmp_path / "pristine"), "--output", str(out)])
    assert res.exit_code != 0 and "exists" in str(res.exception)

    x = i01[..., :128, :160]
    rows = ["file,dmos"]
    for k, s in enumerate([0.3, 0.8, 1.5, 2.5, 4.0]):
        save(blur(x, s)[0], tmp_path / f"b{k}.png")
        rows.append(f"b{k}.png,{10 + 15 * k}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    args = ["brisque-train", str(tmp_path / "labels.csv"), "--output", str(tmp_path / "bm"),
            "--image-column", "file", "--score-column", "dmos"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert read_svr_model(tmp_path / "bm" / "allmodel").coef.size > 0
    assert runner.invoke(app, args).exit_code != 0
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0
    res = runner.invoke(app, ["brisque-train", str(tmp_path / "labels.csv"), "--output", str(tmp_path / "c")])
    assert res.exit_code != 0 and "needs columns" in str(res.exception)
