"""pieapp_alexnet (team tsubota): BlurPool (its filter, parity with antialiased-cnns, its shift stability),
the ImageNet AlexNet names, PieAPP's weighted patch error, the recipe, and the learning check."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import torch
from torch import nn

from iqarena.backbones import AlexNet, seeded_state_dict
from iqarena.errors import InputError
from iqarena.io import read_image
from iqarena.models.config import load_config
from iqarena.models.pieapp_alexnet import (
    BlurPool,
    MaxBlurPool,
    PieAPPAlexNet,
    binomial_filter,
    blur_alexnet,
    gather_patches,
    window_starts,
)
from iqarena.models.train import build_model
from helpers.stand_in import catalogue_stand_in

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
SAMPLE = Path(str(resources.files("iqarena") / "sample"))
SMALL = {"pretrained": False, "hidden": 16, "patch": 48, "train_patches": 2, "stride": 8}


# ---------------------------------------------------------------- BlurPool

def test_the_filter_is_the_normalised_binomial():
    torch.testing.assert_close(binomial_filter(3), torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    row = torch.tensor([1., 3, 3, 1])
    torch.testing.assert_close(binomial_filter(4), row[:, None] * row[None, :] / 64)
    assert binomial_filter(1).item() == 1
    for k in range(1, 8):
        assert abs(float(binomial_filter(k).sum()) - 1) < 1e-6
    assert BlurPool(3).filt.shape == (1, 1, 3, 3) and not BlurPool(3).state_dict()  # no parameters, no tensors
    with pytest.raises(InputError, match="1..7"):
        BlurPool(8)


def test_blurpool_equals_antialiased_cnns():
    """benchmarks/parity_pieapp_alexnet.py ran antialiased_cnns/blurpool.py after nn.MaxPool2d(3, stride=1) on
    seeded maps (odd and even sides, filter sizes 1-5): the same numbers (measured max |diff| 0)."""
    blob = torch.load(DATA / "models" / "pieapp_alexnet_parity.pt", weights_only=False)
    for size, outs in blob["outputs"].items():
        for side, want in outs.items():
            torch.testing.assert_close(MaxBlurPool(3, size, 2)(blob["inputs"][side]), want, rtol=1e-6, atol=1e-6)


def test_blurpool_is_more_shift_stable_than_max_pooling():
    """Relative change of the pooled map when the input moves by one pixel (a photo crop and noise), AlexNet's
    3x3/2 max pooling against MaxBlurPool: measured 0.047 vs 0.026 (photo), 0.099 vs 0.035 (noise)."""
    photo = read_image(SAMPLE / "ref" / "I03.png")[None, :, 100:164, 100:164]
    noise = torch.rand(1, 8, 64, 64, generator=torch.Generator().manual_seed(0))

    def change(pool, x):
        a, b = pool(x[..., 1:]), pool(x[..., :-1])
        return float((a - b).norm() / b.norm())

    for x, factor in ((photo, 0.6), (noise, 0.4)):
        blurred, maxed = change(MaxBlurPool(3, 4, 2), x), change(nn.MaxPool2d(3, 2), x)
        assert blurred < factor * maxed, (blurred, maxed)
        assert change(MaxBlurPool(3, 3, 2), x) < factor * maxed + 0.01


def test_torchvision_alexnet_names_load():
    """Only the pooling layers change: the feature convolutions keep torchvision's names and shapes, and the
    catalogue's ImageNet file loads unchanged (a stand-in file with the feature tensors)."""
    keys = json.loads((DATA / "backbone_keys.json").read_text())["alexnet"]
    features = {k: v for k, v in keys.items() if k.startswith("features.")}
    net = blur_alexnet(4)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == features
    assert [i for i, m in enumerate(net.features) if isinstance(m, MaxBlurPool)] == [2, 5, 12]
    assert net.stage_ends == AlexNet.stage_ends


def test_the_imagenet_file_loads_through_the_catalogue(tmp_path, monkeypatch):
    keys = json.loads((DATA / "backbone_keys.json").read_text())["alexnet"]
    sd = seeded_state_dict({k: v for k, v in keys.items() if k.startswith("features.")}, 7)
    catalogue_stand_in(monkeypatch, tmp_path, "alexnet", sd)
    model = PieAPPAlexNet(hidden=8)
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in sd.items())


# ---------------------------------------------------------------- patches and PieAPP's weighted error

def test_windows_cover_the_image():
    assert window_starts(288, 64, 6) == [*range(0, 223, 6), 224]  # 39 positions per axis at PIPAL's size
    assert window_starts(64, 64, 6) == [0]
    assert window_starts(100, 64, 12) == [0, 12, 24, 36]
    x = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).view(2, 3, 10, 12)
    ys, xs = torch.tensor([[0, 5], [2, 1]]), torch.tensor([[7, 0], [3, 3]])
    p = gather_patches(x, ys, xs, 4)
    want = torch.stack([x[n, :, ys[n, i]:ys[n, i] + 4, xs[n, i]:xs[n, i] + 4] for n in range(2) for i in range(2)])
    assert torch.equal(p, want)


def test_the_score_is_minus_the_weighted_mean_of_patch_errors():
    model = PieAPPAlexNet(**SMALL).eval()
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 60, 56, generator=g)
    dist = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    ys, xs = window_starts(60, 48, 8), window_starts(56, 48, 8)  # [0, 8, 12] x [0, 8]
    with torch.no_grad():
        got = model(dist, ref)
        for n in range(2):
            pd = torch.stack([dist[n, :, y:y + 48, x:x + 48] for y in ys for x in xs])
            pr = torch.stack([ref[n, :, y:y + 48, x:x + 48] for y in ys for x in xs])
            err, w = model.patch_scores(pd, pr)
            assert err.shape == (6,) and (w > 0).all()
            torch.testing.assert_close(got[n], -(err * w).sum() / w.sum(), rtol=1e-5, atol=1e-6)
        # the chunking of windows does not change the result
        model.chunk = 4
        torch.testing.assert_close(model(dist, ref), got, rtol=1e-5, atol=1e-6)


def test_training_draws_the_configured_number_of_random_windows(monkeypatch):
    model = PieAPPAlexNet(**{**SMALL, "train_patches": 5}).train()
    seen = []
    original = model.patch_scores
    monkeypatch.setattr(model, "patch_scores", lambda pd, pr: seen.append((pd, pr)) or original(pd, pr))
    x = torch.rand(3, 3, 64, 64)
    out = model(0.5 * x, x)
    assert out.shape == (3,) and seen[0][0].shape == (15, 3, 48, 48)
    torch.testing.assert_close(0.5 * seen[0][1], seen[0][0], rtol=0, atol=0)  # the same windows in both images
    assert len({tuple(p[0, :2, 0].tolist()) for p in seen[0][1]}) > 1  # not all at one position
    out.sum().backward()
    assert model.backbone.features[0].weight.grad is not None and model.fc1_score.weight.grad is not None


def test_identical_images_give_one_constant_and_batch_equals_one_by_one():
    model = PieAPPAlexNet(**SMALL).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 56, 64, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        same = model(x, x)
        torch.testing.assert_close(same, same[:1].expand(3), rtol=1e-6, atol=1e-7)
        batch = model(y, x)
        single = torch.cat([model(y[i:i + 1], x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batch, same)
    assert torch.isfinite(model(y[:, :1], x[:, :1])).all()


def test_recipe_loads_and_builds():
    cfg = load_config(ROOT / "recipes" / "pieapp_alexnet_pipal.toml")
    assert (cfg.model.name, cfg.data.dataset, cfg.data.root, cfg.train.loss) == \
        ("pieapp_alexnet", "pipal", "PIPAL", "elo_ce")
    o = cfg.model.options
    assert (o["patch"], o["train_patches"], o["stride"], cfg.data.crop) == (64, 36, 6, 0)
    cfg.model.options["pretrained"] = False
    model, info = build_model(cfg)
    assert isinstance(model, PieAPPAlexNet) and info.kind == "fr"
    assert model.fc1_score.in_features == 31_872  # relu1..5 of a 64x64 window: 64*15^2 + 192*7^2 + 896*3^2
    assert sum(p.numel() for p in model.parameters()) == 19_969_860


def test_bad_input_is_an_input_error():
    model = PieAPPAlexNet(**SMALL).eval()
    x = torch.rand(1, 3, 48, 48)
    with pytest.raises(InputError, match="full-reference"):
        model(x)
    with pytest.raises(InputError, match="one shape"):
        model(x, torch.rand(1, 3, 48, 50))
    with pytest.raises(InputError, match="at least 48x48"):
        model(torch.rand(1, 3, 47, 60), torch.rand(1, 3, 47, 60))
    with pytest.raises(InputError, match="at least 47 pixels"):
        PieAPPAlexNet(pretrained=False, patch=40)
    with pytest.raises(InputError, match="stride must be a positive"):
        PieAPPAlexNet(pretrained=False, stride=0)


# ---------------------------------------------------------------- the learning check

def test_learning_check(synth, tmp_path):
    """Random AlexNet (no ImageNet file here) trained with the rest, one 48-pixel window per 48-pixel image,
    fc1 width 64, PieAPP's pairwise objective (elo_ce), lr 1e-3, 4 epochs."""
    from helpers.learning import learning_run

    options = {"pretrained": False, "hidden": 64, "patch": 48, "train_patches": 1}
    r = learning_run(synth, tmp_path / "run", "pieapp_alexnet", options,
                     **{"train.epochs": 4, "train.loss": "elo_ce", "optim.lr": 1e-3})
    assert r.after >= max(r.before + 0.25, 0.7), r  # measured: 0.17 -> 0.79
