"""Training losses (iqarena.models.losses): hand-computed values, gradients, invariances, bad input, specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from iqarena.errors import InputError
from iqarena.models import losses as L
from iqarena.models.losses import LOSSES, build_loss, parse_spec

ALL = ["bradley_terry", "elo_ce", "elo_mse", "fidelity", "l1", "margin", "mse", "norm_in_norm", "plcc", "smooth_l1",
       "sodeep", "srcc"]
# the generic checks below build each loss with its defaults; sodeep's default trains its sorter network once
# (minutes), so tests/test_model_asna.py checks it with a small sorter instead
GENERIC = [n for n in ALL if n != "sodeep"]
PAIRWISE = ["bradley_terry", "elo_ce", "fidelity", "margin"]


def t(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype)


def loss(name, pred, target, groups=None, **options):
    return float(build_loss(name, **options)(pred, target, groups))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_registry_lists_every_loss_and_aliases():
    assert LOSSES.names() == ALL
    assert LOSSES.resolve("Norm-In-Norm") == "norm_in_norm"
    assert LOSSES.resolve("MAE") == "l1" and LOSSES.resolve("bt") == "bradley_terry"
    for name in ALL:
        assert (LOSSES.get(name).__doc__ or "").strip(), name


# ---------------------------------------------------------------- hand computations

def test_l1_mse_by_hand():
    pred, target = t(1, 2, 3), t(1.5, 2, 2)
    # |1 - 1.5| + |2 - 2| + |3 - 2| = 0.5 + 0 + 1 = 1.5; / 3 = 0.5
    assert loss("l1", pred, target) == pytest.approx(0.5, abs=1e-12)
    # 0.25 + 0 + 1 = 1.25; / 3 = 0.416666...
    assert loss("mse", pred, target) == pytest.approx(1.25 / 3, abs=1e-12)


def test_plcc_by_hand():
    # centred pred (-1, 0, 1), centred target (-1, 1, 0): dot = 1, norms sqrt(2) * sqrt(2) = 2, PLCC = 0.5;
    # loss = (1 - 0.5) / 2 = 0.25
    assert loss("plcc", t(1, 2, 3), t(1, 3, 2)) == pytest.approx(0.25, abs=1e-12)
    assert loss("plcc", t(1, 2, 3), t(10, 20, 30)) == pytest.approx(0.0, abs=1e-12)
    assert loss("plcc", t(1, 2, 3), t(3, 2, 1)) == pytest.approx(1.0, abs=1e-12)
    assert loss("plcc", t(1, 2, 3), t(2, 7, 1)) == pytest.approx(
        (1 - stats.pearsonr([1, 2, 3], [2, 7, 1]).statistic) / 2, abs=1e-12)


def test_norm_in_norm_by_hand():
    pred, target = t(1, 2, 3), t(1, 3, 2)
    # pred' = (-1, 0, 1)/sqrt2, target' = (-1, 1, 0)/sqrt2, e = (0, -1, 1)/sqrt2.
    # p = q = 2: ||e||_2^2 = (0 + 1 + 1)/2 = 1; c = (2^1 * 3^0)^2 = 4; loss = 1/4 = (1 - rho)/2 with rho = 0.5
    assert loss("norm_in_norm", pred, target) == pytest.approx(0.25, abs=1e-8)
    # p = 1, q = 2: ||e||_1 = 2/sqrt2 = sqrt2; c = 2 * 3^(1 - 1/2) = 2 sqrt3; loss = sqrt2 / (2 sqrt3) = 0.408248...
    assert loss("norm_in_norm", pred, target, p=1, q=2) == pytest.approx(math.sqrt(2) / (2 * math.sqrt(3)), abs=1e-8)
    # alpha = (0, 1), p = q = 2: rho pred' - target' = (0.5*(-1, 0, 1) - (-1, 1, 0))/sqrt2 = (0.5, -1, 0.5)/sqrt2,
    # squared norm (0.25 + 1 + 0.25)/2 = 0.75; / 4 = 0.1875 = (1 - rho^2)/4
    assert loss("norm_in_norm", pred, target, alpha=(0, 1)) == pytest.approx(0.1875, abs=1e-8)
    # alpha = (1, 1): (0.25 + 0.1875) / 2 = 0.21875
    assert loss("norm_in_norm", pred, target, alpha=(1, 1)) == pytest.approx(0.21875, abs=1e-8)
    # q = 1: pred' = (-1, 0, 1)/2, target' = (-1, 1, 0)/2, e = (0, -1, 1)/2; p = 2: ||e||^2 = 0.5;
    # c = (2^max(1, 1) * 3^max(0, 1/2 - 1))^2 = 4; loss = 0.125
    assert loss("norm_in_norm", pred, target, p=2, q=1) == pytest.approx(0.125, abs=1e-8)


def test_norm_in_norm_equals_plcc_for_p_q_2_and_stays_in_unit_interval():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        pred = torch.randn(16, generator=g, dtype=torch.float64)
        target = torch.randn(16, generator=g, dtype=torch.float64)
        assert loss("norm_in_norm", pred, target) == pytest.approx(loss("plcc", pred, target), abs=1e-7)
        for p, q in [(1, 1), (1, 2), (2, 1), (3, 2), (1.5, 3)]:
            for sign in (1, -1):  # the worst case is anti-correlation
                value = loss("norm_in_norm", sign * pred, target, p=p, q=q, alpha=(1, 1))
                assert 0 <= value <= 1, (p, q, value)
    # perfectly anti-correlated, p = q = 2: ||pred' - target'||^2 = 4, the bound c
    assert loss("norm_in_norm", t(1, 2, 3), t(3, 2, 1)) == pytest.approx(1.0, abs=1e-7)


def test_soft_rank_by_hand_and_average_rank_matches_scipy():
    x = t(0, 1, 3)
    # rank_i = 0.5 + sum_j sigmoid(x_i - x_j) (temperature 1), the j = i term being sigmoid(0) = 0.5:
    # r_0 = 0.5 + 0.5 + sigmoid(-1) + sigmoid(-3) = 1 + 0.268941 + 0.047426 = 1.316367
    # r_1 = 0.5 + sigmoid(1) + 0.5 + sigmoid(-2) = 1 + 0.731059 + 0.119203 = 1.850262
    # r_2 = 0.5 + sigmoid(3) + sigmoid(2) + 0.5 = 1 + 0.952574 + 0.880797 = 2.833371
    expected = [1 + sigmoid(-1) + sigmoid(-3), 1 + sigmoid(1) + sigmoid(-2), 1 + sigmoid(3) + sigmoid(2)]
    assert L.soft_rank(x, 1.0).tolist() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx([1.316367, 1.850262, 2.833371], abs=1e-6)
    assert float(L.soft_rank(x, 1.0).sum()) == pytest.approx(6.0)  # ranks always sum to N(N+1)/2
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=30), rng.integers(0, 5, size=30).astype(float)):
        assert L.average_rank(torch.from_numpy(values)).numpy() == pytest.approx(stats.rankdata(values))
        assert L.soft_rank(torch.from_numpy(values), 1e-6).numpy() == pytest.approx(stats.rankdata(values), abs=1e-6)


def test_srcc_by_hand():
    # ranks of pred (1, 2, 3), of target (1, 3, 2): PLCC of those = 0.5 (as in test_plcc_by_hand); loss 1 - 0.5
    assert loss("srcc", t(1, 2, 3), t(1, 3, 2), temperature=1e-4) == pytest.approx(0.5, abs=1e-9)
    # tied target (1, 1, 2) -> ranks (1.5, 1.5, 3), centred (-0.5, -0.5, 1); pred ranks centred (-1, 0, 1):
    # dot = 0.5 + 0 + 1 = 1.5; norms sqrt(1.5) * sqrt(2); PLCC = 1.5 / sqrt(3) = 0.866025; loss = 0.133975
    assert loss("srcc", t(1, 2, 3), t(1, 1, 2), temperature=1e-4) == pytest.approx(1 - 1.5 / math.sqrt(3), abs=1e-9)


def test_pairwise_by_hand():
    pred, target = t(0, 1), t(0, 2)
    # one pair: P = sigmoid((0 - 1)/1) = 0.268941, p = sigmoid((0 - 2)/1) = 0.119203
    # fidelity = 1 - sqrt(0.119203 * 0.268941) - sqrt(0.880797 * 0.731059)
    #          = 1 - sqrt(0.0320586) - sqrt(0.6439143) = 1 - 0.1790492 - 0.8024427 = 0.0185082
    assert loss("fidelity", pred, target) == pytest.approx(0.018508152336771, abs=1e-12)
    # bradley_terry = -(p ln P + (1 - p) ln(1 - P)) = -(0.119203 * -1.313262 + 0.880797 * -0.313262)
    #               = 0.156543 + 0.275921 = 0.432465
    assert loss("bradley_terry", pred, target) == pytest.approx(0.43246460954034, abs=1e-12)
    # scale 2, target_scale 4: P = sigmoid(-0.5) = 0.377541, p = sigmoid(-0.5): equal -> fidelity 0
    assert loss("fidelity", pred, target, scale=2, target_scale=4) == pytest.approx(0.0, abs=1e-12)
    # binary labels: p = 0 (t_0 < t_1), fidelity = 1 - sqrt(1 - P) = 1 - sqrt(0.731059) = 0.144978
    assert loss("fidelity", pred, target, labels="binary") == pytest.approx(1 - math.sqrt(1 - sigmoid(-1)), abs=1e-12)
    # bradley_terry with binary labels = -ln(1 - P) = -ln(0.731059) = 0.313262
    assert loss("bradley_terry", pred, target, labels="binary") == pytest.approx(-math.log(1 - sigmoid(-1)), abs=1e-12)


def test_elo_cross_entropy_by_hand():
    pred, target = t(1500, 1400), t(1600, 1400)
    # P = 1 / (1 + 10^(-100/400)) = 1 / 1.562341 = 0.640065; p = 1 / (1 + 10^(-200/400)) = 1 / 1.316228 = 0.759747
    # loss = -(0.759747 ln 0.640065 + 0.240253 ln 0.359935) = -(0.759747 * -0.446186 + 0.240253 * -1.021832)
    #      = 0.338987 + 0.245499 = 0.584486
    assert loss("elo_ce", pred, target) == pytest.approx(0.584486331905106, abs=1e-9)
    # the same as bradley_terry with scale 400 / ln 10 and Elo labels; fidelity with Elo labels uses that p
    assert loss("bradley_terry", pred, target, scale=400 / math.log(10), labels="elo") == pytest.approx(
        0.584486331905106, abs=1e-9)
    P, p = 1 / (1 + 10 ** -0.25), 1 / (1 + 10 ** -0.5)
    assert loss("fidelity", pred, target, scale=400 / math.log(10), labels="elo") == pytest.approx(
        1 - math.sqrt(p * P) - math.sqrt((1 - p) * (1 - P)), abs=1e-12)


def test_margin_by_hand_and_groups():
    pred, target = t(1, 2, 0), t(3, 2, 1)
    # pairs (0,1): sign +1, max(0, -(1 - 2) + 0.1) = 1.1; (0,2): max(0, -(1 - 0) + 0.1) = 0; (1,2): max(0, -2 + 0.1) = 0
    # mean over 3 pairs: 1.1 / 3 = 0.366667
    assert loss("margin", pred, target) == pytest.approx(1.1 / 3, abs=1e-12)
    # groups (a, a, b): only the pair (0, 1) -> 1.1; groups as labels or as a tensor
    assert loss("margin", pred, target, groups=["a", "a", "b"]) == pytest.approx(1.1, abs=1e-12)
    assert loss("margin", pred, target, groups=torch.tensor([7, 7, 3])) == pytest.approx(1.1, abs=1e-12)
    # groups (a, b, b): only the pair (1, 2) -> 0
    assert loss("margin", pred, target, groups=["a", "b", "b"]) == pytest.approx(0.0, abs=1e-12)
    # margin 0.5: (0,1) 1.5, (0,2) max(0, -1 + 0.5) = 0, (1,2) 0 -> 0.5
    assert loss("margin", pred, target, margin=0.5) == pytest.approx(0.5, abs=1e-12)
    # tied targets are not pairs: target (3, 3, 1) leaves (0,2) and (1,2), both 0
    assert loss("margin", pred, t(3, 3, 1)) == pytest.approx(0.0, abs=1e-12)


def test_pairwise_groups_select_pairs():
    pred, target = t(0, 1, 5, 2), t(0, 2, 1, 3)
    groups = torch.tensor([0, 0, 1, 1])
    for name in ["fidelity", "bradley_terry"]:
        both = (loss(name, t(0, 1), t(0, 2)) + loss(name, t(5, 2), t(1, 3))) / 2
        assert loss(name, pred, target, groups) == pytest.approx(both, abs=1e-12)
    # no pair shares a group: 0, still differentiable (zero gradient)
    x = t(0, 1, 2).requires_grad_()
    value = build_loss("fidelity")(x, t(0, 1, 2), torch.tensor([0, 1, 2]))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros(3, dtype=torch.float64))


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", GENERIC)
def test_gradcheck_float64(name):
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(7, generator=g, dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    if name == "elo_ce":
        pred, target = (pred.detach() * 200 + 1500).requires_grad_(), target * 200 + 1500
    fn = build_loss(name, **({"temperature": 0.5} if name == "srcc" else {}))
    assert torch.autograd.gradcheck(lambda p: fn(p, target, groups), (pred,), eps=1e-6, atol=1e-6)
    if name in ("norm_in_norm", "plcc", "srcc"):  # the other options too
        extra = {"norm_in_norm": {"p": 1.5, "q": 3, "alpha": (1, 1)}, "plcc": {}, "srcc": {"temperature": 0.05}}[name]
        fn = build_loss(name, **extra)
        assert torch.autograd.gradcheck(lambda p: fn(p, target), (pred,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", GENERIC)
def test_gradient_finite_float32_and_saturated(name):
    g = torch.Generator().manual_seed(4)
    for spread in (1.0, 1e3):  # 1e3: sigmoids of the pairwise losses saturate in float32
        pred = (torch.randn(16, generator=g) * spread).requires_grad_()
        target = torch.randn(16, generator=g) * spread
        value = build_loss(name)(pred, target)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(pred.grad).all(), (name, spread)


def test_srcc_gradient_finite_and_nonzero():
    g = torch.Generator().manual_seed(5)
    pred = torch.randn(32, generator=g, requires_grad=True)
    target = torch.randn(32, generator=g)
    build_loss("srcc")(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().max() > 1e-3
    # descending the loss raises the true SRCC
    x = torch.randn(32, generator=g, requires_grad=True)
    before = stats.spearmanr(x.detach(), target).statistic
    opt = torch.optim.Adam([x], lr=0.05)
    fn = build_loss("srcc")
    for _ in range(100):
        opt.zero_grad()
        fn(x, target).backward()
        opt.step()
    assert stats.spearmanr(x.detach(), target).statistic > max(before + 0.3, 0.9)


# ---------------------------------------------------------------- invariances and limits

@pytest.mark.parametrize("name", ["plcc", "norm_in_norm", "srcc"])
def test_invariant_to_positive_affine_pred(name):
    g = torch.Generator().manual_seed(6)
    pred, target = torch.randn(20, generator=g, dtype=torch.float64), torch.randn(20, generator=g, dtype=torch.float64)
    base = loss(name, pred, target)
    for a, b in [(3.7, -2.0), (0.01, 5.0), (250.0, 1400.0)]:
        assert loss(name, a * pred + b, target) == pytest.approx(base, abs=1e-9)
    assert loss("norm_in_norm", pred, target, p=1, q=1) == pytest.approx(
        loss("norm_in_norm", 4 * pred + 1, target, p=1, q=1), abs=1e-9)
    # also in the target (labels on another scale)
    assert loss(name, pred, 20 * target + 1) == pytest.approx(base, abs=1e-9)


def test_soft_srcc_approaches_spearman_with_and_without_ties():
    rng = np.random.default_rng(7)
    cases = [(rng.normal(size=40), rng.normal(size=40)),                       # no ties
             (rng.integers(0, 6, 40).astype(float), rng.normal(size=40)),      # ties in pred
             (rng.normal(size=40), rng.integers(1, 6, 40).astype(float)),      # ties in target (MOS-like)
             (rng.integers(0, 4, 40).astype(float), rng.integers(0, 4, 40).astype(float))]
    for x, y in cases:
        rho = stats.spearmanr(x, y).statistic
        errors = [abs((1 - loss("srcc", torch.from_numpy(x), torch.from_numpy(y), temperature=tau)) - rho)
                  for tau in (1.0, 1e-2, 1e-5)]
        assert errors[-1] < 1e-3, errors
        assert errors[-1] <= errors[0] + 1e-12


def test_soft_srcc_invariant_to_monotone_transforms_as_temperature_vanishes():
    g = torch.Generator().manual_seed(8)
    pred, target = torch.randn(30, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    base = loss("srcc", pred, target, temperature=1e-6)
    for transformed in (torch.exp(pred), pred ** 3, torch.sigmoid(2 * pred), torch.atan(pred) + 7):
        assert loss("srcc", transformed, target, temperature=1e-6) == pytest.approx(base, abs=1e-3)
        assert loss("srcc", pred, transformed, temperature=1e-6) == pytest.approx(0.0, abs=1e-3)


def test_fidelity_is_zero_when_model_matches_labels_and_symmetric_in_pair_order():
    g = torch.Generator().manual_seed(9)
    target = torch.randn(10, generator=g, dtype=torch.float64)
    assert loss("fidelity", target, target) == pytest.approx(0.0, abs=1e-12)
    assert loss("fidelity", 2 * target, target, scale=2) == pytest.approx(0.0, abs=1e-12)
    pred = torch.randn(10, generator=g, dtype=torch.float64)
    perm = torch.randperm(10, generator=g)
    for name in PAIRWISE:
        assert loss(name, pred[perm], target[perm]) == pytest.approx(loss(name, pred, target), abs=1e-12)


def test_accepts_n_by_1_predictions_and_integer_targets():
    pred = torch.tensor([[1.0], [2.0], [3.0]])
    assert loss("plcc", pred, torch.tensor([1, 3, 2])) == pytest.approx(0.25, abs=1e-6)
    assert loss("l1", pred, torch.tensor([1, 2, 3])) == 0.0


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", GENERIC)
def test_bad_input_raises_input_error(name):
    fn = build_loss(name)
    with pytest.raises(InputError, match="differ in length"):
        fn(torch.randn(4), torch.randn(5))
    with pytest.raises(InputError, match="shape"):
        fn(torch.randn(4, 2), torch.randn(4, 2))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InputError, match="non-finite"):
            fn(t(1, bad, 3), t(1, 2, 3))
        with pytest.raises(InputError, match="non-finite"):
            fn(t(1, 2, 3), t(1, 2, bad))
    with pytest.raises(InputError, match="floating-point"):
        fn(torch.tensor([1, 2, 3]), t(1, 2, 3))
    with pytest.raises(InputError, match="groups"):
        fn(t(1, 2, 3), t(1, 2, 3), torch.tensor([0, 1]))
    with pytest.raises(InputError):
        fn(torch.empty(0), torch.empty(0))
    # standalone modules check the same way
    with pytest.raises(InputError, match="non-finite"):
        LOSSES.get(name)()(t(1, float("nan"), 3), t(1, 2, 3))


@pytest.mark.parametrize("name", PAIRWISE + ["plcc", "norm_in_norm", "srcc"])
def test_needs_two_images(name):
    with pytest.raises(InputError, match="at least 2"):
        build_loss(name)(t(1.0), t(2.0))
    assert math.isfinite(loss(name, t(1, 2), t(2, 1)))


def test_bad_options_raise_input_error():
    for spec, options in [("srcc", {"temperature": 0}), ("srcc", {"temperature": -1}), ("fidelity", {"scale": 0}),
                          ("fidelity", {"labels": "probit"}), ("norm_in_norm", {"p": 0.5}),
                          ("norm_in_norm", {"alpha": (0, 0)}), ("norm_in_norm", {"alpha": (1, 2, 3)}),
                          ("margin", {"margin": -1}), ("plcc", {"eps": float("nan")})]:
        with pytest.raises(InputError):
            build_loss(spec, **options)


def test_check_false_skips_only_the_finite_check():
    value = build_loss("plcc+l1", check=False)(t(1, float("nan"), 3), t(1, 2, 3))
    assert math.isnan(float(value))
    with pytest.raises(InputError, match="differ in length"):
        build_loss("plcc", check=False)(t(1, 2), t(1, 2, 3))


# ---------------------------------------------------------------- specs

def test_parse_spec():
    assert parse_spec("plcc+l1") == [(1.0, "plcc"), (1.0, "l1")]
    assert parse_spec("0.5*plcc+l1") == [(0.5, "plcc"), (1.0, "l1")]
    assert parse_spec(" 2 * srcc + .25*Norm-In-Norm + 1e-2*MAE ") == [
        (2.0, "srcc"), (0.25, "norm_in_norm"), (0.01, "l1")]
    assert parse_spec("plcc") == [(1.0, "plcc")]


@pytest.mark.parametrize("spec", ["", "   ", "plcc+", "plcc++l1", "+plcc", "plcc l1", "0.5plcc", "plcc*0.5",
                                  "-1*plcc", "0*plcc", "1e999*plcc", "plcc+PLCC", "0.5**plcc"])
def test_malformed_specs(spec):
    with pytest.raises(InputError):
        parse_spec(spec)


def test_unknown_name_lists_known_names():
    with pytest.raises(InputError, match="unknown loss 'plc'") as err:
        build_loss("plcc+0.3*plc")
    for name in ALL:
        assert name in str(err.value)


def test_build_loss_weights_and_components():
    g = torch.Generator().manual_seed(10)
    pred, target = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    groups = torch.arange(12) // 4
    fn = build_loss("0.5*plcc+l1+2*fidelity")
    parts = fn.components(pred, target, groups)
    expected = 0.5 * loss("plcc", pred, target) + loss("l1", pred, target) + 2 * loss("fidelity", pred, target, groups)
    assert float(parts["total"]) == pytest.approx(expected, abs=1e-12)
    assert float(fn(pred, target, groups)) == pytest.approx(expected, abs=1e-12)
    assert set(parts) == {"plcc", "l1", "fidelity", "total"}
    assert fn.spec == "0.5*plcc+l1+2*fidelity"
    assert isinstance(fn, torch.nn.Module)


def test_build_loss_options():
    pred, target = t(0, 1, 5, 2), t(0, 2, 1, 3)
    # a shared option goes to every term that has it
    fn = build_loss("fidelity+bradley_terry", scale=3.0)
    assert [m.scale for m in fn.terms] == [3.0, 3.0]
    # per-term options by name (aliases too)
    fn = build_loss("fidelity+bt", bt={"scale": 2.0})
    assert [m.scale for m in fn.terms] == [1.0, 2.0]
    fn = build_loss("srcc+margin", temperature=0.2, margin={"margin": 0.5})
    assert fn.terms[0].temperature == 0.2 and fn.terms[1].margin == 0.5
    assert float(fn(pred, target)) == pytest.approx(
        loss("srcc", pred, target, temperature=0.2) + loss("margin", pred, target, margin=0.5), abs=1e-12)
    with pytest.raises(InputError, match="option 'tau'") as err:
        build_loss("plcc+srcc", tau=0.1)
    assert "temperature" in str(err.value)
    with pytest.raises(InputError, match="no option 'margin'"):
        build_loss("plcc+srcc", srcc={"margin": 0.1})
    with pytest.raises(InputError):
        build_loss("elo_ce", scale=2.0)  # fixed: 400 points, base 10


def test_trains_a_tiny_model():
    """plcc + 0.1*l1 on a linear model: the loss falls and the fitted model correlates with the labels."""
    g = torch.Generator().manual_seed(11)
    features = torch.randn(64, 5, generator=g)
    target = features @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(64, generator=g)
    model = torch.nn.Linear(5, 1)
    torch.nn.init.normal_(model.weight, generator=g)
    fn = build_loss("plcc+0.1*l1+0.5*fidelity")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = fn(model(features), target).item()
    for _ in range(200):
        opt.zero_grad()
        value = fn(model(features), target)
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
    assert stats.pearsonr(model(features).detach()[:, 0].numpy(), target.numpy()).statistic > 0.99
