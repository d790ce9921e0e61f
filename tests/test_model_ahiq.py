"""AHIQ (models/ahiq.py): parity with the authors' modules and pyiqa's model on seeded weights, what the
architecture fixes, the recipe, errors, and the learning check.

tests/data/models/ahiq_parity.pt was made by benchmarks/parity_ahiq.py in the peers' environment: the
authors' deform_fusion and Pixel_Prediction (github.com/IIGROUP/AHIQ, MIT) wired as their train.py does on
timm's ViT-B/8 and ResNet-50, and pyiqa 0.1.16's AHIQ, all with seeded weights; it stores the inputs, their
outputs and the ordered key lists and seeds that rebuild the weights here (no weights).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import DATA

from iqarena.errors import InputError
from iqarena.metrics import get_info
from iqarena.models.ahiq import AHIQ, authors_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).parents[1]
RECORD = torch.load(DATA / "models" / "ahiq_parity.pt", weights_only=True)
_spec = importlib.util.spec_from_file_location("parity_ahiq", ROOT / "benchmarks" / "parity_ahiq.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)

SMALL = {"pretrained": False, "vit_dim": 64, "vit_heads": 4, "vit_blocks": [0, 1], "img_size": 48,
         "cnn": "resnet18", "cnn_blocks": 2, "fuse_hidden": 32, "channels": 32, "hidden": 64}


def small(**kw) -> AHIQ:
    torch.manual_seed(0)
    return AHIQ(**{**SMALL, **kw}).eval()


@pytest.fixture(scope="module")
def full():
    """The full-size AHIQ with the parity script's seeded weights (their names mapped by authors_state_dict)."""
    return parity.ours_ahiq(RECORD)


def test_full_size_equals_the_authors_modules_on_timm_backbones(full):
    """Two 64x64 pairs: scores, score maps and weight maps (float32; the maps reach |13|)."""
    m = RECORD["modules"]
    with torch.no_grad():
        s, w = full.score_maps(m["dist"], m["ref"])
        score = full(m["dist"], m["ref"])
    torch.testing.assert_close(s, m["score_map"], atol=5e-4, rtol=1e-4)
    torch.testing.assert_close(w, m["weight_map"], atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(score, m["score"], atol=1e-4, rtol=1e-4)
    assert s.shape == w.shape == (2, 1, 8, 8)


@pytest.mark.slow
def test_full_size_equals_pyiqa_at_224(full):
    """pyiqa's AHIQ end to end on one 224x224 pair (about 10 s on one thread)."""
    p = RECORD["pyiqa"]
    dist = parity.uniform((1, 3, 224, 224), p["input_seed"])
    ref = 0.5 * dist + 0.5 * parity.uniform((1, 3, 224, 224), p["input_seed"] + 1)
    with torch.no_grad():
        torch.testing.assert_close(full(dist, ref), p["score"], atol=1e-4, rtol=1e-4)


def test_only_the_fusion_and_head_train_and_they_match_the_authors_in_size(full):
    trained = {n: p.numel() for n, p in full.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trained} == {"deform_net", "regressor"}
    theirs = sum(torch.Size(s).numel() for part in ("deform_net", "regressor") for _, s in RECORD["parts"][part])
    assert sum(trained.values()) == theirs == 27_168_788
    assert len(full.vit.blocks) == 5 and not hasattr(full.cnn, "layer2")  # nothing after what is used


def test_key_mapping_from_pyiqa_and_from_the_authors_checkpoint():
    assert authors_state_dict({"resnet50.layer1.0.conv1.weight": 1, "vit.blocks.0.norm1.weight": 2,
                               "regressor.conv.0.bias": 3}) == \
        {"cnn.layer1.0.conv1.weight": 1, "vit.blocks.0.norm1.weight": 2, "regressor.conv.0.bias": 3}
    ckpt = {"epoch": 33, "regressor_model_state_dict": {"conv.0.bias": 1},
            "deform_net_model_state_dict": {"deform.weight": 2}}
    assert authors_state_dict(ckpt) == {"regressor.conv.0.bias": 1, "deform_net.deform.weight": 2}


def test_score_is_the_weighted_mean_of_the_score_map_on_the_labels_scale():
    net = small()
    net.set_label_stats(1400.0, 120.0)
    d, r = torch.rand(2, 3, 48, 40), torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        s, w = net.score_maps(d, r)
        score = net(d, r)
    assert s.shape == w.shape == (2, 1, 6, 5) and bool((w > 0).all() and (w < 1).all())
    want = (s * w).sum((1, 2, 3)) / w.sum((1, 2, 3)) * 120.0 + 1400.0
    torch.testing.assert_close(score, want)


def test_offsets_come_from_the_reference_alone():
    """The deformable convolution's offsets are predicted from the reference's ViT map, for both images."""
    net = small()
    seen = []
    net.deform_net.conv_offset.register_forward_hook(lambda m, i, o: seen.append(o))
    r = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        net(torch.rand(1, 3, 32, 32), r)
        net(torch.rand(1, 3, 32, 32), r)
    assert seen[0].shape == (2, 18, 8, 8)  # dist and ref CNN maps (H/4), one offset pair per 3x3 tap
    torch.testing.assert_close(seen[0], seen[1], atol=0, rtol=0)
    torch.testing.assert_close(seen[0][0], seen[0][1], atol=0, rtol=0)


def test_identical_images_give_zero_difference_features():
    net = small()
    seen = []
    net.regressor.down_channel.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        score = net(x, x)
    torch.testing.assert_close(seen[0], seen[1], atol=0, rtol=0)
    assert torch.isfinite(score).all()


def test_batch_equals_one_by_one_grey_equals_rgb_and_odd_sizes_are_cut():
    net = small()
    d, r = torch.rand(3, 3, 45, 50), torch.rand(3, 3, 45, 50)
    with torch.no_grad():
        together = net(d, r)
        alone = torch.cat([net(d[i:i + 1], r[i:i + 1]) for i in range(3)])
        cut = net(d[..., :40, :48], r[..., :40, :48])
        grey = net(d[:, :1], r[:, :1])
        grey_rgb = net(d[:, :1].expand(-1, 3, -1, -1), r[:, :1].expand(-1, 3, -1, -1))
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together, cut, atol=0, rtol=0)
    torch.testing.assert_close(grey, grey_rgb, atol=0, rtol=0)


def test_test_crops_average_the_crop_scores():
    net = small(test_crop=32, test_layout="five")
    d, r = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        ens = net(d, r)
        crops = [net.score(d[..., y:y + 32, x:x + 32], r[..., y:y + 32, x:x + 32])
                 for y, x in ((0, 0), (0, 16), (16, 0), (16, 16), (8, 8))]
    torch.testing.assert_close(ens, sum(crops) / 5)
    assert get_info("ahiq").min_side({"test_crop": 224}) == 224 and get_info("ahiq").min_side() == 8


def test_bad_input_and_options_are_input_errors():
    net = small()
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(InputError, match="full-reference"):
        net(x)
    with pytest.raises(InputError, match="same shape"):
        net(x, torch.rand(1, 3, 32, 40))
    with pytest.raises(InputError, match="at least 8x8"):
        net(torch.rand(1, 3, 7, 32), torch.rand(1, 3, 7, 32))
    with pytest.raises(InputError, match="RGB or grey"):
        net(torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32))
    for bad, match in (({"patch_size": 12}, "patch_size"), ({"cnn": "vgg16"}, "cnn must be"),
                       ({"cnn_blocks": 3}, "cnn_blocks"), ({"vit_blocks": []}, "vit_blocks")):
        with pytest.raises(InputError, match=match):
            small(**bad)


def test_pretrained_backbones_and_trained_part_load_from_files(tmp_path):
    """Stand-in ImageNet files in timm's and torchvision's layouts (later blocks and stages included) load into
    the backbones; an authors'-format checkpoint loads the trained part; a foreign file is refused."""
    with torch.device("meta"):
        from iqarena.backbones import VisionTransformer

        vit_keys = {k: list(v.shape) for k, v in VisionTransformer(img_size=48, patch_size=8, embed_dim=64, depth=4,
                                                                     num_heads=4).state_dict().items()}
    resnet18 = json.loads((DATA / "backbone_keys.json").read_text())["resnet18"]
    vit_file, cnn_file = tmp_path / "vit.pth", tmp_path / "resnet18.pth"
    vit_sd, cnn_sd = parity.stand_in(list(vit_keys.items()), 1), parity.stand_in(list(resnet18.items()), 2)
    torch.save(vit_sd, vit_file)
    torch.save(cnn_sd, cnn_file)
    net = small(pretrained=True, vit_weights=str(vit_file), cnn_weights=str(cnn_file))
    torch.testing.assert_close(net.vit.blocks[1].mlp.fc1.weight, vit_sd["blocks.1.mlp.fc1.weight"])
    torch.testing.assert_close(net.cnn.layer1[1].bn2.running_var, cnn_sd["layer1.1.bn2.running_var"])
    assert not any(p.requires_grad for p in [*net.vit.parameters(), *net.cnn.parameters()])

    other = small()
    ckpt = {"epoch": 3, "loss": 0.5,
            "regressor_model_state_dict": {k[len("regressor."):]: v + 1 for k, v in other.state_dict().items()
                                           if k.startswith("regressor.")},
            "deform_net_model_state_dict": {k[len("deform_net."):]: v for k, v in other.state_dict().items()
                                            if k.startswith("deform_net.")}}
    torch.save(ckpt, tmp_path / "epoch3.pth")
    net.load_trained(tmp_path / "epoch3.pth")
    torch.testing.assert_close(net.regressor.conv[0].bias, other.regressor.conv[0].bias + 1)
    torch.save({"regressor.conv.0.weight": torch.zeros(1, 7, 1, 1)}, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="does not fit"):
        net.load_trained(tmp_path / "wrong.pth")


def test_recipe_loads_and_builds():
    from iqarena.models.config import load_config
    from iqarena.models.train import build_model

    cfg = load_config(ROOT / "recipes" / "ahiq_pipal.toml")
    cfg.model.options["pretrained"] = False  # no ImageNet files here
    assert cfg.data.dataset == "pipal" and cfg.data.crop == 224 and cfg.train.loss == "mse"
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.data.batch_size) == (1e-4, 1e-5, 4)
    model, info = build_model(cfg)
    assert info.name == "ahiq" and isinstance(model, AHIQ)
    assert (model.test_crop, model.test_layout, model.test_crops) == (224, "random", 20)
    assert model.vit_blocks == (0, 1, 2, 3, 4) and model.cnn_blocks == 3
    assert sum(p.numel() for p in model.parameters()) == 63_585_364  # 27,168,788 of them train


def test_learning_check(synth, tmp_path):
    """The small setting from scratch (frozen random ViT and ResNet-18 stem, as the real model freezes its
    backbones): the fusion and head learn the synthetic labels in 5 epochs."""
    from helpers.learning import learning_run

    r = learning_run(synth, tmp_path / "run", "ahiq", dict(SMALL), **{"train.epochs": 5})
    assert r.after >= max(r.before + 0.25, 0.7), r
