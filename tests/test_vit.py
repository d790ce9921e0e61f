"""ViT (backbones/vit.py): timm's key names and shapes, and timm's forward on the same (seeded) weights.

tests/data/vit_b8_keys.json lists timm 1.0.31's ``vit_base_patch8_224`` state_dict; tests/data/models/
vit_parity.pt holds timm's outputs on seeded weights (benchmarks/parity_ahiq.py, run in the peers'
environment, made both; the weights are rebuilt here from the seeds and key lists it stores).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import DATA

from iqarena import backbones as B
from iqarena.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = json.loads((DATA / "vit_b8_keys.json").read_text())["vit_base_patch8_224"]
RECORD = torch.load(DATA / "models" / "vit_parity.pt", weights_only=True)
_spec = importlib.util.spec_from_file_location("parity_ahiq", Path(__file__).parents[1] / "benchmarks" / "parity_ahiq.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)


def seeded(case: str, **config) -> B.VisionTransformer:
    rec = RECORD[case]
    sd = parity.stand_in(rec["shapes"], RECORD["seeds"][case])
    return B.from_state_dict(lambda: B.VisionTransformer(**config), sd, f"seeded {case}").eval()


@pytest.fixture(scope="module")
def b8():
    return seeded("b8", **B.vit.VIT_B8)


def test_keys_and_shapes_equal_timms_vit_base_patch8_224():
    with torch.device("meta"):
        net = B.vit_base_patch8_224(pretrained=False)
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == KEYS
    with torch.device("meta"):
        top_less = B.vit_base_patch8_224(pretrained=False, include_top=False, depth=5).state_dict()
    assert "head.weight" not in top_less and "blocks.5.norm1.weight" not in top_less
    assert all(KEYS[k] == list(v.shape) for k, v in top_less.items())


def test_vit_b8_equals_timm_with_resampled_position_embeddings(b8):
    """ViT-B/8 (12 blocks) on a 32x32 image: the 28x28 position grid resampled to 4x4 as timm's
    ``dynamic_img_size`` does; logits and the outputs of blocks 0, 4 and 11."""
    rec = RECORD["b8"]
    with torch.no_grad():
        logits = b8(rec["input"])
        blocks = b8.block_outputs(rec["input"], [0, 4, 11])
    torch.testing.assert_close(logits, rec["logits"], atol=1e-4, rtol=1e-4)
    for got, i in zip(blocks, (0, 4, 11)):
        torch.testing.assert_close(got, rec["blocks"][i], atol=1e-4, rtol=1e-4)
    assert logits.shape == (1, 1000) and blocks[0].shape == (1, 1 + 16, 768)


@pytest.mark.parametrize("tag", ["native", "odd"])
def test_small_vit_equals_timm(tag):
    """dim 64, depth 2, patch 8 at its own 32x32 size (batch of 2), and at 44x36: a 4x5 grid (the last 4
    rows and columns fill no patch and are dropped; timm was given the 40x32 part)."""
    net = seeded("small", **RECORD["small_config"])
    rec = RECORD["small"][tag]
    with torch.no_grad():
        torch.testing.assert_close(net(rec["input"]), rec["logits"], atol=1e-5, rtol=1e-5)
        out = net.block_outputs(rec["input"], [1, 0])
    torch.testing.assert_close(out[0], rec["blocks"][1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], rec["blocks"][0], atol=1e-5, rtol=1e-5)
    assert net.grid_size(*rec["input"].shape[-2:]) == {"native": (4, 4), "odd": (4, 5)}[tag]


def test_position_embedding_is_the_stored_one_at_the_native_size_and_resampled_otherwise(b8):
    assert b8.position_embedding(28, 28) is b8.pos_embed
    resampled = b8.position_embedding(14, 7)
    assert resampled.shape == (1, 1 + 98, 768)
    torch.testing.assert_close(resampled[:, :1], b8.pos_embed[:, :1])  # the class token's is kept


def test_batch_equals_one_by_one_and_later_blocks_do_not_change_earlier_outputs():
    net = seeded("small", **RECORD["small_config"])
    x = torch.rand(3, 3, 32, 40)
    with torch.no_grad():
        together = net.block_outputs(x, [0])[0]
        alone = torch.cat([net.block_outputs(x[i:i + 1], [0])[0] for i in range(3)])
        net.blocks[1].mlp.fc2.weight.add_(1.0)
        again = net.block_outputs(x, [0])[0]
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(together, again, atol=0, rtol=0)


def test_weights_load_from_a_file_and_catalogue_name(tmp_path):
    """A timm-layout file of a 2-block ViT-B/8 (head included) loads into the first blocks unchanged."""
    with torch.device("meta"):
        shapes = {k: list(v.shape) for k, v in B.vit_base_patch8_224(pretrained=False, depth=2).state_dict().items()}
    sd = parity.stand_in(list(shapes.items()), 3)
    path = tmp_path / "vit.pth"
    torch.save(sd, path)
    net = B.vit_base_patch8_224(pretrained=path, depth=1, include_top=False)
    assert not net.training and len(net.blocks) == 1
    torch.testing.assert_close(net.blocks[0].attn.qkv.weight, sd["blocks.0.attn.qkv.weight"])
    from iqarena import weights

    e = weights.CATALOGUE["vit_base_patch8_224"]
    assert e.licence.startswith("Apache-2.0") and e.url.startswith("https://huggingface.co/timm/")


def test_bad_settings_and_inputs_are_input_errors():
    with pytest.raises(InputError, match="not divisible"):
        B.VisionTransformer(embed_dim=64, num_heads=5)
    with pytest.raises(InputError, match="multiple of patch_size"):
        B.VisionTransformer(img_size=30, patch_size=8)
    net = B.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2)
    with pytest.raises(InputError, match="at least 8x8"):
        net(torch.rand(1, 3, 7, 16))
    with pytest.raises(InputError, match="block indices"):
        net.block_outputs(torch.rand(1, 3, 16, 16), [2])
