"""Vision Transformer (ViT), timm's layout: ``vit_base_patch8_224`` (ViT-B/8) and smaller settings.

Dosovitskiy et al., "An image is worth 16x16 words: Transformers for image recognition at scale", ICLR 2021;
the ImageNet weights are the AugReg ones (Steiner et al., "How to train your ViT?", TMLR 2022), published by
Google (github.com/google-research/vision_transformer, Apache-2.0) and converted to PyTorch by timm.

Parameter names and shapes equal timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.N.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``norm``, ``head``), so timm's
file loads as it is (tests/test_vit.py checks the keys against timm 1.0.31 and the forward against timm's
model). Pre-norm blocks, LayerNorm eps 1e-6, exact (erf) GELU, a class token, absolute position embeddings.

Inputs of another size than ``img_size``: the patch grid's position embeddings are resampled bicubically
(with antialiasing when shrinking), as timm does with ``dynamic_img_size=True``; rows and columns that do not
fill a whole patch (at the bottom and right) are dropped by the patch convolution (timm refuses such sides
unless told to pad them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (N, C, gh, gw)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise InputError(f"ViT: embed_dim {dim} is not divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT with a class token. ``forward(x)``: ImageNet logits (the class token after ``norm``), or the
    normalised class token without ``include_top``. ``block_outputs(x, indices)``: the token sequences
    (N, 1 + gh * gw, C) leaving the chosen blocks (0-based), class token first; ``grid_size(h, w)``: the
    patch grid of an input."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, num_classes: int = 1000, include_top: bool = True,
                 eps: float = 1e-6):
        super().__init__()
        if img_size % patch_size:
            raise InputError(f"ViT: img_size {img_size} is not a multiple of patch_size {patch_size}.")
        self.patch_size, self.embed_dim, self.img_size = patch_size, embed_dim, img_size
        grid = img_size // patch_size
        self.base_grid = (grid, grid)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, embed_dim) * 0.02)
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.include_top = include_top
        if include_top:
            self.head = nn.Linear(embed_dim, num_classes)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """(1, 1 + gh * gw, C): the class token's embedding and the patch grid's, resampled to (gh, gw)."""
        if (gh, gw) == self.base_grid:
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        h0, w0 = self.base_grid
        grid = grid.reshape(1, h0, w0, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False, antialias=True)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1).to(cls.dtype)
        return torch.cat([cls, grid], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The embedded sequence entering the first block: (N, 1 + gh * gw, C)."""
        if x.shape[-2] < self.patch_size or x.shape[-1] < self.patch_size:
            raise InputError(f"ViT: images need at least {self.patch_size}x{self.patch_size} pixels (one patch); "
                             f"got {x.shape[-1]}x{x.shape[-2]}.")
        patches = self.patch_embed(x)
        gh, gw = patches.shape[-2:]
        seq = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches.flatten(2).transpose(1, 2)], dim=1)
        return seq + self.position_embedding(gh, gw)

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of the blocks ``indices`` (in the order given); blocks after the last one are not run."""
        depth = len(self.blocks)
        bad = [i for i in indices if not 0 <= i < depth]
        if bad or not indices:
            raise InputError(f"ViT: block indices must lie in 0..{depth - 1}, got {list(indices)}.")
        wanted, out = set(indices), {}
        seq = self.tokens(x)
        for i, block in enumerate(self.blocks[: max(indices) + 1]):
            seq = block(seq)
            if i in wanted:
                out[i] = seq
        return [out[i] for i in indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.tokens(x)
        for block in self.blocks:
            seq = block(seq)
        cls = self.norm(seq)[:, 0]
        return self.head(cls) if self.include_top else cls


#: timm's ``vit_base_patch8_224`` (ViT-B/8)
VIT_B8 = {"img_size": 224, "patch_size": 8, "embed_dim": 768, "depth": 12, "num_heads": 12}


def vit_base_patch8_224(pretrained: bool | str | Path | Mapping[str, torch.Tensor] = True,
                        **options) -> VisionTransformer:
    """ViT-B/8 (``options`` override those of ``VIT_B8``: e.g. ``depth=5`` keeps the first five blocks and
    loads only their tensors), in eval mode when weights are loaded.

    ``pretrained``: True for the catalogue's ImageNet file ``vit_base_patch8_224`` (timm's conversion of the
    AugReg in21k -> in1k checkpoint), a path or another catalogue name, a state_dict, or False for random weights.
    """
    from . import with_weights

    kw = {**VIT_B8, **options}
    return with_weights(lambda: VisionTransformer(**kw), pretrained, "vit_base_patch8_224", "ViT-B/8")
