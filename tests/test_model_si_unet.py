"""si_unet (SI Analytics, NTIRE 2021 rank 12): the report's error map by hand, the Hadamard product and global
average pooling, the UNet's shapes at any size, DeepQA's total variation, the recipe, bad input and learning.

The team's code is not public: no parity file; these tests check what the report fixes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import iqarena.models  # noqa: F401  (registers si_unet)
from iqarena.errors import InputError
from iqarena.models.config import load_config
from iqarena.models.losses import build_loss
from iqarena.models.sensitivity_unet import SIUNet, error_map, total_variation
from iqarena.models.train import build_model
from iqarena.ops.color import GRAY_WEIGHTS

sys.path.insert(0, str(Path(__file__).parent))
from helpers.learning import DISTORTIONS, learning_run, synth_set

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "si_unet_pipal.toml"
SMALL = {"width": 4, "depth": 2, "encoder_convs": 2}


def test_error_map_by_hand():
    ref = torch.tensor([[[[0.0, 0.5, 1.0, 0.2]]]], dtype=torch.float64)
    dist = torch.tensor([[[[0.0, 0.5 + 1 / 255, 0.0, 0.7]]]], dtype=torch.float64)
    e = error_map(dist, ref)[0, 0, 0]
    top = math.log(255.0 ** 2)  # log(255^2 / eps), eps = 1
    assert float(e[0]) == pytest.approx(1.0, abs=1e-15)  # no error: log(255^2) / log(255^2)
    assert float(e[1]) == pytest.approx(math.log(1 / (2 / 255 ** 2)) / top, rel=1e-12)  # one grey level: 1 - log 2 / log 255^2
    assert float(e[2]) == pytest.approx(math.log(1 / (1 + 1 / 255 ** 2)) / top, rel=1e-12)  # the largest error, ~ -1.4e-5
    assert float(e[3]) == pytest.approx(math.log(1 / (0.25 + 1 / 255 ** 2)) / top, rel=1e-12)
    assert float(e[1]) == pytest.approx(1 - math.log(2) / top, rel=1e-12)


def test_hadamard_product_and_global_average_pooling():
    """With the sensitivity network replaced by a known map, the score is unstandardise(a * mean(s * e) + b)."""
    torch.manual_seed(0)
    model = SIUNet(**SMALL).eval()
    dist, ref = torch.rand(2, 3, 20, 28, dtype=torch.float64), torch.rand(2, 3, 20, 28, dtype=torch.float64)
    model.double()
    w = torch.tensor(GRAY_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)
    e = error_map((dist * w).sum(1, keepdim=True), (ref * w).sum(1, keepdim=True))
    sens = torch.rand(2, 1, 20, 28, dtype=torch.float64)
    model.net.forward = lambda x: torch.nn.functional.pad(sens, (0, x.shape[-1] - 28, 0, x.shape[-2] - 20))
    model.set_label_stats(1400.0, 100.0)
    with torch.no_grad():
        model.regress.weight.fill_(2.0)
        model.regress.bias.fill_(-0.5)
        got = model(dist, ref)
    want = 1400.0 + 100.0 * (2.0 * (sens * e).mean(dim=(1, 2, 3)) - 0.5)
    assert torch.allclose(got, want, rtol=1e-12)


def test_untrained_map_starts_near_one_and_identical_images_score_its_mean():
    torch.manual_seed(1)
    model = SIUNet(**SMALL).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        sens, err = model.maps(x, x)
    assert torch.equal(err, torch.ones_like(err))
    assert float(sens.mean()) == pytest.approx(1.0, abs=0.2) and float(sens.min()) >= 0
    with torch.no_grad():
        assert float(model(x, x)) == pytest.approx(float(model.regress(sens.mean().view(1, 1))), rel=1e-6)


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (5, 9)])
def test_full_resolution_map_at_any_size(size):
    torch.manual_seed(2)
    model = SIUNet(**SMALL).eval()
    d, r = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    sens, err = model.maps(d, r)
    assert sens.shape == err.shape == (2, 1, *size)
    with torch.no_grad():
        both = model(d, r)
        alone = torch.cat([model(d[i:i + 1], r[i:i + 1]) for i in range(2)])
    assert both.shape == (2,) and torch.allclose(both, alone, atol=1e-6)


def test_grey_input_equals_its_rgb_copy():
    torch.manual_seed(3)
    model = SIUNet(**SMALL).eval()
    g, h = torch.rand(1, 1, 24, 24), torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        assert torch.allclose(model(g, h), model(g.expand(-1, 3, -1, -1), h.expand(-1, 3, -1, -1)), atol=1e-6)


def test_full_size_network():
    torch.manual_seed(0)
    model = SIUNet().eval()
    assert sum(p.numel() for p in model.parameters()) == 10_903_747
    assert len(model.net.down) == 5 and model.net.down[4][0].out_channels == 512
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.net.down[0]) == 3  # the deeper encoder
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.net.merge[0]) == 2


def test_total_variation_and_the_auxiliary_loss():
    ramp = torch.arange(8, dtype=torch.float64).repeat(8, 1)[None, None]  # slope 1 along x
    assert float(total_variation(ramp)) == pytest.approx(8.0 ** 3)  # Sobel response 8, power 3
    assert float(total_variation(torch.ones(1, 1, 6, 6))) == pytest.approx(0.0, abs=1e-12)
    torch.manual_seed(4)
    model = SIUNet(tv_weight=0.01, **SMALL).train()
    model(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    aux = model.auxiliary_loss({})
    assert aux is not None and float(aux.detach()) > 0 and aux.requires_grad
    assert model.auxiliary_loss({}) is None  # the map is not kept past its step
    off = SIUNet(**SMALL).train()
    off(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    assert off.auxiliary_loss({}) is None


def test_bad_input_and_options():
    model = SIUNet(**SMALL).eval()
    with pytest.raises(InputError, match="full-reference"):
        model.score(torch.rand(1, 3, 16, 16), None)
    with pytest.raises(InputError, match="differ in shape"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 20))
    with pytest.raises(InputError, match="tv_weight"):
        SIUNet(tv_weight=-1)
    with pytest.raises(InputError, match="width"):
        SIUNet(width=0)


def test_recipe_loads_and_builds():
    cfg = load_config(RECIPE)
    assert cfg.model.name == "si_unet" and cfg.data.dataset == "pipal" and cfg.train.loss == "mse"
    model, info = build_model(cfg)
    assert info.needs_ref and model.depth == 4 and model.tv_weight == 0.0
    assert cfg.data.oversample_below == 0.2 and cfg.optim.weight_decay > 0
    assert build_loss(cfg.train.loss).names == ["mse"]


@pytest.fixture(scope="module")
def gmsd_set(tmp_path_factory):
    """The learning set's references and distortions, labelled by GMSD: the untrained model is a log-MSE measure
    (its map starts near 1), which the PSNR+SSIM labels of helpers.learning already follow (SRCC 0.88), so the
    check uses labels that weight errors by their structure."""
    from iqarena.datasets.synth import make_synthetic_set

    root = tmp_path_factory.mktemp("synth")
    synth_set(root)
    out = root / "gmsd"
    make_synthetic_set(root / "refs", out, distortions=list(DISTORTIONS), levels=4, label="gmsd", seed=0)
    return out


def test_learns_the_synthetic_set(gmsd_set, tmp_path):
    r = learning_run(gmsd_set, tmp_path / "run", "si_unet", SMALL,
                     **{"train.epochs": 8, "optim.lr": "3e-3", "data.batch_size": 8})
    print(f"si_unet learning: {r}")
    assert r.after >= r.before + 0.03 and r.after >= 0.78
