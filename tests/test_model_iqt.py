"""IQT (team LIPT, NTIRE 2021 rank 1): parity with the public code, what the description fixes, the recipe, input
errors and the learning check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from iqarena import create_metric
from iqarena.backbones import seeded_state_dict
from iqarena.errors import InputError
from iqarena.models import crop_boxes
from iqarena.models import iqt as iqt_module
from iqarena.models.config import load_config
from iqarena.models.iqt import (
    IQT,
    grid_side,
    public_key,
    public_state_dict,
    resize_positions,
)
from iqarena.models.train import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "data" / "models" / "iqt_parity.pt"
RECIPE = ROOT / "recipes" / "iqt_pipal.toml"
SMALL = {"pretrained": False, "blocks": 2, "patch": 48, "dim": 32, "heads": 2, "head_dim": 16, "ff": 64, "mlp": 32,
         "dropout": 0.0, "emb_dropout": 0.0, "test_crop": 0}


def small(**options) -> IQT:
    torch.manual_seed(0)
    return IQT(**{**SMALL, **options}).eval()


def pair(n: int = 2, h: int = 48, w: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, h, w, generator=g)
    return (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1), ref


# ---------------------------------------------------------------- parity with anse3832/IQT and pyiqa 0.1.16

@pytest.fixture(scope="module")
def parity():
    blob = torch.load(PARITY, weights_only=False)
    backbone = seeded_state_dict(dict(blob["backbone_shapes"]), blob["seeds"]["backbone"])
    dist, ref = blob["dist"].float() / 255, blob["ref"].float() / 255
    return blob, backbone, dist, ref


def parity_model(blob, backbone, name: str, **options) -> IQT:
    """Our IQT with the parity script's seeded weights: the backbone under ``backbone.`` (Cadene's names), the
    public ``IQARegression`` tensors through ``public_state_dict``."""
    regressor = seeded_state_dict(dict(blob["regressor_shapes"][name]), blob["seeds"][name])
    model = IQT(pretrained=False, **blob["options"][name], **options).eval()
    sd = {f"backbone.{k}": v for k, v in backbone.items()} | public_state_dict(regressor)
    result = model.load_state_dict(sd, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) == {"label_mean", "label_std"}
    return model


@pytest.mark.parametrize("name", ["pipal", "deep"])
def test_parity_with_public_code(parity, name):
    """float32; the recorded max |diff| is below 1e-8 (docs/models/iqt.md), asserted at 1e-6."""
    blob, backbone, dist, ref = parity
    with torch.no_grad():
        ours = parity_model(blob, backbone, name).score(dist, ref)
    torch.testing.assert_close(ours, blob["anse3832"][name], rtol=0, atol=1e-6)
    if name in blob["pyiqa"]:
        torch.testing.assert_close(ours, blob["pyiqa"][name], rtol=0, atol=1e-6)
    # the two images differ in score by far more than the tolerance: the check discriminates
    assert (blob["anse3832"][name][0] - blob["anse3832"][name][1]).abs() > 1e-4


def test_parity_needs_the_causal_decoder(parity):
    """The public decoder's causal mask matters: without it the same weights give other scores."""
    blob, backbone, dist, ref = parity
    with torch.no_grad():
        free = parity_model(blob, backbone, "pipal", causal_decoder=False).score(dist, ref)
    assert (free - blob["anse3832"]["pipal"]).abs().max() > 1e-4


def test_public_names_cover_the_model(parity):
    blob, _, _, _ = parity
    model = IQT(pretrained=False)
    own = model.state_dict()
    public = {k: torch.zeros(s) for k, s in blob["regressor_shapes"]["pipal"]}
    mapped = public_state_dict(public)
    assert set(mapped) == {k for k in own if not k.startswith("backbone.")} - {"label_mean", "label_std"}
    assert all(mapped[k].shape == own[k].shape for k in mapped)
    # pyiqa's names: a ``regressor.`` prefix, its buffers and the unused backbone tail dropped
    assert public_key("regressor.transformer.decoder.layers.0.dec_enc_attn.W_K.bias") == "decoder.0.cross_attn.k.bias"
    assert public_key("regressor.projection.2.weight") == "head.2.weight"
    assert public_key("backbone.repeat.9.conv2d.weight") == "backbone.repeat.9.conv2d.weight"
    assert public_key("backbone.mixed_6a.branch0.conv.weight") is None
    assert public_key("backbone.classif.weight") is None
    assert public_key("enc_inputs") is None
    # the transformer has exactly the public code's parameter count (PIPAL configuration)
    count = sum(math.prod(s) for _, s in blob["regressor_shapes"]["pipal"])
    assert count == sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))


def test_trained_file_in_public_format(tmp_path, monkeypatch, parity):
    """``trained=FILE`` takes anse3832's checkpoint layout (``model_state_dict``) and loads the transformer;
    the ImageNet backbone comes from the catalogue (here a seeded stand-in)."""
    blob, backbone, _, _ = parity
    real = iqt_module.load_state_dict
    monkeypatch.setattr(iqt_module, "load_state_dict",
                        lambda name: backbone if name == "inception_resnet_v2" else real(name))
    regressor = seeded_state_dict(dict(blob["regressor_shapes"]["pipal"]), 5)
    torch.save({"epoch": 40, "model_state_dict": regressor}, tmp_path / "epoch40.pth")
    model = IQT(trained=str(tmp_path / "epoch40.pth"))
    torch.testing.assert_close(model.enc_pos, regressor["transformer.encoder.pos_embedding"], rtol=0, atol=0)
    torch.testing.assert_close(model.encoder[0].ffn[0].weight,
                               regressor["transformer.encoder.layers.0.pos_ffn.conv1.weight"].squeeze(-1))
    torch.testing.assert_close(model.backbone.conv2d_1a.conv.weight, backbone["conv2d_1a.conv.weight"])
    torch.save({"head.0.weight": torch.zeros(5, 5)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="does not fit"):
        IQT(trained=str(tmp_path / "other.pt"))
    with pytest.raises(InputError, match="no published trained weights"):
        IQT(trained=True)


# ---------------------------------------------------------------- what the description fixes

def test_feature_grid_and_channels():
    assert [grid_side(s) for s in (27, 48, 192, 256, 288, 384, 512)] == [1, 3, 21, 29, 33, 45, 61]
    for blocks, channels in ((0, 320), (2, 640), (10, 1920)):
        f = small(blocks=blocks).features(torch.rand(1, 3, 48, 64))
        assert f.shape == (1, channels, 3, grid_side(64))


def test_taps_are_mixed_5b_and_every_second_block35():
    model = small(blocks=4)
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        f = model.features(x)
        y = x * 2 - 1
        for m in list(model.backbone.children())[:7]:
            y = m(y)
        a = model.backbone.mixed_5b(y)
        b = model.backbone.repeat[1](model.backbone.repeat[0](a))
        c = model.backbone.repeat[3](model.backbone.repeat[2](b))
    torch.testing.assert_close(f, torch.cat([a, b, c], dim=1))


def test_position_embeddings_resize():
    pos = torch.randn(1, 1 + 21 * 21, 8)
    assert resize_positions(pos, 21, 21, 21) is pos
    big = resize_positions(pos, 21, 33, 45)
    assert big.shape == (1, 1 + 33 * 45, 8)
    torch.testing.assert_close(big[:, :1], pos[:, :1], rtol=0, atol=0)  # the quality token's embedding is kept
    # a constant grid stays constant (bicubic weights sum to one)
    flat = torch.cat([pos[:, :1], torch.full((1, 21 * 21, 8), 0.5)], dim=1)
    torch.testing.assert_close(resize_positions(flat, 21, 10, 30)[:, 1:], torch.full((1, 300, 8), 0.5))


def test_causal_decoder_reads_the_reference_only_through_the_difference():
    """C's causal mask: the quality token attends only to itself, so model(x, x) is the same for every x (the
    difference features are zero); the reference tokens reach the score only without the mask."""
    x1, x2 = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        causal = small()
        s1, s2 = causal(x1, x1), causal(x2, x2)
        torch.testing.assert_close(s1, s2, rtol=0, atol=1e-6)
        torch.testing.assert_close(s1[0], s1[1], rtol=0, atol=1e-6)
        free = small(causal_decoder=False)
        f1, f2 = free(x1, x1), free(x2, x2)
    assert (f1 - f2).abs().max() > 1e-5
    # the causal shortcut (decoding the quality token alone) equals decoding every token under the mask
    d, r = pair()
    n = d.shape[0]
    with torch.no_grad():
        f = causal.features(torch.cat([d, r]))
        memory = causal.tokens(f[n:] - f[:n], causal.embed_enc, causal.enc_token, causal.enc_pos)
        for layer in causal.encoder:
            memory = layer(memory)
        y = causal.tokens(f[n:], causal.embed_dec, causal.dec_token, causal.dec_pos)
        mask = torch.ones(y.shape[1], y.shape[1], dtype=torch.bool).tril()
        for layer in causal.decoder:
            a = layer.self_attn
            q, k, v = (t.unflatten(-1, (a.heads, a.head_dim)).transpose(1, 2) for t in (a.q(y), a.k(y), a.v(y)))
            att = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            y = layer.norm1(y + a.out(att.transpose(1, 2).flatten(2)))
            y = layer.norm2(y + layer.cross_attn(y, memory))
            y = layer.norm3(y + layer.ffn(y))
        full = causal.unstandardise(causal.head(y[:, 0]).squeeze(1))
    torch.testing.assert_close(causal(d, r), full, rtol=1e-5, atol=1e-6)


def test_shapes_and_test_crops():
    model = small(test_crop=48, test_crops=4)
    for h, w in ((288, 288), (384, 512), (48, 48)):
        d, r = pair(1 if h > 48 else 2, h, w)
        with torch.no_grad():
            assert model(d, r).shape == d.shape[:1]
            assert model.score(d, r).shape == d.shape[:1]  # the whole image: position embeddings resized
    # the ensemble is the mean of the crops' scores
    d, r = pair(1, 64, 80)
    with torch.no_grad():
        boxes = crop_boxes(64, 80, 48, "random", 4)
        mean = sum(model.score(d[..., y:y + 48, x:x + 48], r[..., y:y + 48, x:x + 48]) for y, x in boxes) / 4
        torch.testing.assert_close(model(d, r), mean)


def test_batch_equals_one_by_one_and_grey():
    model = small(test_crop=48, test_crops=3)
    d, r = pair(3, 56, 60)
    with torch.no_grad():
        together = model(d, r)
        alone = torch.cat([model(d[i:i + 1], r[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
        grey = model(d[:, :1], r[:, :1])
        torch.testing.assert_close(grey, model(d[:, :1].expand(-1, 3, -1, -1), r[:, :1].expand(-1, 3, -1, -1)))


def test_frozen_backbone_and_gradients():
    model = small().train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    d, r = pair()
    model(d, r).sum().backward()
    assert model.embed_enc.weight.grad.abs().sum() > 0 and model.head[2].weight.grad.abs().sum() > 0
    assert model.embed_dec.weight.grad is None  # C's causal decoder never reads the reference tokens
    trained = small(train_backbone=True).train()
    trained(d, r).sum().backward()
    assert trained.backbone.repeat[1].conv2d.weight.grad.abs().sum() > 0
    # gradients reach the input (IQT as a loss) with a frozen backbone
    d = d.clone().requires_grad_(True)
    small()(d, r).sum().backward()
    assert d.grad.abs().sum() > 0


def test_batch_norm_statistics():
    """A random backbone's batch norm learns statistics in training; an ImageNet one stays frozen."""
    assert small().frozen_batchnorm is False
    model = small().train()
    before = model.backbone.conv2d_1a.bn.running_mean.clone()
    with torch.no_grad():
        model(*pair())
    assert not torch.equal(before, model.backbone.conv2d_1a.bn.running_mean)


def test_full_size_model():
    model = IQT(pretrained=False)
    assert model.side == 21 and model.enc_pos.shape == (1, 442, 128)
    assert sum(p.numel() for p in model.parameters()) == 3_613_664
    assert sum(p.numel() for p in model.backbone.parameters()) == 1_672_672


# ---------------------------------------------------------------- recipe and input errors

def test_recipe_loads_and_builds():
    cfg = load_config(RECIPE)
    opts = cfg.model.options
    assert cfg.model.name == "iqt" and cfg.data.dataset == "pipal" and cfg.data.root == "PIPAL"
    assert cfg.data.crop == opts["patch"] == opts["test_crop"] == 192
    assert (opts["test_layout"], opts["test_crops"], cfg.train.loss) == ("random", 20, "mse")
    cfg.model.options = {**opts, "pretrained": False}
    model, info = build_model(cfg)
    assert isinstance(model, IQT) and info.kind == "fr" and info.needs_ref
    assert (model.side, len(model.encoder), model.test_crops) == (21, 1, 20)
    assert info.min_side(cfg.model.options) == 192


def test_bad_input():
    model = small()
    d, r = pair()
    with pytest.raises(InputError, match="full-reference"):
        model(d)
    with pytest.raises(InputError, match="same shape"):
        model(d, r[..., :40])
    with pytest.raises(InputError, match="at least 27x27"):
        model(d[..., :20, :20], r[..., :20, :20])
    with pytest.raises(InputError, match="channels"):
        model(d[:, :2], r[:, :2])
    with pytest.raises(InputError, match="larger than the image"):
        small(test_crop=64)(d, r)
    # as a registered metric: the recipe's 192-pixel test crops need images of at least 192 pixels
    metric = create_metric("iqt", pretrained=False, blocks=0, dim=8, heads=1, head_dim=8, ff=8, mlp=8)
    with pytest.raises(InputError, match="192"):
        metric(*pair(1, 100, 100))
    assert metric(*pair(1, 192, 200)).shape == (1,)
    with pytest.raises(InputError, match="even number"):
        IQT(pretrained=False, blocks=3)
    with pytest.raises(InputError, match="patch"):
        IQT(pretrained=False, patch=20)


# ---------------------------------------------------------------- the learning check

def test_learning(synth, tmp_path):
    """The small setting from scratch (random backbone with 2 Block35, batch norm learning its statistics,
    a 32-wide transformer) learns the synthetic labels on held-out references; MSE as the recipe, lr 2e-3."""
    from helpers.learning import learning_run

    r = learning_run(synth, tmp_path / "run", "iqt", SMALL,
                     **{"train.epochs": 8, "train.loss": "mse", "optim.lr": "2e-3"})
    print(f"iqt learning check: SRCC {r.before:.3f} -> {r.after:.3f}, {r.epochs} epochs, "
          f"{r.seconds_per_epoch:.2f} s/epoch")
    assert r.after >= max(r.before + 0.25, 0.7)
