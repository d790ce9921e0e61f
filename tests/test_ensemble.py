"""Ensembles: grouped folds, every learner, presets, model folders, importance, averages, the
ensemble as a metric and the commands (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")
pytest.importorskip("catboost")

from iqarena import create_metric  # noqa: E402
from iqarena.datasets import load_dataset  # noqa: E402
from iqarena.ensemble import (EXTRACTORS, LEARNERS, PRESETS, Ensemble, FeatureTable, average_predictions,  # noqa: E402
                              build_learner, content_folds, dataset_features, fit_ensemble, read_features,
                              write_report)
from iqarena.errors import InputError  # noqa: E402
from iqarena.metrics import fingerprint  # noqa: E402

FAST = {"n_estimators": 120, "early_stopping": 20}


def toy(n: int = 240, f: int = 5, seed: int = 0, noise: float = 0.1):
    """Labels from feature 0 (strongly) and feature 1 (weakly); the rest is noise; 6 images per content."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    y = 2 * x[:, 0] + 0.5 * np.tanh(x[:, 1]) + noise * rng.normal(size=n)
    contents = [f"ref{i // 6}" for i in range(n)]
    table = FeatureTable(tuple(f"img{i}.png" for i in range(n)), tuple(f"f{j}" for j in range(f)), x, (), "toy")
    return table, y, contents


# ---------------------------------------------------------------- folds

def test_folds_are_grouped_by_content_seeded_and_match_the_trainers_split():
    contents = [f"r{i % 17}" for i in range(170)]
    a = content_folds(contents, 5, seed=3)
    assert np.array_equal(a, content_folds(contents, 5, seed=3))
    assert not np.array_equal(a, content_folds(contents, 5, seed=4))
    for c in set(contents):  # a content is never split between folds
        assert len({a[i] for i, x in enumerate(contents) if x == c}) == 1
    assert sorted(np.bincount(a)) == [3 * 10, 3 * 10, 3 * 10, 4 * 10, 4 * 10]

    # the same assignment as `iqarena train`'s data.fold (one rule for both)
    from iqarena.datasets import Dataset, Row
    from iqarena.models.data import fold_split

    ds = Dataset("t", Path("."), tuple(Row(f"d{i}.png", c, float(i)) for i, c in enumerate(contents)))
    for k in range(5):
        _, val = fold_split(ds, k, 5, seed=3)
        assert {r.dist for r in val.rows} == {f"d{i}.png" for i in np.flatnonzero(a == k)}
    with pytest.raises(InputError, match="between 2 and 17"):
        content_folds(contents, 18)


def test_no_content_in_training_and_validation_of_a_fold():
    table, y, contents = toy()
    ens = fit_ensemble(table, y, contents, preset="ridge", folds=4, permutation=False)
    fold_of = content_folds(contents, 4, 0)
    assert [f["n"] for f in ens.cv["folds"]] == [int((fold_of == k).sum()) for k in range(4)]


# ---------------------------------------------------------------- learners

@pytest.mark.parametrize("name", LEARNERS.names())
def test_every_learner_learns_and_round_trips_through_its_files(name, tmp_path):
    table, y, contents = toy(seed=1)
    if name == "mean-rank":  # its use: several noisy measures of the same quality, some of them reversed
        rng = np.random.default_rng(99)
        x = y[:, None] * np.array([1, -1, 1, 1, -1]) + 1.5 * rng.normal(size=(len(y), 5))
        table = FeatureTable(table.names, table.columns, x, (), "toy")
    train, test = np.arange(180), np.arange(180, 240)
    params = {k: v for k, v in FAST.items() if k in LEARNERS.get(name).defaults}
    m = build_learner(name, seed=0, threads=1, **params).fit(table.values[train], y[train], table.values[test],
                                                               y[test])
    pred = m.predict(table.values[test])
    rho = stats.spearmanr(pred, y[test]).statistic
    assert rho > 0.93, (name, rho)
    if name == "mean-rank":  # better than any one of its features
        assert rho > max(abs(stats.spearmanr(c, y[test]).statistic) for c in table.values[test].T) + 0.05
    files = m.save(tmp_path / "m")
    assert all((tmp_path / f).is_file() for f in files)
    again = build_learner(name, threads=1, **params).load(tmp_path / "m")
    again.rounds = m.rounds
    assert np.array_equal(again.predict(table.values[test]), pred)


def test_ridge_and_svr_equal_scikit_learn_on_the_same_data():
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    table, y, _ = toy(seed=2)
    x = table.values
    ours = build_learner("ridge").fit(x[:200], y[:200]).predict(x[200:])
    sc = StandardScaler().fit(x[:200])
    ref = RidgeCV(alphas=build_learner("ridge").params["alphas"]).fit(sc.transform(x[:200]), y[:200])
    assert np.allclose(ours, ref.predict(sc.transform(x[200:])), atol=1e-10)

    ours = build_learner("svr").fit(x[:200], y[:200]).predict(x[200:])
    ys = (y[:200] - y[:200].mean()) / y[:200].std()
    ref = SVR(kernel="rbf", C=1.0, epsilon=0.1, gamma="scale").fit(sc.transform(x[:200]), ys)
    assert np.allclose(ours, ref.predict(sc.transform(x[200:])) * y[:200].std() + y[:200].mean(), atol=1e-8)


def test_early_stopping_keeps_fewer_rounds_on_labels_without_signal():
    table, _, contents = toy()
    y = np.random.default_rng(5).normal(size=len(contents))  # nothing to learn: validation error rises early
    for name in ("xgboost", "lightgbm", "catboost"):
        m = build_learner(name, threads=1, n_estimators=400, early_stopping=10)
        m.fit(table.values[:180], y[:180], table.values[180:], y[180:])
        assert m.rounds < 100, (name, m.rounds)


def test_unknown_learner_parameter_is_named():
    with pytest.raises(InputError, match="max_dpth"):
        build_learner("xgboost", max_dpth=3)
    table, y, contents = toy()
    with pytest.raises(InputError, match="no learner of ridge has the parameter n_estimators"):
        fit_ensemble(table, y, contents, preset="ridge", params={"n_estimators": 3})


# ---------------------------------------------------------------- presets

def test_presets_hold_the_published_recipes():
    kele = PRESETS.get("debut.kele")
    assert PRESETS.get("debut_kele") is kele
    [(learner, p)] = kele.learners
    assert learner == "xgboost" and kele.folds == 5
    assert p == {"max_depth": 3, "learning_rate": 0.01, "subsample": 0.7, "colsample_bytree": 0.7,
                 "n_estimators": 10000, "early_stopping": 500}
    assert len(kele.metrics) == 12 and {"lpips_vgg", "dists", "mad", "vif", "vifp"} <= set(kele.metrics)
    egb = PRESETS.get("lion")
    assert [n for n, _ in egb.learners] == ["xgboost", "lightgbm", "catboost"] and egb.extractor == "vgg16_egb"


def test_bagged_fit_cross_validates_and_ranks_the_informative_feature_first():
    table, y, contents = toy()
    ens = fit_ensemble(table, y, contents, preset="egb", params=FAST, threads=1)
    assert len(ens.models) == 5 and all(len(f) == 3 for f in ens.models)
    assert ens.cv["pooled"]["srcc"] > 0.95 and ens.cv["mean"]["plcc"] > 0.95
    assert ens.cv["best_feature"]["feature"] == "f0"
    gain, perm = ens.importance["gain"], ens.importance["permutation"]
    assert np.argmax(gain) == 0 and np.argmax(perm) == 0
    assert perm[0] > 0.3 and max(abs(v) for v in perm[2:]) < 0.05  # shuffling noise costs nothing
    assert abs(sum(gain) - 1) < 1e-9
    # the out-of-fold predictions are the bagged models' predictions for images they never saw
    oof = np.array(ens.cv["oof"]["pred"])
    fold_of = content_folds(contents, 5, 0)
    k = 2
    val = fold_of == k
    assert np.allclose(oof[val], np.mean([m.predict(table.values[val]) for m in ens.models[k]], axis=0))


def test_fit_is_seeded():
    table, y, contents = toy()
    kw = {"preset": "xgboost", "params": {**FAST, "subsample": 0.7}, "permutation": False, "threads": 1}
    a = fit_ensemble(table, y, contents, **kw)
    b = fit_ensemble(table, y, contents, **kw)
    c = fit_ensemble(table, y, contents, seed=1, **kw)
    assert np.array_equal(a.predict(table.values), b.predict(table.values))
    assert not np.array_equal(a.predict(table.values), c.predict(table.values))


# ---------------------------------------------------------------- model folders and bad input

def test_model_folder_round_trip_report_and_refusals(tmp_path):
    table, y, contents = toy()
    ens = fit_ensemble(table, y, contents, preset="lightgbm", params=FAST, threads=1)
    folder = ens.save(tmp_path / "model")
    write_report(ens, folder)
    for name in ("ensemble.json", "report.md", "importance.csv", "importance.png", "oof.csv"):
        assert (folder / name).is_file(), name
    back = Ensemble.load(folder)
    assert np.array_equal(back.predict(table.values), ens.predict(table.values))
    assert "| pooled out-of-fold |" in (folder / "report.md").read_text()

    with pytest.raises(InputError, match="not empty"):
        ens.save(folder)
    ens.save(folder, overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds no ensemble.json"):
        ens.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep me"

    with pytest.raises(InputError, match=r"'f3', 'f4'|f3, f4"):
        back.predict_table(table.select(["f0", "f1", "f2"]))
    bad = table.values.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match="'f1' has 1 NaN"):
        back.predict(bad)
    with pytest.raises(InputError, match="f1.*NaN"):
        fit_ensemble(FeatureTable(table.names, table.columns, bad, (), "toy"), y, contents, preset="ridge")
    with pytest.raises(InputError, match="same images"):
        fit_ensemble(table, y[:-1], contents, preset="ridge")

    victim = next(folder.glob("fold0-*"))
    victim.write_bytes(victim.read_bytes() + b" ")
    with pytest.raises(InputError, match="changed since the ensemble was saved"):
        Ensemble.load(folder)
    manifest = json.loads((folder / "ensemble.json").read_text())
    manifest["version"] = 99
    (folder / "ensemble.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="format 99"):
        Ensemble.load(folder)
    with pytest.raises(InputError, match="not an ensemble model folder"):
        Ensemble.load(tmp_path)


def test_feature_tables_from_csv_name_their_problems(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("\ufeffname,ssim,psnr\na.png,0.9,30\nb.png,0.8,28\n")
    t = read_features(p)
    assert t.columns == ("ssim", "psnr") and t.names == ("a.png", "b.png")
    assert t.sources == ({"metric": "ssim", "options": {}}, {"metric": "psnr", "options": {}})
    assert np.array_equal(t.rows_for(["b.png", "a.png"]), [[0.8, 28], [0.9, 30]])
    with pytest.raises(InputError, match="no features for 1 of the 2"):
        t.rows_for(["a.png", "c.png"])
    p.write_text("name,x\na.png,0.9\na.png,0.8\n")
    with pytest.raises(InputError, match="appears twice"):
        read_features(p)
    p.write_text("name,x\na.png,zero\n")
    with pytest.raises(InputError, match="line 2: a feature is not a number"):
        read_features(p)
    p.write_text("name,x,y\na.png,1\n")
    with pytest.raises(InputError, match="line 2: 2 fields"):
        read_features(p)


# ---------------------------------------------------------------- averages

def test_average_with_rank_normalisation_and_directions():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([400.0, 100.0, 300.0, 200.0])  # lower is better
    got = average_predictions({"a": a, "b": b}, normalise="rank", higher_better={"a": True, "b": False})
    ra, rb = (stats.rankdata(a) - 0.5) / 4, 1 - (stats.rankdata(b) - 0.5) / 4
    assert np.allclose(got, (ra + rb) / 2)
    assert np.allclose(average_predictions({"a": a, "c": 3 * a}), 2 * a)
    assert np.allclose(average_predictions({"a": a, "c": 3 * a}, weights={"a": 3, "c": 1}), 1.5 * a)
    with pytest.raises(InputError, match="different numbers"):
        average_predictions({"a": a, "c": a[:2]})
    with pytest.raises(InputError, match="'c' has 1 NaN"):
        average_predictions({"a": a, "c": np.array([1, np.nan, 2, 3])})


# ---------------------------------------------------------------- the ensemble as a metric, on images

@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    """8 references x 4 blur levels (40x40 RGB); labels fall with the blur, with a little noise."""
    root = tmp_path_factory.mktemp("ens_images")
    rng = np.random.default_rng(0)
    lines = ["dist,ref,score"]
    for r in range(8):
        ref = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(ref).save(root / f"r{r}.png")
        t = torch.from_numpy(ref).permute(2, 0, 1).float()[None] / 255
        for level in range(4):
            k = 2 * level + 3
            d = torch.nn.functional.avg_pool2d(t, k, stride=1, padding=k // 2, count_include_pad=False)
            arr = (d[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(root / f"r{r}_{level}.png")
            lines.append(f"r{r}_{level}.png,r{r}.png,{5 - level + 0.05 * rng.normal():.4f}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_an_ensemble_folder_is_a_metric(image_set, tmp_path):
    ds = load_dataset("csv", image_set, labels=image_set / "labels.csv")
    table = dataset_features(ds, metrics=["psnr", "ssim"])
    ens = fit_ensemble(table, ds.scores, [r.content for r in ds.rows], preset="ridge", folds=4)
    folder = ens.save(tmp_path / "kele")
    m = create_metric(str(folder))
    assert m.info.family == "ensemble" and m.info.kind == "fr" and m.info.higher_better
    d = torch.stack([torch.from_numpy(np.array(Image.open(image_set / r.dist))).permute(2, 0, 1)
                     for r in ds.rows[:6]]).double() / 255
    r = torch.stack([torch.from_numpy(np.array(Image.open(image_set / r.ref))).permute(2, 0, 1)
                     for r in ds.rows[:6]]).double() / 255
    got = m(d.float(), r.float())
    assert np.allclose(got.numpy(), ens.predict(table.values[:6]), atol=1e-6)
    # refitting changes the manifest, hence the metric's fingerprint (no stale cached scores)
    before = fingerprint(str(folder))
    fit_ensemble(table, ds.scores, [r.content for r in ds.rows], preset="ridge", folds=2).save(folder, overwrite=True)
    assert fingerprint(str(folder)) != before

    plain = FeatureTable(table.names, ("a", "b"), table.values, (), "plain")
    fit_ensemble(plain, ds.scores, [r.content for r in ds.rows], preset="ridge", folds=4).save(tmp_path / "plain")
    with pytest.raises(InputError, match="predicts from tables only"):
        create_metric(str(tmp_path / "plain"))
    with pytest.raises(InputError, match="is a folder but not a metric"):
        create_metric(str(tmp_path))


def test_vgg16_egb_features_on_a_stand_in_backbone(tmp_path):
    from iqarena.backbones import VGG16

    torch.manual_seed(0)
    path = tmp_path / "vgg16-stand-in.pth"
    torch.save(VGG16(include_top=False).state_dict(), path)
    net = EXTRACTORS.get("vgg16_egb")(weights=path)
    x = torch.rand(2, 3, 50, 70)
    y = torch.rand(2, 3, 50, 70)
    f = net(x, y)
    assert f.shape == (2, 1536) and len(net.columns) == 1536 and net.columns[512] == "vgg16.block4_conv3.0"
    assert torch.equal(net(x, x), torch.zeros(2, 1536))
    assert (f >= 0).all() and f.sum() > 0
    # GAP of the taps: equal to running torchvision-index slices by hand
    z = (torch.nn.functional.interpolate(y, size=(224, 224), mode="nearest-exact") - net.mean) / net.std
    h = net.layers[:21](z)
    assert torch.allclose(net.pooled(y)[:, :512], h.mean((2, 3)), atol=1e-6)


# ---------------------------------------------------------------- commands

def run_cli(*args):
    """The command in this process (fast); ``returncode``, ``stdout``, ``stderr`` as a subprocess gives."""
    from typer.testing import CliRunner

    from iqarena.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def run_main(*args):
    """The installed command as a user runs it (exit codes, messages)."""
    return subprocess.run([sys.executable, "-m", "iqarena.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_fit_predict_average_and_errors(image_set, tmp_path):
    labels = image_set / "labels.csv"
    out = tmp_path / "model"
    r = run_cli("ensemble", "fit", "--labels", labels, "--root", image_set, "--metric", "psnr", "--metric", "ssim",
                "--model", "xgboost", "--folds", "4", "--param", "n_estimators=60", "--threads", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "cross-validated SRCC" in r.stderr and (out / "report.md").is_file()
    cv = json.loads((out / "ensemble.json").read_text())["cv"]
    assert cv["pooled"]["srcc"] > 0.8

    pred = tmp_path / "output.txt"
    r = run_cli("ensemble", "predict", out, "--labels", labels, "--root", image_set, "-o", pred,
                "--submission", tmp_path / "sub.zip")
    assert r.returncode == 0, r.stderr
    lines = pred.read_text().splitlines()
    assert len(lines) == 32 and lines[0].startswith("r0_0.png,")
    assert run_cli("submission", "check", tmp_path / "sub.zip").returncode == 0

    # the same model scores pairs like any metric
    r = run_cli("score", "-m", out, "--dist", image_set / "r1_2.png", "--ref", image_set / "r1.png", "--format", "csv")
    assert r.returncode == 0, r.stderr
    import csv
    import io

    from_score = float(list(csv.DictReader(io.StringIO(r.stdout)))[-1]["score"])
    from_predict = float(next(ln for ln in lines if ln.startswith("r1_2.png")).split(",")[1])
    assert abs(from_score - from_predict) < 1e-6

    avg = tmp_path / "avg.txt"
    r = run_cli("ensemble", "average", pred, "psnr", "--normalise", "rank", "--labels", labels, "--root", image_set,
                "-o", avg)
    assert r.returncode == 0, r.stderr
    assert len(avg.read_text().splitlines()) == 32

    r = run_main("ensemble", "fit", "--labels", labels, "--root", image_set, "--metric", "psnr", "--model", "nosuch",
                 "-o", tmp_path / "x")
    assert r.returncode == 2 and "unknown ensemble model 'nosuch'" in r.stderr and "Traceback" not in r.stderr
    r = run_main("ensemble", "fit", "--labels", labels, "--root", image_set, "--model", "debut.kele",
                "--features", tmp_path / "missing.csv", "-o", tmp_path / "x")
    assert r.returncode == 2 and "not found" in r.stderr
