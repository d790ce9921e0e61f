"""GSM: gradient similarity (higher is better, 1 for identical images).

Liu, Lin & Narwaria, "Image quality assessment based on gradient similarity", IEEE TIP 21(4), 2012.
Original code: GSM.m, distributed by the authors only through a private link (listed at
https://cslinzhang.github.io/home/IQA/Evalution_GSM/eva-GSM.htm, usage GSM(double(rgb2gray(ref)),
double(rgb2gray(dist)))). It could not be retrieved for this implementation.

NOT CALIBRATED: this is a reconstruction from the paper's description, not a port of GSM.m, and its
values may differ from GSM.m's. Steps: MATLAB rgb2gray (8-bit) on the 0-255 scale; gradient
g = max over the four 5x5 directional operators of Chou & Li (the operators the paper uses) of
|filter2(M_k, x)| / 16 ('same', zero padding); contrast-structure similarity
s = (2 (1 - r) + K) / (1 + (1 - r)^2 + K) with r = |g_ref - g_dist| / max(g_ref, g_dist) and the
masking term K = C / max(g_ref, g_dist), C = 200 (s = 1 where both gradients are 0); luminance
similarity l = 1 - ((ref - dist) / 255)^2; adaptive integration q = (1 - W) s + W l with W = p s,
p = 0.1; GSM = mean(q). The constants C = 200 and p = 0.1 are the paper's. This reading discriminates
weakly (against TID2013 I01: inverted image 0.988, all-black image 0.887), a hint that GSM.m's masking
term or gradient scale differ; the values are provisional.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from .registry import register
from .uqi import grey_255

_OPERATORS = (
    ((0, 0, 0, 0, 0), (1, 3, 8, 3, 1), (0, 0, 0, 0, 0), (-1, -3, -8, -3, -1), (0, 0, 0, 0, 0)),
    ((0, 0, 1, 0, 0), (0, 8, 3, 0, 0), (1, 3, 0, -3, -1), (0, 0, -3, -8, 0), (0, 0, -1, 0, 0)),
    ((0, 0, 1, 0, 0), (0, 0, 3, 8, 0), (-1, -3, 0, 3, 1), (0, -8, -3, 0, 0), (0, 0, -1, 0, 0)),
    ((0, 1, 0, -1, 0), (0, 3, 0, -3, 0), (0, 8, 0, -8, 0), (0, 3, 0, -3, 0), (0, 1, 0, -1, 0)),
)


@functools.lru_cache(maxsize=8)
def _operators(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(_OPERATORS, dtype=dtype, device=device) / 16


def directional_gradient(x: torch.Tensor) -> torch.Tensor:
    """max_k |filter2(M_k, x)| / 16 over the four 5x5 directional operators (zero padding, 'same')."""
    ops = _operators(x.dtype, x.device).unsqueeze(1)            # (4, 1, 5, 5); conv2d correlates like filter2
    return F.conv2d(x, ops, padding=2).abs().amax(dim=1, keepdim=True)


@register("gsm", kind="fr", higher_better=True, score_range=(0.0, 1.0),
          paper="Liu, Lin & Narwaria, Image quality assessment based on gradient similarity, TIP 2012",
          code="GSM.m (authors' private link; not retrievable) - reconstructed from the paper, not calibrated",
          colour="MATLAB rgb2gray rounded to 8 bits",
          size_note="any size: 5x5 operators with zero padding ('same')")
def gsm(dist: torch.Tensor, ref: torch.Tensor, *, c: float = 200.0, p: float = 0.1) -> torch.Tensor:
    """Gradient similarity (reconstruction of GSM from the paper; see the module docstring)."""
    x, y = grey_255(ref).float(), grey_255(dist).float()
    n = x.shape[0]
    g = directional_gradient(torch.cat([x, y]))
    gx, gy = g[:n], g[n:]
    gmax = torch.maximum(gx, gy)
    flat = gmax == 0
    safe = torch.where(flat, torch.ones_like(gmax), gmax)
    one_minus_r = 1 - (gx - gy).abs() / safe
    k = c / safe
    s = torch.where(flat, torch.ones_like(gmax), (2 * one_minus_r + k) / (1 + one_minus_r ** 2 + k))
    lum = 1 - ((x - y) / 255) ** 2
    w = p * s
    return ((1 - w) * s + w * lum).mean(dim=(1, 2, 3)).to(dist.dtype)
