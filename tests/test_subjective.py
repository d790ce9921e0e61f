"""iqarena.subjective: judgement tables, Elo as PIPAL, Davidson-BT, extension, pair rules, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from iqarena import IQAError
from iqarena import subjective as sj
from iqarena.cli import app
from iqarena.subjective import simulate as S

# ---- helpers ----------------------------------------------------------------------------------


def simulated(n_refs=2, n_img=20, n=4000, nu=0.0, sd=150.0, seed=0):
    j0, truth = S.study(n_refs, n_img, sd=sd, seed=seed)
    rng = np.random.default_rng(seed + 100)
    a, b = sj.propose(j0, n, "random", seed=rng)
    return S.add(j0, truth, a, b, nu=nu, rng=rng), truth


def write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- Elo --------------------------------------------------------------------------------------

def test_elo_update_by_hand():
    e = 1 / (1 + 10 ** (-100 / 400))  # A 100 points above B
    assert sj.expected(1500, 1400) == pytest.approx(0.6400649998)
    a, b = sj.update(1500.0, 1400.0, 1.0, k=32)
    assert a == pytest.approx(1500 + 32 * (1 - e)) and b == pytest.approx(1400 - 32 * (1 - e))
    a, b = sj.update(1500.0, 1400.0, 0.5, k=32)
    assert a == pytest.approx(1495.5179200) and a + b == pytest.approx(2900.0)


def test_fit_elo_sequence_by_hand_in_collected_order():
    j = sj.from_arrays(["r"] * 3, ["x", "y", "x"], ["y", "z", "z"], ["A", "tie", "B"], time=[0, 1, 2])
    r = sj.fit_elo(j, k=20, initial=1400, orders=0)
    x = y = z = 1400.0
    x, y = sj.update(x, y, 1.0, 20)
    y, z = sj.update(y, z, 0.5, 20)
    x, z = sj.update(x, z, 0.0, 20)
    assert r.as_dict() == pytest.approx({"x": x, "y": y, "z": z})
    assert r.score.mean() == pytest.approx(1400.0)  # zero-sum: the mean stays at the initial rating
    # the time column, not the row order, sets the collected order
    j2 = sj.from_arrays(["r"] * 3, ["x", "x", "y"], ["z", "y", "z"], ["B", "A", "tie"], time=[2, 0, 1])
    assert sj.fit_elo(j2, k=20, initial=1400, orders=0).as_dict() == pytest.approx(r.as_dict())


def test_elo_vectorised_across_references_equals_scalar_loop():
    from iqarena.subjective.elo import _pass, _scalar_pass

    j, _ = simulated(n_refs=40, n_img=10, n=3000)
    r1 = np.full(j.n_images, 1450.0)
    r2 = r1.copy()
    _pass(r1, j.a, j.b, j.outcome, j.image_ref[j.a], 32.0, None)  # 40 references: numpy steps
    _scalar_pass(r2, j.a, j.b, j.outcome, 32.0, None)
    assert np.allclose(r1, r2, atol=1e-9)


def test_elo_orders_average_reduces_order_noise_and_is_seeded():
    j, truth = simulated(n_refs=1, n_img=20, n=1500)
    one = [sj.fit_elo(j, orders=1, seed=s).score for s in range(4)]
    ten = [sj.fit_elo(j, orders=10, seed=s).score for s in range(4)]
    assert np.std(ten, axis=0).mean() < 0.5 * np.std(one, axis=0).mean()
    assert np.array_equal(sj.fit_elo(j, seed=3).score, sj.fit_elo(j, seed=3).score)
    assert spearmanr(ten[0], truth)[0] > 0.9


# ---- Bradley-Terry ----------------------------------------------------------------------------

def test_bt_two_images_closed_form_with_and_without_ties():
    # saturated model: P(A) = w/n, P(B) = l/n, P(tie) = t/n  =>  R_A - R_B = 400 log10(w/l), nu = t/sqrt(wl)
    rows = ["A"] * 6 + ["B"] * 2 + ["tie"] * 4
    j = sj.from_arrays(["r"] * 12, ["a"] * 12, ["b"] * 12, rows)
    r = sj.fit_bt(j, prior_sd=1e7, tol=1e-9)
    d = r.as_dict()
    assert d["a"] - d["b"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert r.params["nu"] == pytest.approx(4 / math.sqrt(12), rel=1e-5)
    assert d["a"] + d["b"] == pytest.approx(2 * 1450.0)
    # no ties: the Elo curve, 3 wins to 1 loss is 400 log10(3) points
    j = sj.from_arrays(["r"] * 4, ["a"] * 4, ["b"] * 4, ["A", "A", "B", "A"])
    d = sj.fit_bt(j, prior_sd=1e7, tol=1e-9).as_dict()
    assert d["a"] - d["b"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    # ties="half": a tie is half a win each: 6+2 wins to 2+2 losses
    j = sj.from_arrays(["r"] * 12, ["a"] * 12, ["b"] * 12, rows)
    d = sj.fit_bt(j, prior_sd=1e7, ties="half", tol=1e-9).as_dict()
    assert d["a"] - d["b"] == pytest.approx(400 * math.log10(8 / 4), abs=1e-3)


def test_bt_recovers_known_strengths_and_tie_parameter():
    j, truth = simulated(n_refs=2, n_img=15, n=12000, nu=0.4, sd=200)
    r = sj.fit_bt(j)
    assert r.params["nu"] == pytest.approx(0.4, abs=0.05)
    assert np.abs(r.score - truth).max() < 45  # ~800 judgements per image: se about 13 points
    assert spearmanr(r.score, truth)[0] > 0.99
    for ref in range(2):  # gauge: mean per reference = initial rating
        assert r.score[ref * 15:(ref + 1) * 15].mean() == pytest.approx(1450.0, abs=1e-6)


def test_bt_intervals_cover_truth_at_about_nominal_rate():
    hits = total = 0
    for seed in range(12):
        j, truth = simulated(n_refs=1, n_img=25, n=1500, nu=0.2, sd=150, seed=seed)
        lo, hi = sj.fit_bt(j, prior_sd=1e4).interval(0.9)
        hits += int(np.sum((truth >= lo) & (truth <= hi)))
        total += len(truth)
    assert 0.86 <= hits / total <= 0.94, hits / total  # nominal 0.90; 300 intervals


def test_bootstrap_errors_agree_with_information_matrix():
    j, _ = simulated(n_refs=1, n_img=12, n=1200, nu=0.2)
    info = sj.fit_bt(j)
    boot = sj.bootstrap(j, lambda jj: sj.fit_bt(jj, ci=False), n=40, seed=1)
    assert np.median(boot.se / info.se) == pytest.approx(1.0, abs=0.2)
    elo = sj.bootstrap(j, lambda jj: sj.fit_elo(jj, orders=2), n=10)
    assert np.all(np.isfinite(elo.se)) and np.all(elo.se > 0)


def test_bt_unjudged_image_keeps_initial_rating_with_wide_interval():
    j = sj.from_columns({"reference": ["r"] * 3, "image_a": ["a", "b", "a"], "image_b": ["b", "c", "c"],
                         "winner": ["A", "A", "B"]}, images={"a": "r", "b": "r", "c": "r", "d": "r"})
    r = sj.fit_bt(j)
    i = list(r.images).index("d")
    assert r.n[i] == 0 and r.se[i] > 300


# ---- extension --------------------------------------------------------------------------------

def _extension_case():
    j0, truth = S.study(1, 36, sd=150, seed=7)
    rng = np.random.default_rng(7)
    old, new = np.arange(30), np.arange(30, 36)
    a = rng.choice(old, 3000)
    b = (a + 1 + rng.integers(0, 29, 3000)) % 30
    base_j = S.add(j0, truth, a, b, nu=0.2, rng=rng).subset(np.arange(3000))
    names = j0.images
    keep = {n: "R0000" for n in names[old]}
    base = sj.fit_bt(sj.from_columns(base_j.table(), images=keep))
    na = np.repeat(new, 200)
    nb = rng.choice(old, len(na))
    s = S.outcomes(truth, na, nb, nu=0.2, rng=rng)
    newj = sj.from_arrays(["R0000"] * len(na), names[na], names[nb], s)
    return base, newj, truth, names


def test_extend_fixed_puts_new_images_on_the_old_scale():
    base, newj, truth, names = _extension_case()
    # truth on the base's gauge: old images' true mean = 1450
    shift = 1450.0 - truth[:30].mean()
    ext = sj.extend(base, newj)
    got = ext.as_dict()
    assert all(got[n] == base.as_dict()[n] for n in names[:30])  # old scores unchanged
    new_scores = np.array([got[n] for n in names[30:]])
    idx = {n: i for i, n in enumerate(ext.images)}
    se = np.array([ext.se[idx[n]] for n in names[30:]])
    err = new_scores - (truth[30:] + shift)
    assert np.all(np.abs(err) < 3.5 * np.sqrt(se ** 2 + 20 ** 2)), (err, se)
    assert np.corrcoef(new_scores, truth[30:])[0, 1] > 0.9


def test_extend_anchored_moves_old_scores_only_within_their_intervals():
    base, newj, truth, names = _extension_case()
    ext = sj.extend(base, newj, mode="anchored")
    b, e = base.as_dict(), ext.as_dict()
    bse = dict(zip(base.images, base.se))
    moved = np.array([abs(e[n] - b[n]) / bse[n] for n in names[:30]])
    assert 0 < moved.max() < 1.96 and moved.mean() < 0.6  # moved, but inside the 95 % intervals
    fixed = sj.extend(base, newj).as_dict()
    assert np.allclose([e[n] for n in names[30:]], [fixed[n] for n in names[30:]], atol=25)


def test_extend_elo_fixed_and_errors():
    base, newj, truth, names = _extension_case()
    ext = sj.extend(base, newj, method="elo")
    assert all(ext.as_dict()[n] == base.as_dict()[n] for n in names[:30])
    assert spearmanr([ext.as_dict()[n] for n in names[30:]], truth[30:])[0] > 0.7
    labels_only = sj.Ratings(base.images, base.reference, base.score, np.full(len(base), np.nan), base.n, "file")
    with pytest.raises(IQAError, match="standard errors"):
        sj.extend(labels_only, newj, mode="anchored")
    with pytest.raises(IQAError, match="no new image"):
        sj.extend(base, sj.from_arrays(["R0000"], [names[0]], [names[1]], ["A"]))


# ---- pair selection ---------------------------------------------------------------------------

def test_pair_rules_basic_properties():
    j, truth = simulated(n_refs=3, n_img=12, n=300)
    for rule in sj.RULES:
        a, b = sj.propose(j, 50, rule, seed=1)
        assert len(a) == 50 and np.all(a != b)
        assert np.all(j.image_ref[a] == j.image_ref[b])  # same reference
        a2, b2 = sj.propose(j, 50, rule, seed=1)
        assert np.array_equal(a, a2) and np.array_equal(b, b2)  # seeded
    r = sj.fit_bt(j).score
    gap = {rule: np.mean(np.abs(r[a] - r[b])) for rule in sj.RULES
           for a, b in [sj.propose(j, 200, rule, seed=2)]}
    assert gap["swiss"] < 0.7 * gap["random"]  # Swiss pairs similar ratings (up to posterior noise)
    with pytest.raises(IQAError, match="unknown pair rule"):
        sj.propose(j, 5, "best")


def test_active_rule_goes_for_the_uncertain_image():
    j = sj.from_columns({"reference": ["r"] * 40, "image_a": ["a", "b", "c", "a"] * 10,
                         "image_b": ["b", "c", "a", "c"] * 10, "winner": ["A", "B", "tie", "B"] * 10},
                        images={"a": "r", "b": "r", "c": "r", "new": "r"})
    pairs = sj.next_pairs(j, 3, "active")
    assert all("new" in p[1:] for p in pairs)


def test_cold_start_pairs_from_image_list_only():
    images = {f"i{k}": f"r{k % 2}" for k in range(8)}
    j = sj.from_columns({"reference": [], "image_a": [], "image_b": [], "winner": []}, images=images)
    for rule in sj.RULES:
        pairs = sj.next_pairs(j, 6, rule, seed=0)
        assert len(pairs) == 6 and all(images[a] == ref == images[b] for ref, a, b in pairs)


# ---- tables and errors ------------------------------------------------------------------------

def test_csv_and_parquet_give_the_same_table(tmp_path):
    j, _ = simulated(n_refs=2, n_img=6, n=80, nu=0.3)
    sj.write_judgements(j, tmp_path / "j.csv")
    sj.write_judgements(j, tmp_path / "j.parquet")
    a, b = sj.read_judgements(tmp_path / "j.csv"), sj.read_judgements(tmp_path / "j.parquet")
    for x in (a, b):
        assert list(x.images) == list(j.images)
        assert np.array_equal(x.a, j.a) and np.array_equal(x.b, j.b) and np.array_equal(x.outcome, j.outcome)
        assert np.array_equal(x.time, j.time)
    with pytest.raises(IQAError, match="exists"):
        sj.write_judgements(j, tmp_path / "j.csv")


def test_parquet_with_timestamps_and_missing_column(tmp_path):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = dt.datetime(2020, 6, 1, 12, 0, 0)
    pq.write_table(pa.table({"reference": ["r", "r"], "image_a": ["x", "y"], "image_b": ["y", "x"],
                             "winner": ["a", "TIE"], "rater": ["u1", "u2"],
                             "time": [t0 + dt.timedelta(seconds=5), t0]}), tmp_path / "t.parquet")
    j = sj.read_judgements(tmp_path / "t.parquet")
    assert list(j.order()) == [1, 0] and list(j.outcome) == [1.0, 0.5] and list(j.rater) == ["u1", "u2"]
    pq.write_table(pa.table({"reference": ["r"], "image_a": ["x"], "winner": ["A"]}), tmp_path / "bad.parquet")
    with pytest.raises(IQAError, match="missing column.*image_b"):
        sj.read_judgements(tmp_path / "bad.parquet")


@pytest.mark.parametrize("lines, message", [
    (["reference,image_a,image_b,winner", "r,x,y,A", "r,x,x,B"], r"line 3: .*self-pair"),
    (["reference,image_a,image_b,winner", "r,x,y,C"], r"line 2: winner 'C' is not A, B or tie"),
    (["reference,image_a,image_b,winner", "r,x,y,A", "r,x,y"], r"line 3: 3 fields where the header has 4"),
    (["reference,image_a,image_b,winner", "r,x,y,A", "s,x,z,B"], r"line 3: image 'x' has reference 's'"),
    (["reference,image_a,image_b,winner", ",x,y,A"], r"line 2: empty reference"),
    (["ref,a,b,winner", "r,x,y,A"], r"line 1: .*lacks reference, image_a, image_b"),
    (["reference,image_a,image_b,winner,time", "r,x,y,A,yesterday"], r"line 2: time 'yesterday'"),
])
def test_malformed_rows_name_the_line_and_the_fix(tmp_path, lines, message):
    with pytest.raises(IQAError, match=message):
        sj.read_judgements(write_csv(tmp_path / "j.csv", lines))


def test_unknown_image_and_missing_files(tmp_path):
    p = write_csv(tmp_path / "j.csv", ["reference,image_a,image_b,winner", "r,x,y,A", "r,x,w,B"])
    with pytest.raises(IQAError, match=r"line 3: image 'w' is not in the image list"):
        sj.read_judgements(p, images={"x": "r", "y": "r"})
    with pytest.raises(IQAError, match="not found"):
        sj.read_judgements(tmp_path / "nope.csv")
    winner_by_name = sj.read_judgements(write_csv(tmp_path / "k.csv", ["reference,image_a,image_b,winner", "r,x,y,y"]))
    assert list(winner_by_name.outcome) == [0.0]


def test_read_ratings_pipal_format_and_table(tmp_path):
    p = write_csv(tmp_path / "labels.txt", ["A0001_00_00.bmp, 1520.0648", "A0001_00_01.bmp, 1437.0798"])
    r = sj.read_ratings(p)
    assert r.as_dict() == {"A0001_00_00.bmp": 1520.0648, "A0001_00_01.bmp": 1437.0798}
    bad = write_csv(tmp_path / "bad.txt", ["a,1", "b,x"])
    with pytest.raises(IQAError, match="line 2"):
        sj.read_ratings(bad)


# ---- CLI --------------------------------------------------------------------------------------

def test_cli_fit_extend_next_pairs_round_trip(tmp_path):
    runner = CliRunner()
    j, truth = simulated(n_refs=2, n_img=8, n=400, nu=0.2)
    sj.write_judgements(j, tmp_path / "j.parquet")
    for method in ("elo", "bt"):
        out = tmp_path / f"{method}.txt"
        res = runner.invoke(app, ["ratings", "fit", str(tmp_path / "j.parquet"), "--method", method,
                                  "--output", str(out), "--table", str(tmp_path / f"{method}.csv")])
        assert res.exit_code == 0, res.output
        api = (sj.fit_elo(j) if method == "elo" else sj.fit_bt(j)).as_dict()
        assert sj.read_ratings(out).as_dict() == pytest.approx(api, abs=1e-4)
    res = runner.invoke(app, ["ratings", "fit", str(tmp_path / "j.parquet"), "--output", str(tmp_path / "bt.txt")])
    assert res.exit_code != 0 and "exists" in str(res.exception)  # never overwrite silently
    # next pairs: a CSV that becomes a judgement table once a winner column is added
    res = runner.invoke(app, ["ratings", "next-pairs", str(tmp_path / "j.parquet"), "--budget", "5", "--rule", "swiss",
                              "--output", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "reference,image_a,image_b" and len(rows) == 6
    # extension from the table of the BT fit
    names = j.images
    ext = write_csv(tmp_path / "new.csv", ["reference,image_a,image_b,winner",
                                           *[f"R0000,R0000_new,{n},{w}" for n, w in zip(names[:8], "ABABAABB")]])
    res = runner.invoke(app, ["ratings", "extend", str(tmp_path / "bt.csv"), str(ext), "--mode", "anchored",
                              "--output", str(tmp_path / "ext.txt")])
    assert res.exit_code == 0, res.output
    got = sj.read_ratings(tmp_path / "ext.txt").as_dict()
    assert "R0000_new" in got and len(got) == 17
