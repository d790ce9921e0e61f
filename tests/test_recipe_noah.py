"""Huawei Noah's Ark (NTIRE 2021 rank 6): the training recipe's loss, elo_mse + plcc + srcc. The spec builds from
the recipe, gives hand-computed values, pairs images across references, and trains tiny_fr on the synthetic set.

The team's code is not public: no parity file."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from iqarena.errors import InputError
from iqarena.models.config import load_config
from iqarena.models.losses import LOSSES, SoftSRCCLoss, build_loss, parse_spec
from iqarena.models.train import build_model

sys.path.insert(0, str(Path(__file__).parent))
import helpers.tiny_models  # noqa: F401  (registers tiny_fr)
from helpers.learning import learning_run

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "noah_pairwise_pipal.toml"


def elo(d: float) -> float:
    """1 / (1 + 10^(-d / 400)): the probability that a score d points higher wins."""
    return 1 / (1 + 10 ** (-d / 400))


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_recipe_loads_and_its_loss_builds():
    cfg = load_config(RECIPE)
    assert cfg.model.name == "iqarena_fr" and cfg.data.dataset == "pipal"
    assert parse_spec(cfg.train.loss) == [(1.0, "elo_mse"), (1.0, "plcc"), (1.0, "srcc")]
    _, info = build_model(load_config(RECIPE, {"model.options": "{pretrained = false}"}))
    assert info.needs_ref
    fn = build_loss(cfg.train.loss)
    assert fn.names == ["elo_mse", "plcc", "srcc"]
    assert LOSSES.resolve("bt_any") == LOSSES.resolve("noah_pairwise") == "elo_mse"


def test_elo_mse_by_hand():
    pred, target = t(1500, 1400, 1300), t(1500, 1400, 1200)
    # pairs (0,1): P = p = elo(100), 0; (0,2): P = elo(200), p = elo(300); (1,2): P = elo(100), p = elo(200)
    want = ((elo(200) - elo(300)) ** 2 + (elo(100) - elo(200)) ** 2) / 3
    assert want == pytest.approx(0.007431, abs=1e-6)
    got = float(build_loss("elo_mse")(pred, target))
    assert got == pytest.approx(want, rel=1e-12)
    # the scale: sigmoid(d / (400 / ln 10)) is Elo's curve of the predictions
    assert float(build_loss("elo_mse", scale=400 / math.log(10))(pred, target)) == pytest.approx(want, rel=1e-12)
    assert float(build_loss("elo_mse")(target, target)) == 0.0


def test_recipe_loss_on_known_numbers():
    pred, target = t(1500, 1400, 1300), t(1500, 1400, 1200)
    # PLCC: centred pred (100, 0, -100), target (133.3, 33.3, -166.7): 30000 / (141.42 * 216.02)
    r = 30000 / (math.sqrt(20000) * math.sqrt(46666.666666666664))
    plcc = (1 - r) / 2
    srcc = float(SoftSRCCLoss()(pred, target))  # the listwise rank term (tests/test_losses.py checks it by hand)
    parts = build_loss(load_config(RECIPE).train.loss).components(pred, target, torch.tensor([0, 1, 2]))
    assert float(parts["plcc"]) == pytest.approx(plcc, rel=1e-12)
    pairwise = ((elo(200) - elo(300)) ** 2 + (elo(100) - elo(200)) ** 2) / 3
    assert float(parts["elo_mse"]) == pytest.approx(pairwise, rel=1e-12)
    assert float(parts["total"]) == pytest.approx(pairwise + plcc + srcc, rel=1e-12)


def test_pairs_cross_references():
    pred, target = t(1500, 1400, 1300), t(1500, 1400, 1200)
    every_image_its_own_reference = torch.tensor([0, 1, 2])
    across = float(build_loss("elo_mse")(pred, target, every_image_its_own_reference))
    assert across == pytest.approx(float(build_loss("elo_mse")(pred, target)), rel=1e-15) and across > 0
    # the same-reference losses see no pair here; across=False behaves as they do
    assert float(build_loss("bradley_terry")(pred, target, every_image_its_own_reference)) == 0.0
    assert float(build_loss("elo_mse", across=False)(pred, target, every_image_its_own_reference)) == 0.0
    two = torch.tensor([0, 0, 1])
    assert float(build_loss("elo_mse", across=False)(pred, target, two)) == pytest.approx(0.0, abs=1e-15)  # (0,1) alone


def test_gradient_and_bad_input():
    pred = t(1500, 1400, 1300).requires_grad_()
    build_loss("elo_mse")(pred, t(1500, 1400, 1200)).backward()
    # the pair (0, 2) wants a larger gap, (1, 2) too: image 2 is pushed down, image 0 up
    assert float(pred.grad[2]) > 0 > float(pred.grad[0])
    with pytest.raises(InputError, match="at least 2"):
        build_loss("elo_mse")(t(1.0), t(2.0))
    with pytest.raises(InputError, match="scale"):
        build_loss("elo_mse", scale=0)


def test_tiny_model_learns_with_the_recipes_loss(synth, tmp_path):
    loss = load_config(RECIPE).train.loss
    r = learning_run(synth, tmp_path / "run", "tiny_fr", {},
                     **{"train.epochs": 10, "optim.lr": "3e-3", "train.loss": loss})
    print(f"noah recipe learning (tiny_fr): {r}")
    assert r.after >= max(r.before + 0.25, 0.7)
