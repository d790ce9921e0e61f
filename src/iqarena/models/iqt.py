"""IQT: the image quality transformer of team LIPT, rank 1 of the NTIRE 2021 Perceptual IQA challenge.

Cheon, Yoon, Kang, Lee, "Perceptual Image Quality Assessment with Transformers", CVPR Workshops 2021
(arXiv 2104.14730); the challenge report (Gu et al., NTIRE 2021 Perceptual IQA challenge, Section 5.1,
Figure 5; PIPAL test SRCC 0.7990, PLCC 0.7896, main score 1.5885).

Code: the authors published none. github.com/anse3832/IQT is an unofficial implementation (no licence
file) with a "model for PIPAL (NTIRE2021 Challenge)" configuration; pyiqa 0.1.16's ``archs/iqt_arch.py``
(non-commercial licence) copies its network. This file is written from the paper, the report and that
code's structure; benchmarks/parity_iqt.py checks it against both (float32, max |diff| in docs/models/iqt.md).

Architecture. Inception-ResNet-v2 (ImageNet, Cadene's keys, inputs scaled to [-1, 1]) maps the distorted
and the reference image; the outputs of mixed_5b and of the 2nd, 4th, 6th, 8th and 10th Block35 are
concatenated (6 x 320 = 1920 channels on the 35x35-type grid: 21x21 for a 192-pixel crop, 29x29 for
256). The encoder takes the difference ``f_ref - f_dist``, the decoder the reference features, each
projected to ``dim`` by its own 1x1 convolution, flattened to tokens, prefixed by a learned quality token
(the "extra quality embedding") and added to learned position embeddings. Encoder and decoder layers
are post-norm transformer layers (multi-head attention, a GELU MLP, LayerNorm eps 1e-12; the decoder
adds cross-attention to the encoder's output). The decoder's quality token goes through a two-layer
head (Linear without bias, ReLU, Linear without bias) to the score. The backbone is frozen.

Choices where the description leaves them open (the sources: report R, paper P, public code C):

- Sizes: C's PIPAL configuration (192-pixel crops, 1 layer each, ``dim`` 128, 4 heads of 128, MLP
  1024, head 128, dropout 0.1). P's standard-dataset setting is 256-pixel crops, 2 layers, ``dim``
  256, head 512 (C's LIVE configuration); R says 256-pixel patches for the challenge entry. Both are
  options (``patch``, ``layers``, ``dim``, ``head_dim``, ``mlp``).
- Decoder self-attention: C masks it causally (the standard transformer decoder's mask). The quality
  token is the first token, so it attends only to itself: the reference-feature tokens then never
  reach the score, which depends on the reference only through ``f_ref - f_dist``. ``causal_decoder``
  (default True, as C) keeps that; the decoder then runs on the quality token alone, which gives the
  same numbers (the mask leaves that token nothing else). ``causal_decoder=False`` lets the quality
  token attend to the reference tokens, as P's figure suggests.
- Sizes other than ``patch``: the position embeddings are laid out for the ``patch`` grid; for another
  feature grid (a whole 288x288 PIPAL image: 33x33; 512x384: 45x61) their grid part is resized
  bicubically (the quality token's embedding is kept), as ViT does. C instead always scores crops of
  ``patch`` pixels; so does the recipe (``test_crop``).
- Test-time ensemble: M = 20 crops of 192 pixels at seeded random positions (C's test.py draws 20 random
  positions per image; here the same seeded positions for every image of a size), averaged.
- Batch norm of the frozen backbone stays in inference mode in training (C leaves the backbone module in
  training mode, so its batch statistics move while training; a choice of C's code, not of P). A random
  backbone (``pretrained=False``, the CPU learning check) learns its batch-norm statistics in training.
- Initialisation: position embeddings and quality tokens N(0, 1) as C; other layers torch's defaults.
- Small setting for CPU checks: ``blocks`` (Block35 repeats kept: taps are mixed_5b and every second
  block, so 2 blocks give 640 channels) and small ``dim``/``heads``/``head_dim``/``ff``/``mlp``.

``public_state_dict`` converts C's ``IQARegression`` checkpoints (``model_state_dict``) and pyiqa's ``IQT``
state_dict to this module's names; ``trained=FILE`` accepts them as well as this model's own files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..backbones import load_weights
from ..backbones.inception_resnet_v2 import Block35, add_stem, stem_mixed_5b
from ..errors import InputError
from ..metrics.registry import register
from ..weights import load_state_dict
from .base import IQAModel, check_pair

CHANNELS = 320  # mixed_5b and every Block35
LN_EPS = 1e-12  # C's layer_norm_epsilon
MIN_SIDE = 27  # the stem's valid convolutions and pools leave a 1x1 map at 27 pixels


def grid_side(size: int) -> int:
    """Side of the mixed_5b grid for an input side: the stem's stride-2 3x3 conv, 3x3 conv, 3x3/2 pool, 3x3 conv,
    3x3/2 pool (all without padding)."""
    s = (size - 3) // 2 + 1
    s = s - 2
    s = (s - 3) // 2 + 1
    s = s - 2
    return (s - 3) // 2 + 1


class Features(nn.Module):
    """Inception-ResNet-v2 up to its 35x35-type grid (stem, mixed_5b, ``blocks`` Block35), with Cadene's keys;
    ``forward`` returns mixed_5b and every second Block35 output, concatenated (320 x (1 + blocks / 2))."""

    def __init__(self, blocks: int = 10):
        super().__init__()
        add_stem(self)
        self.repeat = nn.Sequential(*[Block35(0.17) for _ in range(blocks)])
        self.channels = CHANNELS * (1 + blocks // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = stem_mixed_5b(self, x)
        taps = [x]
        for i, block in enumerate(self.repeat, start=1):
            x = block(x)
            if i % 2 == 0:
                taps.append(x)
        return torch.cat(taps, dim=1)


class Attention(nn.Module):
    """Multi-head attention with ``heads`` heads of ``head_dim`` (C: ``n_head * d_head`` may differ from ``dim``);
    dropout on the attention weights and on the output."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.p = heads, head_dim, dropout
        self.q = nn.Linear(dim, heads * head_dim)
        self.k = nn.Linear(dim, heads * head_dim)
        self.v = nn.Linear(dim, heads * head_dim)
        self.out = nn.Linear(heads * head_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        def split(t):  # (N, L, heads * head_dim) -> (N, heads, L, head_dim)
            return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(context)), split(self.v(context)),
                                           dropout_p=self.p if self.training else 0.0)
        return self.drop(self.out(y.transpose(1, 2).flatten(2)))


def mlp(dim: int, ff: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Linear(ff, dim), nn.Dropout(dropout))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, ff: int, dropout: float):
        super().__init__()
        self.attn = Attention(dim, heads, head_dim, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ffn = mlp(dim, ff, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, x))
        return self.norm2(x + self.ffn(x))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(dim, heads, head_dim, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.cross_attn = Attention(dim, heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ffn = mlp(dim, ff, dropout)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, y: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        y = self.norm1(y + self.self_attn(y, y))
        y = self.norm2(y + self.cross_attn(y, memory))
        return self.norm3(y + self.ffn(y))


def resize_positions(pos: torch.Tensor, side: int, h: int, w: int) -> torch.Tensor:
    """(1, 1 + side^2, D) position embeddings for an (h, w) grid: the grid part resized bicubically."""
    if (h, w) == (side, side):
        return pos
    grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    return torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


@register("iqt", kind="fr", higher_better=True, score_range=(-math.inf, math.inf), family="model",
          weights=("inception_resnet_v2",), trained=False,
          paper="Cheon, Yoon, Kang, Lee, 'Perceptual Image Quality Assessment with Transformers', CVPRW 2021 "
                "(arXiv 2104.14730); team LIPT, rank 1 of NTIRE 2021 Perceptual IQA",
          code="unofficial: https://github.com/anse3832/IQT (no licence file); src/iqarena/models/iqt.py",
          colour="RGB; grey repeated to three channels",
          min_size=lambda o: max(MIN_SIDE, o["test_crop"]),
          size_note="Inception-ResNet-v2's stem (27 px give a 1x1 feature map) and the test crop (test_crop)")
class IQT(IQAModel):
    """Full-reference quality (higher is better): a transformer over Inception-ResNet-v2 features of
    ``ref - dist`` (encoder) and ``ref`` (decoder), read from a learned quality token."""

    kind = "fr"

    def __init__(self, trained: bool | str = False, pretrained: bool = True, train_backbone: bool = False,
                 blocks: int = 10, patch: int = 192, dim: int = 128, heads: int = 4, head_dim: int = 128,
                 ff: int = 1024, layers: int = 1, mlp: int = 128, dropout: float = 0.1, emb_dropout: float = 0.1,
                 causal_decoder: bool = True, test_crop: int = 192, test_layout: str = "random",
                 test_crops: int = 20):
        super().__init__(test_crop, test_layout, test_crops)
        if blocks not in range(0, 11, 2):
            raise InputError(f"blocks must be an even number of Block35 repeats 0..10, got {blocks}.")
        if patch < MIN_SIDE:
            raise InputError(f"patch must be at least {MIN_SIDE} pixels (the stem's smallest input), got {patch}.")
        if min(dim, heads, head_dim, ff, layers, mlp) < 1:
            raise InputError("dim, heads, head_dim, ff, layers and mlp must be positive.")
        self.backbone = Features(blocks)
        if pretrained or trained:
            load_weights(self.backbone, load_state_dict("inception_resnet_v2"), "Inception-ResNet-v2 weights")
        self.train_backbone = bool(train_backbone)
        self.backbone.requires_grad_(self.train_backbone)
        # a random backbone's batch norm learns its statistics in training (else its features are ~1e-3 of the
        # position embeddings); ImageNet statistics stay as they are
        self.frozen_batchnorm = bool(pretrained or trained)
        self.side = grid_side(patch)
        self.causal_decoder = bool(causal_decoder)
        c = self.backbone.channels
        self.embed_enc = nn.Conv2d(c, dim, 1)
        self.embed_dec = nn.Conv2d(c, dim, 1)
        tokens = 1 + self.side * self.side
        self.enc_token = nn.Parameter(torch.randn(1, 1, dim))
        self.enc_pos = nn.Parameter(torch.randn(1, tokens, dim))
        self.dec_token = nn.Parameter(torch.randn(1, 1, dim))
        self.dec_pos = nn.Parameter(torch.randn(1, tokens, dim))
        self.emb_drop = nn.Dropout(emb_dropout)
        self.encoder = nn.ModuleList(EncoderLayer(dim, heads, head_dim, ff, dropout) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderLayer(dim, heads, head_dim, ff, dropout) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(dim, mlp, bias=False), nn.ReLU(), nn.Linear(mlp, 1, bias=False))
        if trained:
            if trained is True:
                raise InputError("IQT has no published trained weights in iqarena's catalogue; give trained=FILE "
                                 "(a run's trained part, or anse3832/IQT's or pyiqa's IQT checkpoint).")
            self.load_trained(trained)

    def load_trained(self, source: str | Path) -> None:
        """Load a file of trained tensors: this model's names, or the public code's (``public_state_dict``)."""
        sd = load_state_dict(source)
        if "model_state_dict" in sd:  # a checkpoint of anse3832/IQT's train.py
            sd = sd["model_state_dict"]
        sd = public_state_dict(sd)
        own = self.state_dict()
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items()
                 if k in own and v.shape != own[k].shape]
        if wrong:
            raise InputError(f"{source} does not fit these IQT options: {'; '.join(wrong[:3])}.")
        result = self.load_state_dict(sd, strict=False)
        if result.unexpected_keys:
            raise InputError(f"{source} holds tensors IQT does not have ({', '.join(result.unexpected_keys[:3])}); "
                             "is it the trained part of another model?")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 320 x (1 + blocks / 2), h, w): the concatenated backbone taps of images in [0, 1]."""
        x = x.expand(-1, 3, -1, -1) * 2 - 1  # C's Normalize(0.5, 0.5)
        if self.train_backbone or x.requires_grad:
            return self.backbone(x)
        with torch.no_grad():
            return self.backbone(x)

    def tokens(self, f: torch.Tensor, embed: nn.Conv2d, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(N, 1 + h w, dim): the quality token and the projected feature map, plus position embeddings."""
        h, w = f.shape[-2:]
        x = embed(f).flatten(2).transpose(1, 2)
        x = torch.cat([token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.emb_drop(x + resize_positions(pos, self.side, h, w))

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("IQT", dist, ref, MIN_SIDE, "Inception-ResNet-v2's stem")
        n = dist.shape[0]
        f = self.features(torch.cat([dist, ref]))
        f_dist, f_ref = f[:n], f[n:]
        memory = self.tokens(f_ref - f_dist, self.embed_enc, self.enc_token, self.enc_pos)
        for layer in self.encoder:
            memory = layer(memory)
        if self.causal_decoder:  # the quality token attends only to itself: the other tokens cannot reach it
            y = self.emb_drop((self.dec_token + self.dec_pos[:, :1]).expand(n, -1, -1))
        else:
            y = self.tokens(f_ref, self.embed_dec, self.dec_token, self.dec_pos)
        for layer in self.decoder:
            y = layer(y, memory)
        return self.unstandardise(self.head(y[:, 0]).squeeze(1))


# ---------------------------------------------------------------- the public code's parameter names

_LAYER = [("self_attn.W_Q.", "attn.q."), ("self_attn.W_K.", "attn.k."), ("self_attn.W_V.", "attn.v."),
          ("self_attn.linear.", "attn.out."), ("layer_norm1.", "norm1."), ("layer_norm2.", "norm2."),
          ("pos_ffn.conv1.", "ffn.0."), ("pos_ffn.conv2.", "ffn.2.")]
_DEC_LAYER = [("self_attn.W_Q.", "self_attn.q."), ("self_attn.W_K.", "self_attn.k."),
              ("self_attn.W_V.", "self_attn.v."), ("self_attn.linear.", "self_attn.out."),
              ("dec_enc_attn.W_Q.", "cross_attn.q."), ("dec_enc_attn.W_K.", "cross_attn.k."),
              ("dec_enc_attn.W_V.", "cross_attn.v."), ("dec_enc_attn.linear.", "cross_attn.out."),
              ("layer_norm1.", "norm1."), ("layer_norm2.", "norm2."), ("layer_norm3.", "norm3."),
              ("pos_ffn.conv1.", "ffn.0."), ("pos_ffn.conv2.", "ffn.2.")]
_TOP = {"conv_enc.weight": "embed_enc.weight", "conv_enc.bias": "embed_enc.bias",
        "conv_dec.weight": "embed_dec.weight", "conv_dec.bias": "embed_dec.bias",
        "transformer.encoder.cls_token": "enc_token", "transformer.encoder.pos_embedding": "enc_pos",
        "transformer.decoder.cls_token": "dec_token", "transformer.decoder.pos_embedding": "dec_pos",
        "projection.0.weight": "head.0.weight", "projection.2.weight": "head.2.weight"}
_BACKBONE_KEPT = ("conv2d_1a.", "conv2d_2a.", "conv2d_2b.", "conv2d_3b.", "conv2d_4a.", "mixed_5b.", "repeat.")


def public_key(key: str) -> str | None:
    """This module's name for a parameter of anse3832/IQT's ``IQARegression`` or of pyiqa's ``IQT`` (prefix
    ``regressor.``; its timm backbone under ``backbone.`` has Cadene's names); None for tensors IQT does not
    use (the backbone beyond Block35, pyiqa's ``enc_inputs``/``dec_inputs`` buffers)."""
    if key.startswith("backbone."):
        rest = key[len("backbone."):]
        return key if rest.startswith(_BACKBONE_KEPT) else None
    key = key.removeprefix("regressor.")
    if key in _TOP:
        return _TOP[key]
    m = re.fullmatch(r"transformer\.(encoder|decoder)\.layers\.(\d+)\.(.+)", key)
    if m is None:
        return None if key in ("enc_inputs", "dec_inputs") else key
    part, i, rest = m.groups()
    for old, new in (_LAYER if part == "encoder" else _DEC_LAYER):
        if rest.startswith(old):
            return f"{part}.{i}.{new}{rest[len(old):]}"
    return key


def public_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` with the public code's names mapped to this module's (``public_key``; the MLP's 1x1 Conv1d
    weights squeezed to Linear weights); this module's own names pass through unchanged."""
    out = {}
    for k, v in sd.items():
        new = public_key(k)
        if new is None:
            continue
        if ".ffn." in new and new.endswith("weight") and v.ndim == 3:
            v = v.squeeze(-1)
        out[new] = v
    return out
