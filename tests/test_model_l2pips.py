"""L2PIPS (The Amaurotia, NTIRE 2021 rank 3): parity with the authors' model (github.com/YuLvS/L2PIPS, ``v9``)
on seeded weights (benchmarks/parity_l2pips.py wrote the expectations), the pieces the description names
(channel shuffle, pairwise group convolution, DCT channel attention, cosine similarities), the two-stage
recipe, the authors' checkpoint format, the learning check and input errors."""

from __future__ import annotations

import itertools
import math
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import iqarena
from iqarena import InputError
from iqarena.backbones import seeded_state_dict
from iqarena.models.config import load_config
from iqarena.models.l2pips import (
    L2PIPS,
    PLAN,
    TOP16,
    DeepSimilarity,
    FrequencyChannelAttention,
    channel_shuffle,
    cosine_per_channel,
    dct_filters,
    ds_key,
    from_authors,
    map_sizes,
)
from iqarena.models.train import build_model, build_optimizer, group_factors

sys.path.insert(0, str(Path(__file__).parent))
from helpers.learning import learning_run

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data" / "models" / "l2pips_parity.pt"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "l2pips_pipal.toml"
SMALL = {"pretrained": False, "depth": 18, "patch": 48, "hidden": 32}


@pytest.fixture(scope="module")
def parity():
    return torch.load(DATA, weights_only=True)


def _model(**kw) -> L2PIPS:
    torch.manual_seed(0)
    return L2PIPS(**{**SMALL, **kw}).eval()


def _images(n: int = 2, h: int = 48, w: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, h, w, generator=g)
    return (ref + 0.1 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 1), ref


def test_deep_similarity_modules_equal_the_authors(parity):
    """project0 (PReLU), project1 (three stride-2 blocks), project3 (three convolutions): max |diff| 0 here."""
    for k, case in parity["modules"].items():
        channels, size = {0: (64, 112), 1: (256, 56), 3: (1024, 14)}[k]
        ds = DeepSimilarity(channels, size, PLAN[k]).eval()
        theirs = seeded_state_dict(OrderedDict((n, tuple(s)) for n, s in case["shapes"]), case["seed"])
        ours = {ds_key(ds, n, v): v for n, v in theirs.items()}
        assert ds.load_state_dict(ours, strict=True) is not None
        rs = np.random.RandomState(case["seed"])
        fd = torch.from_numpy(rs.standard_normal((2, channels, size, size)).astype(np.float32))
        fr = torch.from_numpy(rs.standard_normal((2, channels, size, size)).astype(np.float32))
        with torch.no_grad():
            out = ds(fd, fr)
        assert torch.allclose(out, case["out"], rtol=1e-4, atol=1e-4 * float(case["out"].abs().max())), k


@pytest.mark.slow
def test_full_model_equals_the_authors(parity):
    """The whole v9 (ResNet-50, 204 M parameters) on two 224x224 pairs: max |diff| 0 on this machine."""
    m = L2PIPS(pretrained=False).eval()
    theirs = seeded_state_dict(OrderedDict((k, tuple(s)) for k, s in parity["shapes"]), parity["seed"])
    result = m.load_state_dict(from_authors(theirs, m), strict=False)
    assert set(result.missing_keys) == {"label_mean", "label_std"} and not result.unexpected_keys
    with torch.no_grad():
        out = m(parity["dist"].float() / 255, parity["ref"].float() / 255)
    assert torch.allclose(out, parity["out"], rtol=1e-4, atol=1e-4 * float(parity["out"].abs().max()))


def test_channel_shuffle_interleaves_the_pair():
    d, r = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3)
    x = channel_shuffle(torch.cat([d, r], 1), 2)
    assert torch.equal(x[:, 0::2], d) and torch.equal(x[:, 1::2], r)
    assert torch.equal(channel_shuffle(x, 5), torch.cat([d, r], 1))  # the inverse permutation
    perm = channel_shuffle(torch.arange(10.0).view(1, 10, 1, 1), 2).flatten().long()
    assert sorted(perm.tolist()) == list(range(10)) and perm.tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]


def test_group_convolution_compares_each_channel_pair():
    ds = DeepSimilarity(16, 8, PLAN[1]).eval()
    pair = ds.compare[0]
    assert pair.groups == 16 and pair.in_channels == 32 and pair.out_channels == 16
    d, r = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        base = pair(channel_shuffle(torch.cat([d, r], 1), 2))
        d2 = d.clone()
        d2[:, 5] += 1
        r2 = r.clone()
        r2[:, 9] += 1
        moved_d = (pair(channel_shuffle(torch.cat([d2, r], 1), 2)) - base).abs().amax(dim=(0, 2, 3))
        moved_r = (pair(channel_shuffle(torch.cat([d, r2], 1), 2)) - base).abs().amax(dim=(0, 2, 3))
    assert moved_d.nonzero().flatten().tolist() == [5] and moved_r.nonzero().flatten().tolist() == [9]


def test_dct_filters_are_orthonormal_dct_bases():
    every = tuple(itertools.product(range(7), range(7)))
    basis = dct_filters(49, 7, 7, every).double().view(49, 49)
    assert torch.allclose(basis @ basis.T, torch.eye(49, dtype=torch.float64), atol=1e-6)
    for size in map_sizes(224):  # 112, 56, 28, 14, 7: the 16 frequencies scaled to each map, one per channel group
        f = dct_filters(64, size, size).double()
        distinct = f[::4].reshape(16, -1)
        assert torch.allclose(distinct @ distinct.T, torch.eye(16, dtype=torch.float64), atol=1e-5)
        u, _ = TOP16[2]  # group 2: frequency (6, 0) of the 7x7 grid
        pos = torch.arange(size, dtype=torch.float64)
        expected = torch.outer(torch.cos(math.pi * u * (size // 7) * (pos + 0.5) / size) * math.sqrt(2 / size),
                               torch.full((size,), 1 / math.sqrt(size), dtype=torch.float64))
        assert torch.allclose(f[8], expected, atol=1e-6) and torch.equal(f[8], f[11])
    with pytest.raises(InputError, match="16 groups"):
        dct_filters(24, 7, 7)


def test_channel_attention_pools_with_the_dct():
    fca = FrequencyChannelAttention(32, 7).eval()
    x = torch.randn(2, 32, 7, 7)
    with torch.no_grad():
        pooled = (x * fca.filters).sum(dim=(2, 3))
        assert torch.allclose(pooled[:, :2], 7 * x[:, :2].mean(dim=(2, 3)), atol=1e-5)  # (0, 0): the scaled mean
        assert torch.allclose(fca(x), x * fca.fc(pooled)[:, :, None, None])
        big = torch.randn(2, 32, 14, 14)  # another size: average-pooled to 7x7 first (FcaNet's fallback)
        weights = fca.fc((torch.nn.functional.adaptive_avg_pool2d(big, 7) * fca.filters).sum(dim=(2, 3)))
        assert torch.allclose(fca(big), big * weights[:, :, None, None], atol=1e-6)


def test_cosines_of_identical_images_are_one_and_scores_have_any_size():
    m = _model()
    d, r = _images(3)
    feats = m.maps(d)
    assert torch.allclose(cosine_per_channel(feats[2], feats[2]), torch.ones(3, 128), atol=1e-5)
    assert [f.shape[-1] for f in feats] == map_sizes(48) == [24, 12, 6, 3, 2]
    with torch.no_grad():
        batch = m(d, r)
        single = torch.cat([m(d[i:i + 1], r[i:i + 1]) for i in range(3)])
        other = m(*_images(2, 64, 80))
    assert batch.shape == (3,) and torch.allclose(batch, single, atol=1e-5) and other.shape == (2,)
    assert torch.isfinite(other).all()


def test_cosine_auxiliary_loss():
    m = _model(aux_weight=0.3).train()
    m.set_label_stats(1400.0, 50.0)
    d, r = _images(4)
    y = torch.tensor([1300.0, 1400.0, 1450.0, 1500.0])
    m(d, r)
    cos = m._last_cosines
    expected = 0.3 * torch.stack([torch.nn.functional.l1_loss(h(c).squeeze(1), (y - 1400) / 50)
                                  for h, c in zip(m.aux_heads, cos)]).mean()
    assert torch.allclose(m.auxiliary_loss({"score": y}), expected)
    plain = _model().train()
    plain(d, r)
    assert plain.aux_heads is None and plain.auxiliary_loss({"score": y}) is None


def _to_authors(m: L2PIPS) -> OrderedDict:
    """This model's tensors under the authors' names (the inverse of from_authors), with their DCT buffers."""
    out = OrderedDict()
    for k, v in m.state_dict().items():
        if k.startswith("backbone.conv1."):
            out["module.head1." + k.split(".", 2)[2]] = v
        elif k.startswith("backbone.bn1."):
            out["module.head2.0." + k.split(".", 2)[2]] = v
        elif k.startswith("backbone."):
            out["module." + k.split(".", 1)[1]] = v
        elif k.startswith("head."):
            out["module.big_fc." + k.split(".", 1)[1]] = v
    for i, ds in enumerate(m.similarity):
        names = {id(mod): n for n, mod in ds.named_modules()}
        for j, layer in enumerate(ds.layers()):
            for n, v in layer.state_dict().items():
                out[f"module.project{i}.{j}.{n}"] = ds.state_dict()[f"{names[id(layer)]}.{n}"]
            if isinstance(layer, FrequencyChannelAttention):
                out[f"module.project{i}.{j}.dct_layer.weight"] = layer.filters
    return out


def test_the_authors_checkpoint_format_loads(tmp_path):
    m = _model()
    torch.manual_seed(7)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    torch.save(_to_authors(m), tmp_path / "net_params_best.pkl")
    loaded = _model(trained=str(tmp_path / "net_params_best.pkl"))
    mine, theirs = m.state_dict(), loaded.state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in mine.items() if not k.startswith("label_"))
    assert float(loaded.label_std) == 1000.0 and float(loaded.label_mean) == 0.0  # their scores are Elo / 1000
    other = _model(patch=64)  # other map sizes: their DCT filters do not fit
    with pytest.raises(InputError, match="DCT filters"):
        from_authors(_to_authors(m), other)
    with pytest.raises(InputError, match="not a tensor of the authors"):
        from_authors({"module.fc.weight": torch.zeros(1)}, m)


def test_frozen_backbone_and_training_batch_norm():
    m = _model(train_backbone=False).train()
    assert not any(p.requires_grad for p in m.backbone.parameters())
    assert m.similarity[0].compare[1].training  # the authors train every batch norm in batch-statistics mode
    assert not _model(frozen_bn=True).train().similarity[0].compare[1].training


def test_bad_input_and_options():
    metric = iqarena.create_metric("l2pips", **SMALL)
    d, r = _images(1)
    with pytest.raises(InputError, match="full-reference"):
        metric(d)
    with pytest.raises(InputError, match="differ in shape"):
        metric(d, r[..., :40])
    with pytest.raises(InputError, match="at least 32x32"):
        metric(d[..., :16, :16], r[..., :16, :16])
    with pytest.raises(InputError, match="patch must be at least"):
        L2PIPS(pretrained=False, depth=18, patch=16)
    with pytest.raises(InputError, match="depth must be one of"):
        L2PIPS(pretrained=False, depth=26)
    with pytest.raises(InputError, match="full-reference"):
        _model().score(d)


def test_recipe_is_the_two_stage_schedule():
    cfg = load_config(RECIPE)
    cfg.model.options["pretrained"] = False  # no ImageNet file in tests
    assert cfg.data.dataset == "pipal" and cfg.data.crop == 224 and cfg.data.batch_size == 16
    assert cfg.optim.freeze_backbone_epochs == 100 and cfg.train.epochs == 200
    with torch.device("meta"):  # the structure only: 204 M parameters need no numbers here
        model, info = build_model(cfg)
    assert info.name == "l2pips" and model.patch == 224 and len(model.head[0].weight) == 2 * 3904
    opt = build_optimizer(model, cfg)
    factors = dict(zip([g["name"] for g in opt.param_groups], group_factors(opt, 10, cfg)))
    assert factors["backbone"](999) == 0 and factors["backbone"](1000) > 0 and factors["head"](0) > 0


def test_learning_check(synth, tmp_path):
    """ResNet-18 (random, frozen), patch 48, a 64-wide first linear layer, batch norms training as the authors';
    2 epochs at the harness's lr 1e-3 and plcc + 0.1 srcc loss: SRCC -0.65 -> 0.94 on the held-out references."""
    r = learning_run(synth, tmp_path / "run", "l2pips",
                     {"pretrained": False, "depth": 18, "patch": 48, "hidden": 64, "train_backbone": False},
                     **{"train.epochs": 2})
    assert r.after >= max(r.before + 0.25, 0.7), r
