"""mlt_yahaha (src/iqarena/models/yahaha.py), the Yahaha! team's multi-level transformer. No code of the team's
is public, so no parity: the tests check what the challenge report fixes (r (+) d (+) (r - d) at every ResNet-18
stage, one pooled size, a class of distortion types, the relative-distance loss's formula), the ImageNet weights'
loading, the recipe, errors, and the learning check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from iqarena.backbones import resnet18, seeded_state_dict
from iqarena.errors import InputError
from iqarena.metrics import get_info
from iqarena.models.config import load_config
from iqarena.models.train import build_model
from iqarena.models.yahaha import MultiLevelTransformer, relative_distance_loss
from helpers.stand_in import catalogue_stand_in

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"pretrained": False, "embed": 32, "heads": 2, "layers": 1, "ff": 64, "hidden": 32, "grid": 2, "types": 6}


def small(**kw) -> MultiLevelTransformer:
    torch.manual_seed(0)
    return MultiLevelTransformer(**{**SMALL, **kw})


def pairs(n=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, size, size, generator=g)
    dist = (ref + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return dist, ref


def test_relative_distance_loss_on_known_numbers():
    """sum over i < j of |(y_i - y_j) - (x_i - x_j)| (report, Section 5.5): pairs (1, 2), (1, 3), (2, 3) of
    x = (1, 2, 4), y = 0 give 1 + 3 + 2."""
    x, y = torch.tensor([1.0, 2.0, 4.0]), torch.zeros(3)
    assert float(relative_distance_loss(x, y, "sum")) == 6.0
    assert float(relative_distance_loss(x, y)) == 2.0  # the mean over the 3 pairs
    # only differences count: a shift of the predictions changes nothing; predictions equal to the labels
    # up to a constant give 0
    y2 = torch.tensor([1500.0, 1320.0, 1410.0, 990.0])
    assert float(relative_distance_loss(y2 - 1234.5, y2)) == 0.0
    x2 = torch.tensor([0.3, -2.0, 5.0, 1.0])
    torch.testing.assert_close(relative_distance_loss(x2 + 7.0, y2), relative_distance_loss(x2, y2))
    assert float(relative_distance_loss(torch.ones(1), torch.zeros(1))) == 0.0
    with pytest.raises(InputError, match="same shape"):
        relative_distance_loss(torch.ones(3), torch.ones(2))


def test_tokens_hold_r_d_and_their_difference_per_level():
    """Each token is r (+) d (+) (r - d) of every level, pooled to the grid: for an identical pair the r and d
    parts are equal and the difference part is exactly zero; for a distorted pair it equals r - d."""
    model = small(grid=3).eval()
    dist, ref = pairs(2, 64)
    with torch.no_grad():
        same = model.tokens(ref, ref)
        t = model.tokens(dist, ref)
    assert t.shape == (2, 9, 3 * (64 + 128 + 256 + 512))
    start = 0
    for c in (64, 128, 256, 512):
        r, d, diff = (same[..., start + k * c:start + (k + 1) * c] for k in range(3))
        assert torch.equal(r, d) and not diff.any()
        r, d, diff = (t[..., start + k * c:start + (k + 1) * c] for k in range(3))
        torch.testing.assert_close(diff, r - d, rtol=1e-5, atol=1e-5)
        start += 3 * c
    # on a 288 x 288 image, grid 9 is plain average pooling of layer1..3 (kernels 8, 4, 2) and layer4 itself
    big = small(grid=9, levels=(1, 4)).eval()
    x = torch.rand(1, 3, 288, 288)
    with torch.no_grad():
        tok = big.tokens(torch.zeros_like(x), x)  # the reference part comes first
        stages = big.backbone.stages((x - big.mean) / big.std)
    assert tok.shape == (1, 81, 3 * (64 + 512))
    torch.testing.assert_close(tok[0, :, :64].T.reshape(64, 9, 9), F.avg_pool2d(stages[1], 8)[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tok[0, :, 192:704].T.reshape(512, 9, 9), stages[4][0], rtol=1e-5, atol=1e-6)


def test_shapes_parameters_and_batch_equals_one_by_one():
    full = MultiLevelTransformer(pretrained=False)
    assert sum(p.numel() for p in full.parameters()) == 13_648_456
    assert sum(p.numel() for n, p in full.named_parameters() if n.startswith("backbone.")) == 11_176_512
    model = small().eval()
    dist, ref = pairs(3, 64)
    with torch.no_grad():
        raw, logits = model.heads(dist, ref)
        assert raw.shape == (3,) and logits.shape == (3, 6)
        together = model(dist, ref)
        alone = torch.cat([model(dist[i:i + 1], ref[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # grey input is repeated to three channels
        torch.testing.assert_close(model(dist[:, :1], ref[:, :1]),
                                   model(dist[:, :1].expand(-1, 3, -1, -1), ref[:, :1].expand(-1, 3, -1, -1)))


def test_auxiliary_loss_is_the_weighted_sum():
    """rd_weight x relative distance (label units) + type_weight x label_std x cross-entropy on the last
    training forward; None outside training."""
    model = small(rd_weight=0.5, type_weight=2.0)
    model.set_label_stats(1400.0, 120.0)
    model.train()
    dist, ref = pairs(4, 64)
    scores = model(dist, ref)
    _, logits = model._last
    y = torch.tensor([1500.0, 1300.0, 1450.0, 1200.0])
    kind = torch.tensor([0, 5, 2, 2])
    got = model.auxiliary_loss({"score": y, "kind": kind, "content": torch.zeros(4, dtype=torch.long)})
    want = 0.5 * relative_distance_loss(scores, y) + 2.0 * 120.0 * F.cross_entropy(logits, kind)
    torch.testing.assert_close(got, want)
    got.backward()
    assert model.type_head[0].weight.grad.abs().sum() > 0 and model.backbone.conv1.weight.grad.abs().sum() > 0
    model(dist, ref)
    with pytest.raises(InputError, match="types"):
        model.auxiliary_loss({"score": y, "kind": torch.tensor([0, 6, 1, 1]), "content": kind})
    model.eval()
    with torch.no_grad():
        model(dist, ref)
    assert model.auxiliary_loss({"score": y, "kind": kind, "content": kind}) is None
    off = small(rd_weight=0.0, type_weight=0.0).train()
    off(dist, ref)
    assert off.auxiliary_loss({"score": y, "kind": kind, "content": kind}) is None


def test_imagenet_weights_load_through_the_catalogue(tmp_path, monkeypatch):
    """pretrained=True reads the catalogue's resnet18 file (a seeded stand-in here, hash-checked like the real one)
    and keeps its batch-norm statistics frozen in training; pretrained=False trains them."""
    net = resnet18()
    sd = seeded_state_dict({k: tuple(v.shape) for k, v in net.state_dict().items()}, 5)
    catalogue_stand_in(monkeypatch, tmp_path, "resnet18", sd)
    model = MultiLevelTransformer(pretrained=True, embed=32, heads=2, layers=1, ff=64, hidden=32)
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in sd.items() if not k.startswith("fc."))
    assert model.frozen_batchnorm and not model.train().backbone.bn1.training
    assert not small().frozen_batchnorm and small().train().backbone.bn1.training


def test_bad_input_and_options():
    model = small().eval()
    dist, ref = pairs(1, 64)
    with pytest.raises(InputError, match="full-reference"):
        model(dist)
    with pytest.raises(InputError, match="same shape"):
        model(dist, ref[..., :48])
    with pytest.raises(InputError, match="at least 32x32"):
        model(dist[..., :24, :24], ref[..., :24, :24])
    with pytest.raises(InputError, match="levels"):
        MultiLevelTransformer(pretrained=False, levels=(1, 5))
    with pytest.raises(InputError, match="multiple of heads"):
        MultiLevelTransformer(pretrained=False, embed=30, heads=4)
    assert get_info("yahaha").name == "mlt_yahaha"


def test_recipe_loads_and_builds():
    cfg = load_config(ROOT / "recipes" / "yahaha_pipal.toml")
    assert cfg.model.name == "mlt_yahaha" and cfg.data.dataset == "pipal" and cfg.train.loss == "l1"
    cfg.model.options = {**cfg.model.options, "pretrained": False}
    model, info = build_model(cfg)
    assert isinstance(model, MultiLevelTransformer) and info.needs_ref
    assert model.types == 7 and model.grid == 9 and model.pos.shape == (1, 82, 256)


def test_learning_check(synth, tmp_path):
    """ResNet-18 from scratch (batch norm training), a one-layer 32-wide encoder, grid 2, the team's loss (L1 + the
    relative distance + the distortion-type cross-entropy over the set's 6 synthetic types): validation SRCC on
    unseen references well above the untrained model's."""
    from helpers.learning import learning_run

    r = learning_run(synth, tmp_path / "run", "mlt_yahaha", SMALL,
                     **{"train.epochs": 8, "optim.lr": "3e-3", "optim.backbone_lr": "1.0", "train.loss": "l1"})
    assert r.after >= max(r.before + 0.25, 0.7), r
