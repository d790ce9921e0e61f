"""swd (the Space Warping Difference network, the NTIRE 2021 organisers' baseline): the SWD layer, its
tolerance to shifts, parity with the authors' public base network, the recipe, and the learning check."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
import torch

from iqarena.backbones import AlexNet, seeded_state_dict
from iqarena.errors import InputError
from iqarena.models.trunk import imagenet_normalise
from iqarena.io import read_image
from iqarena.models.config import load_config
from iqarena.models.swd import SWD, backbone, warp_difference
from iqarena.models.train import build_model
from helpers.stand_in import catalogue_stand_in

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
PARITY = DATA / "models" / "swd_parity.pt"
SAMPLE = Path(str(resources.files("iqarena") / "sample"))


def authors_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our_IQA's names -> SWD's: ``FE.i`` is ``backbone.features.i`` (torchvision's indices) and
    ``regreassion_mine_k.j`` (k = 1..5) is ``heads.(k-1).j``."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^FE\.", "backbone.features.", k)
        k = re.sub(r"^regreassion_mine_(\d)\.", lambda m: f"heads.{int(m.group(1)) - 1}.", k)
        out[k] = v
    return out


def seeded_backbone(model: SWD, seed: int = 0) -> None:
    convs = {k: v.shape for k, v in model.backbone.state_dict().items() if not k.endswith("filter")}
    model.backbone.load_state_dict(seeded_state_dict(convs, seed), strict=False)


@pytest.fixture(scope="module")
def photo():
    return read_image(SAMPLE / "ref" / "I03.png")[None]


# ---------------------------------------------------------------- the Space Warping Difference layer

def test_zero_warp_is_the_plain_difference():
    g = torch.Generator().manual_seed(0)
    fd, fr = torch.randn(2, 8, 9, 7, generator=g), torch.randn(2, 8, 9, 7, generator=g)
    assert torch.equal(warp_difference(fd, fr, 0), fr - fd)
    m0, m1 = SWD(pretrained=False, warp=0).eval(), SWD(pretrained=False, warp=1).eval()
    m1.load_state_dict(m0.state_dict())
    d, r = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 3, 48, 48, generator=g)
    with torch.no_grad():
        plain = m0.differences(d, r)
        taps = m0.backbone.stages(imagenet_normalise(torch.cat([d, r])))
        assert all(torch.equal(p, t[2:] - t[:2]) for p, t in zip(plain, taps))
        # a one-position search can only lower each position's distance
        for p, w in zip(plain, m1.differences(d, r)):
            assert (w.pow(2).sum(1) <= p.pow(2).sum(1) + 1e-6).all()


@pytest.mark.parametrize("radius", [1, 2])
def test_warp_difference_equals_a_search_over_positions(radius):
    """Each position takes the reference vector of the (2r+1)^2 window inside the map that is nearest in
    squared L2 distance; a loop over positions and offsets gives the same."""
    g = torch.Generator().manual_seed(radius)
    fd, fr = torch.randn(1, 3, 5, 6, generator=g), torch.randn(1, 3, 5, 6, generator=g)
    got = warp_difference(fd, fr, radius)
    want = torch.empty_like(fd)
    for y in range(5):
        for x in range(6):
            cands = [fr[0, :, y + dy, x + dx] - fd[0, :, y, x] for dy in range(-radius, radius + 1)
                     for dx in range(-radius, radius + 1) if 0 <= y + dy < 5 and 0 <= x + dx < 6]
            want[0, :, y, x] = min(cands, key=lambda c: float(c.pow(2).sum()))
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_shifted_feature_map_has_no_difference_inside():
    fr = torch.randn(1, 4, 10, 10, generator=torch.Generator().manual_seed(1))
    fd = torch.roll(fr, shifts=(1, -1), dims=(2, 3))  # every vector moved by one position
    out = warp_difference(fd, fr, 1)
    assert out[..., 1:-1, 1:-1].abs().max() == 0
    assert (fr - fd)[..., 1:-1, 1:-1].abs().max() > 1


def _tap_ratio(net: str, pool: str, dist: torch.Tensor, ref: torch.Tensor) -> list[float]:
    """Per tap: mean squared Space Warping Difference (warp 1) / mean squared plain difference."""
    warped, plain = SWD(pretrained=False, net=net, pool=pool, warp=1).eval(), \
        SWD(pretrained=False, net=net, pool=pool, warp=0).eval()
    seeded_backbone(warped)
    seeded_backbone(plain)
    with torch.no_grad():
        w, p = warped.differences(dist, ref), plain.differences(dist, ref)
    return [float(a.pow(2).mean() / b.pow(2).mean()) for a, b in zip(w, p)]


def test_a_shift_changes_swd_much_less_than_the_plain_difference(photo):
    """Measured on a 64-pixel crop of a photo, seeded backbone weights. A shift of one position of the first
    tap (1 pixel for VGG16, whose first tap has stride 1; 4 pixels for AlexNet, stride 4) leaves 3 % (VGG16)
    and 11 % (AlexNet) of that tap's mean squared difference; additive noise is hardly reduced (95 %, 99 %). A 1-pixel shift on
    AlexNet is a quarter of its first stride, which no whole-position search undoes: it stays (0.99)."""
    ref = photo[..., 100:164, 100:164]
    noisy = (ref + 0.02 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    vgg_shift = _tap_ratio("vgg", "l2", photo[..., 100:164, 101:165], ref)
    vgg_noise = _tap_ratio("vgg", "l2", noisy, ref)
    assert vgg_shift[0] < 0.05 and vgg_noise[0] > 0.9  # measured 0.028 and 0.951
    alex_shift4 = _tap_ratio("alex", "l2", photo[..., 100:164, 104:168], ref)
    alex_shift1 = _tap_ratio("alex", "l2", photo[..., 100:164, 101:165], ref)
    alex_noise = _tap_ratio("alex", "l2", noisy, ref)
    assert alex_shift4[0] < 0.15 and alex_noise[0] > 0.95  # measured 0.11 and 0.99
    assert alex_shift1[0] > 0.9  # measured 0.99


# ---------------------------------------------------------------- l2 pooling, the backbone, parity

def test_l2_pooling_replaces_each_max_pooling_before_the_last_tap():
    from iqarena.metrics.dists import L2Pool

    for net, pools in (("alex", (2, 5)), ("vgg", (4, 9, 16, 23))):
        b = backbone(net, "l2")
        assert [i for i, m in enumerate(b.features) if isinstance(m, L2Pool)] == list(pools)
        assert not any(isinstance(m, torch.nn.MaxPool2d) for m in b.features[:b.stage_ends[-1]])
    x = torch.full((1, 64, 9, 9), 0.7)
    torch.testing.assert_close(L2Pool(64)(x)[..., 1:-1, 1:-1], torch.full((1, 64, 3, 3), 0.7))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_parity_with_the_authors_base_network(net):
    """benchmarks/parity_swd.py ran HaomingCai/PIPAL-dataset's Our_IQA on seeded weights: SWD with max pooling
    and no warping is that network (score = minus its distance)."""
    blob = torch.load(PARITY, weights_only=False)["nets"][net]
    model = SWD(pretrained=False, net=net, pool="max", warp=0).eval()
    result = model.load_state_dict(authors_to_ours(seeded_state_dict(dict(blob["keys"]), blob["seed"])), strict=False)
    assert result.missing_keys == ["label_mean", "label_std"] and not result.unexpected_keys
    with torch.no_grad():
        got = -model(blob["dist"], blob["ref"])
    torch.testing.assert_close(got, blob["distance"].flatten(), rtol=1e-5, atol=1e-6)  # measured max 1.2e-7


def test_the_imagenet_file_loads_through_the_catalogue(tmp_path, monkeypatch):
    """torchvision's AlexNet names load unchanged (a stand-in file with the feature tensors)."""
    keys = json.loads((DATA / "backbone_keys.json").read_text())["alexnet"]
    sd = seeded_state_dict({k: v for k, v in keys.items() if k.startswith("features.")}, 5)
    catalogue_stand_in(monkeypatch, tmp_path, "alexnet", sd)
    model = SWD()
    own = model.backbone.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items())
    assert {k for k in own if not k.endswith("filter")} == set(AlexNet(include_top=False).state_dict())


# ---------------------------------------------------------------- the model

def test_identical_images_give_one_constant_and_batch_equals_one_by_one():
    model = SWD(pretrained=False, hidden=8).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 40, 52, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        same = model(x, x)
        zero = sum(head(torch.zeros(1, c, 1, 1)).flatten() for head, c in zip(model.heads, (64, 192, 384, 256, 256)))
        torch.testing.assert_close(same, (-zero).expand(3), rtol=1e-6, atol=1e-7)
        batch = model(y, x)
        single = torch.cat([model(y[i:i + 1], x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)
    grey = model(y[:, :1], x[:, :1])
    assert grey.shape == (3,) and torch.isfinite(grey).all()


def test_training_clamps_the_head_weights_and_leaves_the_backbone_frozen():
    model = SWD(pretrained=False, hidden=8)
    assert any((h[0].weight < 0).any() for h in model.heads)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    x = torch.rand(2, 3, 40, 40)
    model.eval()(x.flip(-1), x)
    assert any((h[0].weight < 0).any() for h in model.heads)  # evaluation leaves them as they are
    model.train()(x.flip(-1), x).sum().backward()
    assert all((h[i].weight >= 0).all() for h in model.heads for i in (0, 2))
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert model.heads[0][0].weight.grad is not None
    assert SWD(pretrained=False, train_backbone=True).backbone.features[0].weight.requires_grad


def test_recipe_loads_and_builds():
    cfg = load_config(ROOT / "recipes" / "swd_pipal.toml")
    assert (cfg.model.name, cfg.data.dataset, cfg.data.root, cfg.train.loss) == ("swd", "pipal", "PIPAL", "elo_ce")
    assert cfg.data.crop == 248 and cfg.optim.lr == 1e-4 and cfg.model.options["pool"] == "l2"
    cfg.model.options["pretrained"] = False
    model, info = build_model(cfg)
    assert isinstance(model, SWD) and info.kind == "fr" and model.warps == [1] * 5
    assert sum(p.numel() for p in model.parameters()) == 2_791_493  # 2,469,696 AlexNet + 321,797 heads


def test_bad_input_is_an_input_error():
    model = SWD(pretrained=False).eval()
    x = torch.rand(1, 3, 40, 40)
    with pytest.raises(InputError, match="full-reference"):
        model(x)
    with pytest.raises(InputError, match="one shape"):
        model(x, torch.rand(1, 3, 40, 41))
    with pytest.raises(InputError, match="at least 31x31"):
        SWD(pretrained=False, pool="max").eval()(torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30))
    with pytest.raises(InputError, match="warp must be"):
        SWD(pretrained=False, warp=[1, 1])
    with pytest.raises(InputError, match="warp must be"):
        SWD(pretrained=False, warp=-1)
    with pytest.raises(InputError, match="net must be one of alex, vgg"):
        SWD(pretrained=False, net="resnet")
    with pytest.raises(InputError, match="pool must be one of l2, max"):
        SWD(pretrained=False, pool="avg")


# ---------------------------------------------------------------- the learning check

def test_learning_check(synth, tmp_path):
    """A random frozen AlexNet (no ImageNet file here), narrow heads (hidden 16), the paper's pairwise
    objective (elo_ce); lr 2e-2 (measured: 1e-3 reaches 0.66, 1e-2 0.75 in 10 epochs)."""
    from helpers.learning import learning_run

    r = learning_run(synth, tmp_path / "run", "swd", {"pretrained": False, "hidden": 16},
                     **{"train.epochs": 10, "train.loss": "elo_ce", "optim.lr": 2e-2})
    assert r.after >= max(r.before + 0.25, 0.7), r  # measured: -0.69 -> 0.78
