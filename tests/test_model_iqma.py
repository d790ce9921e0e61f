"""IQMA (MT-GTD, NTIRE 2021 rank 2): no code of the authors' is public, so these tests check what the
description fixes: FPN maps of the right sizes and channels with a top-down path, one fusion-pooling-
regression module per scale, the per-scale scores fused; the learning check; the recipe; input errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import iqarena
from iqarena import InputError
from iqarena.models.config import load_config
from iqarena.models.iqma import FPN, IQMA
from iqarena.models.train import build_model, build_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from helpers.learning import learning_run

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "iqma_pipal.toml"
SMALL = {"pretrained": False, "depth": 18, "channels": 16, "hidden": 16}


def _model(**kw) -> IQMA:
    torch.manual_seed(0)
    return IQMA(**{**SMALL, **kw}).eval()


def _images(n: int = 2, h: int = 64, w: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, h, w, generator=g)
    return (ref + 0.1 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 1), ref


def test_pyramid_sizes_channels_and_top_down_path():
    m = _model()
    d, _ = _images(1, 64, 96)
    with torch.no_grad():
        maps = m.pyramid(d)
    assert [tuple(p.shape) for p in maps] == [(1, 16, 16, 24), (1, 16, 8, 12), (1, 16, 4, 6), (1, 16, 2, 3)]
    # FPN: a change in C2 reaches P2 only; a change in C5 reaches every level through the top-down path
    fpn = FPN([8, 16, 32, 64], 4).eval()
    feats = [torch.randn(1, c, s, s) for c, s in zip([8, 16, 32, 64], [16, 8, 4, 2])]
    with torch.no_grad():
        base = fpn(feats)
        low = fpn([feats[0] + 1, *feats[1:]])
        top = fpn([*feats[:3], feats[3] + 1])
    assert not torch.allclose(low[0], base[0]) and all(torch.equal(a, b) for a, b in zip(low[1:], base[1:]))
    assert all(not torch.allclose(a, b) for a, b in zip(top, base))


def test_per_scale_scores_are_fused():
    m = _model()
    d, r = _images()
    with torch.no_grad():
        scales = m.scale_scores(d, r)
        out = m(d, r)
        assert scales.shape == (2, 4)
        assert torch.allclose(m.fusion_weights(), torch.full((4,), 0.25))  # learned weights start equal: the mean
        assert torch.allclose(out, scales.mean(1), atol=1e-6)
        m.fusion_logits.copy_(torch.tensor([2.0, 0.0, -1.0, 0.5]))
        w = torch.softmax(m.fusion_logits, 0)
        assert float(w.sum()) == pytest.approx(1.0) and torch.allclose(m(d, r), scales @ w, atol=1e-6)
        m.set_label_stats(1500.0, 100.0)
        assert torch.allclose(m(d, r), 1500 + 100 * (scales @ w), atol=1e-3)
    fixed = _model(fusion="mean")
    assert not fixed.fusion_logits.requires_grad
    assert "fusion_logits" in {n for n, p in m.named_parameters() if p.requires_grad}


def test_identical_images_give_zero_differences_and_batch_equals_single():
    m = _model()
    d, r = _images(3)
    with torch.no_grad():
        head = m.heads[1]
        f = m.pyramid(d)[1]
        fused = head.fuse(torch.cat([f, f, torch.zeros_like(f)], 1)).flatten(2)
        expected = head.regress(torch.cat([fused.mean(-1), fused.amax(-1)], 1)).squeeze(1)
        assert torch.allclose(m.scale_scores(d, d)[:, 1], expected, atol=1e-5)
        batch = m(d, r)
        single = torch.cat([m(d[i:i + 1], r[i:i + 1]) for i in range(3)])
    assert batch.shape == (3,) and torch.allclose(batch, single, atol=1e-5)
    grey = d[:, :1]
    with torch.no_grad():
        assert torch.allclose(m(grey, r[:, :1]), m(grey.expand(-1, 3, -1, -1), r[:, :1].expand(-1, 3, -1, -1)))


def test_gradients_reach_the_images():
    m = _model()
    d, r = _images(1)
    d.requires_grad_(True)
    m(d, r).sum().backward()
    assert d.grad is not None and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


def test_separate_branches_and_frozen_backbone():
    m = _model(shared=False)
    names = {n.split(".")[0] + "." + n.split(".")[1] for n, _ in m.named_parameters() if n.startswith("backbone.")}
    assert names == {"backbone.0", "backbone.1"}
    d, r = _images(1)
    with torch.no_grad():
        assert m(d, r).shape == (1,)
        b0 = m.pyramid(d, 0)[0]
        b1 = m.pyramid(d, 1)[0]
    assert not torch.allclose(b0, b1)  # two networks: the reference branch has its own weights
    frozen = _model(train_backbone=False)
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert all(p.requires_grad for n, p in frozen.named_parameters() if n.startswith(("fpn.", "heads.")))


def test_scale_supervision_through_auxiliary_loss():
    m = _model(scale_weight=0.5).train()
    m.set_label_stats(1400.0, 50.0)
    d, r = _images(4)
    y = torch.tensor([1300.0, 1400.0, 1450.0, 1500.0])
    m(d, r)
    scales = m._last_scales
    expected = 0.5 * torch.nn.functional.smooth_l1_loss(scales, ((y - 1400) / 50)[:, None].expand(-1, 4))
    assert torch.allclose(m.auxiliary_loss({"score": y}), expected)
    assert m.auxiliary_loss({"score": y}) is None  # used once per forward
    plain = _model().train()
    plain(d, r)
    assert plain.auxiliary_loss({"score": y}) is None


def test_trained_part_loads(tmp_path):
    m = _model()
    torch.manual_seed(5)
    part = {k: torch.randn_like(v) for k, v in m.state_dict().items() if k.startswith("heads.")}
    torch.save(part, tmp_path / "heads.pt")
    loaded = _model(trained=str(tmp_path / "heads.pt"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in part.items())
    torch.save({"classifier.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="does not have"):
        _model(trained=str(tmp_path / "other.pt"))


def test_bad_input_and_options():
    metric = iqarena.create_metric("iqma", **SMALL)
    d, r = _images(1)
    with pytest.raises(InputError, match="full-reference"):
        metric(d)
    with pytest.raises(InputError, match="differ in shape"):
        metric(d, r[..., :64])
    with pytest.raises(InputError, match="at least 32x32"):
        metric(d[..., :16, :16], r[..., :16, :16])
    with pytest.raises(InputError, match="depth must be one of"):
        IQMA(pretrained=False, depth=20)
    with pytest.raises(InputError, match="fusion must be one of"):
        IQMA(pretrained=False, depth=18, fusion="max")
    with pytest.raises(InputError, match="full-reference"):
        _model().score(d)


def test_recipe_builds_the_full_model():
    cfg = load_config(RECIPE)
    cfg.model.options["pretrained"] = False  # no ImageNet file in tests
    assert cfg.data.dataset == "pipal" and cfg.train.loss == "smooth_l1"
    assert 0 < cfg.data.oversample_below < 0.2 and cfg.data.oversample_factor >= 2
    with torch.device("meta"):  # the structure only
        model, info = build_model(cfg)
    assert info.name == "iqma" and isinstance(model, IQMA) and model.backbone.layer4[0].conv3.out_channels == 2048
    groups = {g["name"]: len(g["params"]) for g in build_optimizer(model, cfg).param_groups}
    assert set(groups) == {"head", "backbone"}


def test_learning_check(synth, tmp_path):
    """ResNet-18 (random, frozen, batch norm in batch-statistics mode), 32 FPN channels; 3 epochs at lr 3e-3
    with the harness's plcc + 0.1 srcc loss: SRCC 0.42 -> 0.81 on the held-out references (about 4 s/epoch)."""
    r = learning_run(synth, tmp_path / "run", "iqma",
                     {"pretrained": False, "depth": 18, "channels": 32, "hidden": 32, "train_backbone": False,
                      "frozen_bn": False},
                     **{"train.epochs": 3, "optim.lr": 3e-3})
    assert r.after >= max(r.before + 0.25, 0.7), r
