"""asna (MACS, NTIRE 2021 rank 9) and the sodeep surrogate-rank loss: the sorter, the loss's values and
invariances, its cache, the network's structure, the recipe, bad input and the learning check.

The team's code is TensorFlow/Keras (github.com/smehdia/NTIRE2021-IQA-MACS); it cannot run in the peers'
environment, so there is no parity file: these tests check what the code and the report fix."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from scipy import stats

import iqarena.models  # noqa: F401  (registers asna and the sodeep loss)
from iqarena.errors import InputError
from iqarena.models import sodeep
from iqarena.models.asna import ASNA, tf_same
from iqarena.models.config import load_config
from iqarena.models.losses import LOSSES, build_loss
from iqarena.models.train import build_model

sys.path.insert(0, str(Path(__file__).parent))
from helpers.learning import learning_run

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "asna_pipal.toml"
SMALL = {"widths": (4, 8, 8, 8, 8, 8, 8, 4, 4, 8), "dense": 16, "size": 48}


@pytest.fixture(scope="module")
def sorter():
    """A narrow sorter trained in a few seconds (the default one trains ~1000 steps at full width, once)."""
    return sodeep.train_sorter(steps=150, batch=128, width=0.25, lr=3e-3, seed=0)


@pytest.fixture()
def home(tmp_path, monkeypatch, sorter):
    """An empty iqarena cache holding the small sorter where the default sorter is looked for."""
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path / "home"))
    sodeep.save_sorter(sorter, sodeep.default_sorter_path())
    return tmp_path / "home"


def zscore(x):
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, correction=0)


# ---------------------------------------------------------------- the sorter

def test_sorter_ranks_held_out_vectors(sorter):
    g = torch.Generator().manual_seed(1234)  # not the training stream (seed + 1)
    team, _ = sodeep.sorter_vectors(400, 16, g)
    for x in (team, zscore(torch.randn(400, 16, generator=g))):  # the team's vectors; standardised ones (the loss's)
        with torch.no_grad():
            r = sorter(x)
        truth = sodeep.true_ranks(x)
        pearson = torch.stack([torch.corrcoef(torch.stack([r[i], truth[i]]))[0, 1] for i in range(len(x))])
        spearman = [stats.spearmanr(r[i], truth[i]).statistic for i in range(len(x))]
        assert float(pearson.mean()) > 0.9 and float(pearson.min()) > 0.5
        assert sum(spearman) / len(spearman) > 0.9


def test_sorter_training_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a = sodeep.train_sorter(steps=3, batch=8, width=0.125, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = sodeep.train_sorter(steps=3, batch=8, width=0.125, seed=5)
    c = sodeep.train_sorter(steps=3, batch=8, width=0.125, seed=6)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.out.weight, c.out.weight)
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_sorter_architecture_is_the_teams():
    net = sodeep.Sorter()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 96, 128, 256]
    assert [c.kernel_size[0] for c in convs] == [2, 3, 5, 7, 10, 7, 7]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 5
    # conv 394,704 weights + 600 biases, PReLU 600 x 16 slopes, batch norm 2 x 496, dense 4096 x 16 + 16
    assert sum(p.numel() for p in net.parameters()) == 394_128 + 600 + 9_600 + 992 + 65_552
    assert net(torch.randn(3, 16)).shape == (3, 16)
    with pytest.raises(InputError, match="16 values"):
        net(torch.randn(3, 15))
    # Keras "same" padding: an even kernel's extra tap goes right (left 0, right 1 for k = 2; 4 and 5 for k = 10)
    pads = [m.padding for m in net.modules() if isinstance(m, torch.nn.ConstantPad1d)]
    assert pads[0] == (0, 1) and pads[4] == (4, 5)


def test_sorter_data_is_half_normal_half_uniform():
    x, r = sodeep.sorter_vectors(20000, 16, torch.Generator().manual_seed(0))
    normal, uniform = x[:10000], x[10000:]
    assert abs(float(normal.std()) - 2.0) < 0.02 and float(uniform.abs().max()) <= 10.0
    assert abs(float(uniform.std()) - 20 / math.sqrt(12)) < 0.03
    assert torch.equal(r[0], torch.tensor(stats.rankdata(x[0].numpy()), dtype=r.dtype))


# ---------------------------------------------------------------- the loss

def test_sodeep_is_registered_with_its_options():
    assert "sodeep" in LOSSES.names() and LOSSES.resolve("surrogate_rank") == "sodeep"


def test_sodeep_values_and_invariances(sorter):
    fn = build_loss("sodeep", sorter=sorter)
    g = torch.Generator().manual_seed(0)
    target = 1400 + 120 * torch.randn(16, generator=g, dtype=torch.float64)
    pred = target + 80 * torch.randn(16, generator=g, dtype=torch.float64)
    assert float(fn(target, target)) == 0.0
    assert float(fn(2 * target - 7, target)) == pytest.approx(0.0, abs=1e-9)  # ranks alone count
    value = float(fn(pred, target))
    assert float(fn(3 * pred + 100, target)) == pytest.approx(value, rel=1e-9)  # standardised per chunk
    # the team's formula, written out: (1/M) ||R(z(target)) - R(z(pred))||^2 through the same sorter
    with torch.no_grad():
        net = sorter.double()
        by_hand = float((net(zscore(target)[None]) - net(zscore(pred)[None])).pow(2).mean())
    assert value == pytest.approx(by_hand, rel=1e-9)


def test_sodeep_tracks_one_minus_srcc(sorter):
    fn = build_loss("sodeep", sorter=sorter)
    g = torch.Generator().manual_seed(3)
    losses, gaps = [], []
    for noise in torch.linspace(0.05, 3.0, 40):
        t = torch.randn(16, generator=g)
        p = t + noise * torch.randn(16, generator=g)
        losses.append(float(fn(p, t)))
        gaps.append((1 - stats.spearmanr(p, t).statistic) * (16 ** 2 - 1) / 6)  # a perfect sorter's value
    assert stats.pearsonr(losses, gaps).statistic > 0.9
    assert stats.spearmanr(losses, gaps).statistic > 0.9


def test_sodeep_gradient_reaches_the_prediction_not_the_sorter(sorter):
    fn = build_loss("sodeep", sorter=sorter)
    pred = torch.randn(16, requires_grad=True)
    fn(pred, torch.randn(16)).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    assert all(p.grad is None for p in sorter.parameters())
    fn.train()
    assert not fn.terms[0].sorter_net.training  # batch norm stays frozen


def test_sodeep_other_batch_sizes(sorter):
    fn = build_loss("sodeep", sorter=sorter)
    g = torch.Generator().manual_seed(1)
    t = torch.randn(40, generator=g, dtype=torch.float64)
    p = t + torch.randn(40, generator=g, dtype=torch.float64)
    assert float(fn(t[:10], t[:10])) == 0.0  # a short batch: fillers rank lowest on both sides
    assert float(fn(p[:10], t[:10])) > 0
    # the mean over real entries: 32 = two chunks of 16 give the mean of the two chunks' values
    two = float(fn(p[:32], t[:32]))
    assert two == pytest.approx((float(fn(p[:16], t[:16])) + float(fn(p[16:32], t[16:32]))) / 2, rel=1e-9)
    # 40 = 16 + 16 + 8: weights 16, 16, 8
    parts = [(16, fn(p[:16], t[:16])), (16, fn(p[16:32], t[16:32])), (8, fn(p[32:], t[32:]))]
    assert float(fn(p, t)) == pytest.approx(sum(n * float(v) for n, v in parts) / 40, rel=1e-9)
    # one leftover entry (17 = 16 + 1) carries no order and adds nothing
    assert float(fn(p[:17], t[:17])) == pytest.approx(float(fn(p[:16], t[:16])) * 16 / 16, rel=1e-9)


def test_default_sorter_is_trained_once_then_read_from_the_cache(tmp_path, monkeypatch, sorter):
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path))
    calls = []

    def quick(length=16, **_):
        calls.append(length)
        return sorter

    monkeypatch.setattr(sodeep, "train_sorter", quick)
    p, t = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    first = float(build_loss("sodeep")(p, t))
    assert calls == [16] and sodeep.default_sorter_path().is_file()
    assert str(sodeep.default_sorter_path()).startswith(str(tmp_path / "sodeep"))
    second = float(build_loss("mse+0.1*sodeep").components(p, t)["sodeep"])
    assert calls == [16] and second == pytest.approx(first, rel=1e-6)


def test_sorter_files(tmp_path, sorter):
    path = sodeep.save_sorter(sorter, tmp_path / "s.pt")
    back = sodeep.read_sorter(path)
    assert all(torch.equal(back.state_dict()[k], sorter.state_dict()[k].float()) for k in back.state_dict())
    p, t = torch.randn(16), torch.randn(16)
    assert float(build_loss("sodeep", sorter=str(path))(p, t)) == pytest.approx(
        float(build_loss("sodeep", sorter=sorter)(p, t)), rel=1e-5)
    with pytest.raises(InputError, match="not found"):
        build_loss("sodeep", sorter=str(tmp_path / "missing.pt"))
    torch.save({"something": 1}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not a sorter file"):
        sodeep.read_sorter(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="at least 2"):
        build_loss("sodeep", sorter=sorter)(torch.ones(1), torch.ones(1))


# ---------------------------------------------------------------- the network

def test_full_size_network_and_its_parts():
    torch.manual_seed(0)
    net = ASNA().eval()
    assert sum(p.numel() for p in net.parameters()) == 528_367
    assert net.head[0].in_features == 36 * 36 * 8  # 288 -> /4 -> /2, 8 channels after the attention block
    x, y = torch.rand(2, 3, 288, 288), torch.rand(2, 3, 288, 288)
    with torch.no_grad():
        assert net(x, y).shape == (2,)
    simple = ASNA(variant="simple", widths=(8, 16, 32, 64, 64, 64, 32, 16, 8, 16), slope=0.7)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in simple.modules())
    assert isinstance(simple.head[4], torch.nn.Sigmoid) and isinstance(net.head[4], torch.nn.Tanh)
    assert simple.head[0].in_features == 36 * 36 * 16 and len(simple.residual) == 0 and len(net.residual) == 3


def test_tensorflow_same_padding():
    x = torch.zeros(1, 1, 288, 288)
    assert tf_same(x, 3, 4).shape[-2:] == (288, 288)  # (72 - 1) * 4 + 3 - 288 < 0: no padding
    assert tf_same(torch.zeros(1, 1, 72, 72), 3, 2).shape[-2:] == (73, 73)  # one pixel, right and bottom
    y = tf_same(torch.ones(1, 1, 72, 72), 3, 2)
    assert float(y[..., -1, :].abs().sum()) == 0 and float(y[..., 0, 0]) == 1


@pytest.mark.parametrize("variant", ["attention", "bn", "simple"])
def test_batch_equals_one_by_one(variant):
    torch.manual_seed(1)
    net = ASNA(variant=variant, **SMALL).eval()
    d, r = torch.rand(3, 3, 48, 48), torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        both = net(d, r)
        alone = torch.cat([net(d[i:i + 1], r[i:i + 1]) for i in range(3)])
    assert torch.allclose(both, alone, atol=1e-5)


def test_only_differences_and_one_image_reach_the_decoder():
    """The skips are |enc(dist) - enc(ref)| (symmetric): swapping the images and the bottleneck side gives the
    same features; the decoder's own input is one image's deepest level (the reference: the team's PIPAL order)."""
    torch.manual_seed(2)
    a = ASNA(bottleneck="ref", **SMALL).eval()
    b = ASNA(bottleneck="dist", **SMALL).eval()
    b.load_state_dict(a.state_dict())
    seen = []
    for net in (a, b):
        net.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    d, r = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        a(d, r), b(r, d), a(r, d)
    assert seen[0].shape == (2, 6 * 6 * 4)
    swapped = float((seen[0] - seen[2]).abs().max())  # the bottleneck side changes the features ...
    assert swapped > 0 and float((seen[0] - seen[1]).abs().max()) <= 1e-3 * swapped  # ... and nothing else does


def test_grey_input_and_test_crops():
    torch.manual_seed(3)
    net = ASNA(test_crop=48, test_layout="five", **SMALL).eval()
    g, h = torch.rand(1, 1, 48, 48), torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(net(g, h), net(g.expand(-1, 3, -1, -1), h.expand(-1, 3, -1, -1)))
        d, r = torch.rand(1, 3, 64, 80), torch.rand(1, 3, 64, 80)
        crops = [net.score(d[..., y:y + 48, x:x + 48], r[..., y:y + 48, x:x + 48])
                 for y, x in [(0, 0), (0, 32), (16, 0), (16, 32), (8, 16)]]
        assert torch.allclose(net(d, r), sum(crops) / 5, atol=1e-6)


def test_bad_input_and_options():
    net = ASNA(**SMALL).eval()
    with pytest.raises(InputError, match="48x48 inputs"):
        net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match="full-reference"):
        net.score(torch.rand(1, 3, 48, 48), None)
    with pytest.raises(InputError, match="multiple of 16"):
        ASNA(size=50)
    with pytest.raises(InputError, match="variant"):
        ASNA(variant="tiled")
    with pytest.raises(InputError, match="bottleneck"):
        ASNA(bottleneck="both")
    with pytest.raises(InputError, match="10 widths"):
        ASNA(widths=(8, 16))


def test_recipe_loads_and_builds(home):
    cfg = load_config(RECIPE)
    assert cfg.model.name == "asna" and cfg.data.dataset == "pipal" and cfg.data.batch_size == 16
    model, info = build_model(cfg)
    assert info.needs_ref and model.size == 288 and model.variant == "attention"
    terms = build_loss(cfg.train.loss)
    assert terms.names == ["mse", "sodeep"] and terms.weights == pytest.approx([6.79e-5, 0.01])
    assert terms.terms[1].length == cfg.data.batch_size


# ---------------------------------------------------------------- learning

def test_learns_the_synthetic_set(synth, home, tmp_path):
    """From scratch with batch norm training, the team's loss shape (PLCC in place of MSE's scale) with sodeep."""
    r = learning_run(synth, tmp_path / "run", "asna", {**SMALL, "widths": list(SMALL["widths"])},
                     **{"train.epochs": 10, "train.loss": "0.5*plcc+0.01*sodeep+1e-5*mse"})
    print(f"asna learning: {r}")
    assert r.after >= max(r.before + 0.25, 0.7)
