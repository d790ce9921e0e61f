"""The evaluation protocol against scipy/numpy and hand-computed values, the bootstrap and significance
tests, and an end-to-end `iqarena evaluate` run on a tiny synthetic PIPAL-layout dataset."""

from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats as sps
from typer.testing import CliRunner

from iqarena import IQAError
from iqarena.evaluate import (bootstrap, compare, evaluate, fit_mapping, krcc, main_score, plcc, rmse, srcc,
                              williams_test)
from iqarena.evaluate import stats as S

DATA = Path(__file__).parent / "data" / "pipal"


@pytest.fixture(scope="module")
def noisy():
    """Elo-like labels and a noisy, tied, lower-is-better prediction of them."""
    rng = np.random.default_rng(7)
    y = rng.normal(1500, 120, 400)
    x = -np.round(np.tanh((y + rng.normal(0, 90, 400) - 1500) / 200), 2)  # ties from the rounding
    return x, y


# ---------------------------------------------------------------- coefficients

def test_coefficients_hand_computed():
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # d = [1, -1, 1, -1, 0]: 1 - 6 * 4 / (5 * 24) = 0.8; 8 concordant, 2 discordant pairs: (8 - 2) / 10
    assert srcc(x, y) == pytest.approx(0.8)
    assert krcc(x, y) == pytest.approx(0.6)
    # centred x = [-2..2], y - 3 = [-1, -2, 1, 0, 2]: 8 / sqrt(10 * 10)
    assert plcc(x, y) == pytest.approx(0.8)
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert srcc([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(sps.spearmanr([1, 1, 2, 3], [1, 2, 3, 4]).statistic)


def test_coefficients_match_scipy(noisy):
    x, y = noisy
    assert srcc(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert krcc(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
    assert plcc(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-12)


def test_bad_input_says_what():
    with pytest.raises(IQAError, match="differ in length"):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(IQAError, match="non-finite"):
        evaluate([1, 2, np.inf, 4, 5], [1, 2, 3, 4, 5])
    with pytest.raises(IQAError, match="unknown mapping"):
        fit_mapping([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], "cubic")


# ---------------------------------------------------------------- mappings and the protocol

def test_poly3_equals_numpy_polyfit_on_elo_scale(noisy):
    x, y = noisy
    elo = 1200 + 300 * x  # large offsets: the reason the fit works on standardised predictions
    fitted = fit_mapping(elo, y, "poly3")(elo)
    reference = np.polyval(np.polyfit(elo, y, 3), elo)
    np.testing.assert_allclose(fitted, reference, rtol=1e-9)
    r = evaluate(elo, y, higher_better=True)
    assert r.plcc == pytest.approx(sps.pearsonr(reference, y).statistic, abs=1e-12)
    assert r.rmse == pytest.approx(np.sqrt(np.mean((reference - y) ** 2)), rel=1e-9)
    assert r.main == pytest.approx(r.srcc + r.plcc) == pytest.approx(main_score(elo, y, higher_better=True))


def test_poly3_recovers_an_exact_cubic():
    x = np.linspace(-3, 5, 40)
    y = 2 * x ** 3 - x ** 2 + 4 * x + 1500
    m = fit_mapping(x, y, "poly3")
    np.testing.assert_allclose(m(x), y, rtol=1e-10)
    assert evaluate(x, y).plcc == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["logistic4", "logistic5"])
def test_logistic_mappings_recover_logistic_data(kind):
    x = np.linspace(0, 1, 60)
    y = 80 / (1 + np.exp(-(x - 0.4) / 0.08)) + 10 + (3 * x if kind == "logistic5" else 0)
    m = fit_mapping(x, y, kind)
    assert m.kind == kind and not m.note
    np.testing.assert_allclose(m(x), y, atol=1e-4)
    r = evaluate(-x, y, higher_better=False, mapping=kind)   # decreasing input: the fit must turn too
    assert r.plcc == pytest.approx(1.0, abs=1e-8)


def test_direction_from_argument_registry_and_labels(noisy):
    x, y = noisy
    up = evaluate(-x, y)
    down = evaluate(x, y, higher_better=False)
    assert (down.srcc, down.plcc, down.krcc) == pytest.approx((up.srcc, up.plcc, up.krcc))
    assert up.srcc > 0.5
    # a registered lower-is-better metric name is enough; so is a lower-is-better label (DMOS)
    from iqarena.metrics import get_info, list_metrics

    lower = [n for n in list_metrics() if not get_info(n).higher_better]
    if lower:
        assert evaluate(x, y, metric=lower[0]).srcc == pytest.approx(up.srcc)
    dmos = -y
    assert evaluate(x, dmos, higher_better=False, labels_higher_better=False).srcc == pytest.approx(up.srcc)
    assert evaluate(-x, dmos, metric="psnr", labels_higher_better=False).srcc == pytest.approx(up.srcc)
    assert evaluate(-x, dmos, labels_higher_better=False).plcc == pytest.approx(up.plcc)


# ---------------------------------------------------------------- bootstrap

def test_weighted_resamples_equal_explicit_resampling(noisy):
    x, y = noisy
    q = -x
    w = next(S._weights(q.size, 4, seed=11))
    draws = S.bootstrap_draws(q, y, n_boot=4, seed=11)
    for b in range(4):
        idx = np.repeat(np.arange(q.size), w[b].astype(int))
        expect_s = sps.spearmanr(q[idx], y[idx]).statistic
        expect_p = sps.pearsonr(np.polyval(np.polyfit(q[idx], y[idx], 3), q[idx]), y[idx]).statistic
        assert draws[b] == pytest.approx([expect_s, expect_p], abs=1e-10)


def test_bootstrap_is_seeded_and_brackets_the_estimate(noisy):
    x, y = noisy
    a = bootstrap(x, y, higher_better=False, n_boot=300, seed=1)
    assert a == bootstrap(x, y, higher_better=False, n_boot=300, seed=1)
    assert a != bootstrap(x, y, higher_better=False, n_boot=300, seed=2)
    r = evaluate(x, y, higher_better=False)
    for key, value in (("srcc", r.srcc), ("plcc", r.plcc), ("main", r.main)):
        assert a[key].low < value < a[key].high
    assert 0.02 < a["srcc"].high - a["srcc"].low < 0.3


def test_cluster_bootstrap_draws_whole_contents(noisy):
    x, y = noisy
    clusters = np.arange(x.size) // 8
    for w in S._weights(x.size, 50, seed=0, clusters=clusters):
        per_cluster = w.reshape(w.shape[0], -1, 8)
        assert (per_cluster == per_cluster[..., :1]).all()  # every image of a content drawn equally often
        assert np.allclose(w.sum(axis=1), x.size)
    wide = bootstrap(x, y, higher_better=False, n_boot=200, clusters=clusters)
    assert wide["srcc"].low < evaluate(x, y, higher_better=False).srcc < wide["srcc"].high


@pytest.mark.parametrize("kind", ["logistic4", "logistic5"])
def test_logistic_bootstrap_matches_curve_fit_refits(noisy, kind):
    """Each resample's batched refit agrees with scipy's curve_fit started from the same full-sample fit."""
    from scipy import optimize

    x, y = noisy
    q = -x
    z = (q - q.mean()) / q.std()
    func = S._logistic4 if kind == "logistic4" else S._logistic5
    p0 = fit_mapping(q, y, kind).params
    draws = S.bootstrap_draws(q, y, mapping=kind, n_boot=6, seed=5)
    w = next(S._weights(x.size, 6, seed=5))
    for b in range(6):
        idx = np.repeat(np.arange(x.size), w[b].astype(int))
        params, _ = optimize.curve_fit(func, z[idx], y[idx], p0=p0, maxfev=20000)
        assert draws[b, 1] == pytest.approx(sps.pearsonr(func(z[idx], *params), y[idx]).statistic, abs=1e-3)


# ---------------------------------------------------------------- significance

def test_williams_hand_computed():
    # r12 = .5, r13 = .3, r23 = .4, n = 50:
    # |R| = 1 - .25 - .09 - .16 + 2 * .5 * .3 * .4 = .62; rbar = .4
    # t = .2 * sqrt(49 * 1.4 / (2 * 49 / 47 * .62 + .16 * .6 ** 3)) = .2 * sqrt(68.6 / 1.32736...)
    t, p = williams_test(0.5, 0.3, 0.4, 50)
    expect = 0.2 * math.sqrt(68.6 / (2 * 49 / 47 * 0.62 + 0.16 * 0.216))
    assert t == pytest.approx(expect, rel=1e-12) and t == pytest.approx(1.4378, abs=1e-4)
    assert p == pytest.approx(2 * sps.t.sf(expect, 47), rel=1e-12)
    t2, p2 = williams_test(0.3, 0.5, 0.4, 50)
    assert (t2, p2) == pytest.approx((-t, p))
    assert williams_test(0.6, 0.6, 0.9, 30) == (0.0, 1.0)


def test_williams_is_calibrated_under_the_null():
    """Two metrics equally correlated with the labels: about 5% of tests reject at 0.05."""
    rng = np.random.default_rng(0)
    n, trials = 60, 2000
    y = rng.normal(size=(trials, n))
    common = rng.normal(size=(trials, n))
    a = 0.5 * y + 0.6 * common + 0.6 * rng.normal(size=(trials, n))
    b = 0.5 * y + 0.6 * common + 0.6 * rng.normal(size=(trials, n))

    def r(u, v):
        u = u - u.mean(1, keepdims=True)
        v = v - v.mean(1, keepdims=True)
        return (u * v).sum(1) / np.sqrt((u * u).sum(1) * (v * v).sum(1))

    p = np.array([williams_test(r12, r13, r23, n)[1] for r12, r13, r23 in zip(r(y, a), r(y, b), r(a, b))])
    assert 0.035 < (p < 0.05).mean() < 0.065


def test_compare_tells_better_from_equal(noisy):
    x, y = noisy
    rng = np.random.default_rng(3)
    good = -x
    worse = good + rng.normal(0, 0.6, x.size)
    c = compare(good, worse, y, a="good", b="worse", higher_better_a=True, higher_better_b=True, n_boot=300)
    assert c.diff_main > 0 and c.diff_interval.low > 0
    assert c.p_bootstrap < 0.01 and c.p_plcc < 0.01 and c.p_srcc < 0.01
    same = compare(good, good + rng.normal(0, 1e-6, x.size), y, n_boot=300)
    assert same.p_bootstrap > 0.05 and same.p_plcc > 0.05
    # registered names give the direction: psnr is higher-is-better
    assert compare(good, worse, y, a="psnr", b="ssim", n_boot=50).diff_main == pytest.approx(c.diff_main)


# ---------------------------------------------------------------- end to end

def _tiny_pipal(root: Path, refs=("A0001", "A0002"), per_ref: int = 14) -> None:
    """Official PIPAL training layout with the real labels of the first ``per_ref`` images of each
    reference, and 40x40 images whose noise level follows the label (so PSNR tracks it)."""
    rng = np.random.default_rng(0)
    lines = [ln for ln in (DATA / "pipal_train_labels_A0001-A0002.txt").read_text().splitlines()]
    for sub in ("Train_Ref", "Train_Dis", "Train_Label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for ref in refs:
        base = rng.integers(40, 216, (40, 40, 3)).astype(np.float64)
        Image.fromarray(base.astype(np.uint8)).save(root / "Train_Ref" / f"{ref}.bmp")
        mine = [ln for ln in lines if ln.startswith(ref)][:per_ref]
        for ln in mine:
            name, score = (t.strip() for t in ln.split(","))
            sigma = max(1.0, (1900 - float(score)) / 15)
            img = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "Train_Dis" / name)
        (root / "Train_Label" / f"{ref}.txt").write_text("\n".join(ln.replace(" ", "") for ln in mine) + "\n")


@pytest.fixture(scope="module")
def cli():
    from iqarena.cli import app

    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, list(map(str, args)))
        return res

    return run


def _table(folder: Path) -> dict[str, dict]:
    with (folder / "table.csv").open() as fh:
        return {r["metric"]: r for r in csv.DictReader(fh)}


def test_evaluate_end_to_end_pipal(tmp_path, cli, monkeypatch):
    _tiny_pipal(tmp_path / "pipal")
    out = tmp_path / "report"
    res = cli("evaluate", "--dataset", "pipal", "--root", tmp_path / "pipal", "-m", "psnr", "-m", "ssim",
              "-o", out, "--bootstrap", "200")
    assert res.exit_code == 0, res.output
    for name in ("report.md", "table.md", "table.csv", "table.json", "scores.csv", "scatter.png", "groups.png",
                 "systems.png", "significance.csv", "groups.csv", "run.json"):
        assert (out / name).is_file(), name
    table = _table(out)
    assert set(table) == {"psnr", "ssim"}
    assert float(table["psnr"]["srcc"]) > 0.9 and table["psnr"]["n"] == "28"
    assert float(table["psnr"]["main"]) == pytest.approx(float(table["psnr"]["srcc"]) + float(table["psnr"]["plcc"]))
    assert sorted(int(r["rank"]) for r in table.values()) == [1, 2]
    # the table agrees with the statistics computed directly from the scores
    with (out / "scores.csv").open() as fh:
        cached = [r for r in csv.DictReader(fh) if r["metric"] == "psnr"]
    assert len(cached) == 28
    labels = {ln.split(",")[0]: float(ln.split(",")[1]) for f in (tmp_path / "pipal" / "Train_Label").glob("*.txt")
              for ln in f.read_text().split()}
    x = np.array([float(r["score"]) for r in cached])
    y = np.array([labels[Path(r["dist"]).name] for r in cached])
    assert float(table["psnr"]["srcc"]) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    info = json.loads((out / "table.json").read_text())
    assert info["settings"]["mapping"] == "poly3" and info["metrics"][0]["ci"]["main"]["low"] is not None
    assert "## Table 1" in (out / "report.md").read_text()

    # resume: nothing is scored again; scores lost from the store are scored again, alone
    from iqarena.execution import LocalExecutor, ScoreStore

    jobs = []
    real = LocalExecutor.run
    monkeypatch.setattr(LocalExecutor, "run", lambda self, js: (jobs.extend(js := list(js)), real(self, js))[1])
    args = ("evaluate", "--dataset", "pipal", "--root", tmp_path / "pipal", "-m", "psnr", "-m", "ssim", "-o", out,
            "--bootstrap", "0", "--no-plots")
    res = cli(*args)
    assert res.exit_code == 0, res.output
    assert jobs == []
    store = ScoreStore()
    assert len(store) == 56
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["store"] == str(store.root)
    store.drop(metric="ssim")
    res = cli(*args)
    assert res.exit_code == 0, res.output
    assert [(len(j.items), [m.name for m in j.metrics]) for j in jobs] == [(28, ["ssim"])]
    assert [_table(out)[m]["srcc"] for m in ("psnr", "ssim")] == [table[m]["srcc"] for m in ("psnr", "ssim")]
    # the store is shared: another report folder on the same images scores nothing
    jobs.clear()
    res = cli("evaluate", "--dataset", "pipal", "--root", tmp_path / "pipal", "-m", "psnr", "-o", tmp_path / "rep2",
              "--bootstrap", "0", "--no-plots")
    assert res.exit_code == 0, res.output
    assert jobs == []
    assert _table(tmp_path / "rep2")["psnr"]["srcc"] == table["psnr"]["srcc"]


def test_fingerprint_covers_code_weights_and_options(monkeypatch, tmp_path):
    from iqarena.metrics import MetricSpec, fingerprint, register_variant
    from iqarena.metrics.fingerprint import source_files

    def names(module):
        return {f"{f.parent.name}/{f.name}" for f in source_files(module)}

    assert {"metrics/piqe.py", "ops/nss.py", "ops/filters.py", "ops/color.py"} <= names("iqarena.metrics.piqe")
    assert "ops/resize.py" in names("iqarena.metrics.niqe") and "ops/resize.py" not in names("iqarena.metrics.psnr")
    assert "backbones/alexnet.py" in names("iqarena.metrics.lpips")
    # options are part of it
    assert fingerprint(MetricSpec.of("ssim", downsample=True)) != fingerprint("ssim") == fingerprint(MetricSpec.of("ssim"))
    # so is the content of a parameter file named by an option: the same path, retrained, is another metric
    model = tmp_path / "niqe.mat"
    import shutil

    from iqarena.weights import path_for

    shutil.copy(path_for("niqe-modelparameters"), model)
    register_variant("niqe_mine", "niqe", model=str(model))
    first = fingerprint("niqe_mine")
    assert first != fingerprint("niqe")
    model.write_bytes(model.read_bytes() + b"\0")
    assert fingerprint("niqe_mine") != first
    # editing a shared operator changes the fingerprint of the metrics that use it, not of the others
    before = {m: fingerprint(m) for m in ("piqe", "psnr")}
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(self) + (b"#" if self.name == "nss.py" else b""))
    assert fingerprint("piqe") != before["piqe"] and fingerprint("psnr") == before["psnr"]


def test_evaluate_refuses_to_overwrite(tmp_path, cli):
    _tiny_pipal(tmp_path / "pipal", refs=("A0001",), per_ref=8)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    args = ["evaluate", "--dataset", "pipal", "--root", tmp_path / "pipal", "-m", "psnr", "--bootstrap", "0",
            "--no-plots", "-o", mine]
    res = cli(*args)
    assert res.exit_code != 0 and "not empty" in str(res.exception)
    res = cli(*args, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "table.csv").is_file()
    other = tmp_path / "labels.csv"
    other.write_text("dist,ref,score\n" + "".join(
        f"pipal/Train_Dis/A0001_00_{i:02d}.bmp,pipal/Train_Ref/A0001.bmp,{i}\n" for i in range(8)))
    res = cli("evaluate", "--dataset", "csv", "--labels", other, "-m", "psnr", "--bootstrap", "0", "--no-plots",
              "-o", mine)
    assert res.exit_code != 0 and "another run" in str(res.exception)


def test_predictions_against_labels(tmp_path, cli):
    labels = tmp_path / "labels.txt"
    lines = (DATA / "pipal21_val_labels_A0005-A0019.txt").read_text().splitlines()
    labels.write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(1)
    y = np.array([float(ln.split(",")[1]) for ln in lines])
    pred = y + rng.normal(0, 60, y.size)
    sub = tmp_path / "teamA" / "output.txt"
    sub.parent.mkdir()
    sub.write_text("".join(f"{ln.split(',')[0]},{p:.4f}\n" for ln, p in zip(lines, pred)))
    with zipfile.ZipFile(tmp_path / "teamB.zip", "w") as zf:
        zf.writestr("output.txt", "".join(f"{ln.split(',')[0]},{-p:.4f}\n" for ln, p in zip(lines, y)))
        zf.writestr("readme.txt", "runtime per image [s] : 0.1\n")
    out = tmp_path / "rep"
    res = cli("evaluate", "--labels", labels, "-p", sub, "-p", tmp_path / "teamB.zip", "-o", out, "--bootstrap", "100",
              "--no-plots")
    assert res.exit_code == 0, res.output
    table = _table(out)
    assert float(table["teamA"]["srcc"]) == pytest.approx(sps.spearmanr(np.round(pred, 4), y).statistic, abs=1e-12)
    assert float(table["teamB"]["srcc"]) == pytest.approx(-1.0)  # higher-is-better assumed: a negated copy
    assert table["teamA"]["rank"] == "1"
    short = tmp_path / "short.txt"
    short.write_text("\n".join(sub.read_text().splitlines()[:-3]) + "\n")
    res = cli("evaluate", "--labels", labels, "-p", short, "-o", tmp_path / "rep2", "--bootstrap", "0")
    assert res.exit_code != 0 and "no score for 3 of the 80" in str(res.exception)


def test_predictions_on_a_live_layout_match_by_relative_path(tmp_path, cli):
    """LIVE names its images img1.bmp in every distortion folder: bare names are ambiguous (an error, not one
    prediction reused for several images); relative paths match each image once."""
    folders = ("jp2k", "jpeg", "wn", "gblur", "fastfading")
    labels = tmp_path / "labels.csv"
    labels.write_text("dist,score\n" + "".join(f"{f}/img{i}.bmp,{10 * k + i}\n"
                                                for k, f in enumerate(folders) for i in range(1, 3)))
    bare = tmp_path / "bare.txt"
    bare.write_text("".join(f"img{i}.bmp,{i}\n" for i in range(1, 3)))
    res = cli("evaluate", "--labels", labels, "-p", bare, "-o", tmp_path / "rep", "--bootstrap", "0", "--no-plots")
    assert res.exit_code != 0 and "ambiguous" in str(res.exception) and "jp2k/img1.bmp" in str(res.exception)
    good = tmp_path / "good.txt"
    good.write_text("".join(f"{f}/img{i}.bmp,{10 * k + i + 0.5 * (i == 2)}\n"
                            for k, f in enumerate(folders) for i in range(1, 3)))
    res = cli("evaluate", "--labels", labels, "-p", good, "-o", tmp_path / "rep", "--bootstrap", "0", "--no-plots")
    assert res.exit_code == 0, res.output
    assert float(_table(tmp_path / "rep")["good"]["srcc"]) == pytest.approx(1.0)
