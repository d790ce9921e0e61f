"""PIQE: perception-based image quality evaluator (no reference; lower is better, 0..100).

Venkatanath N, Praneeth D, Maruthi Chandrasekhar Bh, S. S. Channappayya, S. S. Medasani, "Blind image
quality evaluation using perception based features", NCC 2015. Reference implementation: MATLAB Image
Processing Toolbox ``piqe`` (R2018b+), https://www.mathworks.com/help/images/ref/piqe.html

Follows MATLAB's piqe: the image is padded by replication to a multiple of 16 (bottom/right), converted
with rgb2gray (8-bit), scaled to 0..255 integers; MSCN coefficients with a 7x7 Gaussian (sigma 7/6,
replicate padding, C = 1); for each 16x16 block with variance > 0.1 (spatially active) it checks
(a) noticeable distortion: some 6-pixel segment of one of the four block edges has std < 0.1, and
(b) noise: block std > 2 * |std - c/s| / max(std, c/s), where c is the std of the two centre
columns and s the std of the "surround". As in MATLAB, the surround drops block columns 8 and 10
(1-based) rather than 8 and 9, because MATLAB deletes column 9 after column 8 is already removed.
Score = 100 (sum over active blocks of [a](1 - var) + [b] var + 1) / (number of active blocks + 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.nss import gray255, mscn
from .registry import register

BLOCK = 16
SEGMENT = 6


def _std(x: torch.Tensor, dim) -> torch.Tensor:
    return x.var(dim=dim, unbiased=True).sqrt()


def piqe_maps(x: torch.Tensor, *, activity_threshold: float = 0.1, impaired_threshold: float = 0.1,
              dtype: torch.dtype = torch.float64):
    """Per-block PIQE quantities: (variance, active, noticeable-distortion, noise) each (N, rows, cols).

    float64 as MATLAB: in float32 the block decisions flip on a few blocks (64 of the blocks of 300 CLIVE
    images, scores moving by up to 0.17) for no gain in speed.
    """
    g = gray255(x).to(dtype)
    h, w = g.shape[-2:]
    g = F.pad(g, (0, (-w) % BLOCK, 0, (-h) % BLOCK), mode="replicate")
    s, _ = mscn(g, "replicate")
    n, _, hp, wp = s.shape
    blocks = s.reshape(n, hp // BLOCK, BLOCK, wp // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)  # N, R, C, 16, 16
    var = blocks.flatten(-2).var(-1, unbiased=True)
    active = var > activity_threshold
    edges = torch.stack([blocks[..., 0, :], blocks[..., :, -1], blocks[..., -1, :], blocks[..., :, 0]], -2)
    segs = edges.unfold(-1, SEGMENT, 1)  # N, R, C, 4 edges, 11 segments, 6
    impaired = (_std(segs, -1) < impaired_threshold).flatten(-2).any(-1)
    centre = blocks[..., :, 7:9].flatten(-2)
    keep = [c for c in range(BLOCK) if c not in (7, 9)]
    surround = blocks[..., :, keep].flatten(-2)
    csd = _std(centre, -1) / _std(surround, -1)
    csd = torch.nan_to_num(csd, nan=0.0, posinf=float("inf"))
    sigma = var.sqrt()
    beta = (sigma - csd).abs() / torch.maximum(sigma, csd)
    noisy = sigma > 2 * beta
    return var, active, impaired & active, noisy & active


@register("piqe", kind="nr", higher_better=False, score_range=(0, 100),
          paper="Venkatanath et al., Blind image quality evaluation using perception based features, NCC 2015",
          code="MATLAB Image Processing Toolbox piqe (R2018b+)",
          colour="MATLAB rgb2gray rounded to 8 bits, values 0..255",
          size_note="any size: the image is padded to whole 16x16 blocks (replicate)")
def piqe(x: torch.Tensor, *, activity_threshold: float = 0.1, impaired_threshold: float = 0.1) -> torch.Tensor:
    """PIQE score in [0, 100] (MATLAB piqe): 0 is best."""
    var, active, impaired, noisy = piqe_maps(x, activity_threshold=activity_threshold,
                                             impaired_threshold=impaired_threshold)
    dist = (impaired * (1 - var) + noisy * var).sum((1, 2))
    score = (dist + 1) / (active.sum((1, 2)) + 1) * 100
    return score.to(x.dtype)
