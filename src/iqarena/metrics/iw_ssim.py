"""IW-SSIM: information content weighted SSIM (higher is better, 1 for identical images).

Wang & Li, "Information content weighting for perceptual image quality assessment", IEEE TIP 20(5), 2011.
Original code: iwssim.m (Zhou Wang, Qiang Li) with matlabPyrTools' buildLpyr,
https://ece.uwaterloo.ca/~z70wang/research/iwssim/

Defaults follow iwssim.m: MATLAB rgb2gray rounded to 8 bits, data range 255, 5-scale Laplacian pyramid
(binomial filter binom5, 'reflect1' edges), 11x11 Gaussian window (sigma 1.5) with 'valid' filtering,
K = (0.01, 0.03), scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) as MS-SSIM, luminance term
only at the coarsest scale, information weights from the Gaussian scale mixture model on 3x3
neighbourhoods plus the parent coefficient (enlarged with imenlarge2), sigma_nsq = 0.4.
The information weights and the coarse scales are computed in float64 (their moment maps lose too
much in float32: the coarsest band reaches 16 x 255); the finest band's SSIM maps run in float32.
Where a scale's weighted mean is negative MATLAB's power gives a complex number; the real part of the
complex product is returned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import IQAError
from ..ops.filters import gaussian_kernel1d, imfilter
from ..ops.resize import imresize
from ..ops.wavelets import laplacian_pyramid
from .registry import register
from .uqi import grey_255

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_TOL = 1e-15


def _cs_l_maps(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float):
    """scale_quality_maps: contrast-structure map (variances clipped at 0) and luminance map, 'valid'."""
    c = x.shape[1]
    mu_x, mu_y, xx, yy, xy = imfilter(torch.cat([x, y, x * x, y * y, x * y], 1), (window, window),
                                      "zeros", "valid").split(c, dim=1)
    sxx = torch.clamp(xx - mu_x * mu_x, min=0)
    syy = torch.clamp(yy - mu_y * mu_y, min=0)
    cs = (2 * (xy - mu_x * mu_y) + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return cs, lum


def imenlarge2(x: torch.Tensor) -> torch.Tensor:
    """iwssim.m imenlarge2: bilinear imresize to (4M-3, 4N-3), linear extrapolation of one more sample on
    each side, every other sample: a (2M, 2N) image."""
    m, n = x.shape[-2:]
    t1 = imresize(x, size=(4 * m - 3, 4 * n - 3), method="bilinear")
    t2 = F.pad(t1, (1, 1, 1, 1))
    t2[..., 0, :] = 2 * t2[..., 1, :] - t2[..., 2, :]
    t2[..., -1, :] = 2 * t2[..., -2, :] - t2[..., -3, :]
    t2[..., :, 0] = 2 * t2[..., :, 1] - t2[..., :, 2]
    t2[..., :, -1] = 2 * t2[..., :, -2] - t2[..., :, -3]
    return t2[..., ::2, ::2]


def _info_weights(y: torch.Tensor, yn: torch.Tensor, parent: torch.Tensor | None, block: int,
                  sigma_nsq: float) -> torch.Tensor:
    """info_content_weight_map for one band (float64): (N, 1, H - block + 1, W - block + 1)."""
    box = torch.full((3,), 1.0 / 3, dtype=y.dtype, device=y.device)
    mx, my, xx, yy, xy = imfilter(torch.cat([y, yn, y * y, yn * yn, y * yn], 1), (box, box),
                                  "zeros", "same").split(1, dim=1)
    cov = xy - mx * my
    ss_x = torch.clamp(xx - mx * mx, min=0)
    ss_y = torch.clamp(yy - my * my, min=0)
    g = cov / (ss_x + _TOL)
    vv = ss_y - g * cov
    flat_x = ss_x < _TOL
    g = torch.where(flat_x, torch.zeros_like(g), g)
    vv = torch.where(flat_x, ss_y, vv)
    flat_y = ss_y < _TOL
    g = torch.where(flat_y, torch.zeros_like(g), g)
    vv = torch.where(flat_y, torch.zeros_like(vv), vv)

    n_img, _, h, w = y.shape
    lb = (block - 1) // 2
    hb, wb = h - block + 1, w - block + 1
    cols = F.unfold(y, block).transpose(1, 2)                        # (N, nexp, block^2)
    if parent is not None:
        cols = torch.cat([cols, parent[:, :, lb:lb + hb, lb:lb + wb].reshape(n_img, -1, 1)], 2)
    nexp, dim = cols.shape[1], cols.shape[2]
    cu = cols.transpose(1, 2) @ cols / nexp
    lam, q = torch.linalg.eigh(cu)
    pos = lam * (lam > 0)
    total, total_pos = lam.sum(1, keepdim=True), pos.sum(1, keepdim=True)
    lam = pos * total / (total_pos + (total_pos == 0).to(lam.dtype))  # clip negative eigenvalues, keep the trace
    cu = q @ torch.diag_embed(lam) @ q.transpose(1, 2)
    ss = ((cols @ torch.linalg.inv(cu)) * cols).sum(2) / dim
    ss = ss.view(n_img, 1, hb, wb)
    g = g[..., lb:lb + hb, lb:lb + wb]
    vv = vv[..., lb:lb + hb, lb:lb + wb]
    a = (vv + (1 + g * g) * sigma_nsq) * ss / (sigma_nsq * sigma_nsq)
    b = vv / sigma_nsq
    infow = torch.zeros_like(a)
    for j in range(dim):
        infow = infow + torch.log2(1 + a * lam[:, j].view(n_img, 1, 1, 1) + b)
    return torch.where(infow < _TOL, torch.zeros_like(infow), infow)


@register("iw_ssim", kind="fr", higher_better=True, score_range=(-1.0, 1.0),
          paper="Wang & Li, Information content weighting for perceptual image quality assessment, TIP 2011",
          code="https://ece.uwaterloo.ca/~z70wang/research/iwssim/ (iwssim.m, matlabPyrTools buildLpyr)",
          colour="MATLAB rgb2gray rounded to 8 bits")
def iw_ssim(dist: torch.Tensor, ref: torch.Tensor, *, scales: int = 5, k1: float = 0.01, k2: float = 0.03,
            window_size: int = 11, sigma: float = 1.5, block_size: int = 3, parent: bool = True,
            sigma_nsq: float = 0.4, weights: tuple[float, ...] = MS_WEIGHTS) -> torch.Tensor:
    """Information content weighted SSIM (iwssim.m)."""
    scales = min(5, scales)
    if min(dist.shape[-2:]) < window_size * 2 ** (scales - 1):
        raise IQAError(f"iw_ssim with {scales} scales needs images of at least {window_size * 2 ** (scales - 1)} px "
                       f"on each side, got {tuple(dist.shape[-2:])}; use fewer scales or larger images.")
    w = torch.tensor(weights[:scales], dtype=torch.float64, device=dist.device)
    w = w / w.sum()
    n = dist.shape[0]
    pyr = laplacian_pyramid(torch.cat([grey_255(ref), grey_255(dist)]).float(), scales)
    c1, c2 = (k1 * 255) ** 2, (k2 * 255) ** 2
    bound = (window_size - 1) // 2
    bound1 = bound - (block_size - 1) // 2
    means = []
    for s in range(scales):
        band = pyr[s] if s == 0 else pyr[s].double()
        win = gaussian_kernel1d(window_size, sigma, band.dtype, band.device)
        cs, lum = _cs_l_maps(band[:n], band[n:], win, c1, c2)
        if s == scales - 1:
            means.append((cs * lum).double().mean(dim=(1, 2, 3)))
            break
        b64 = pyr[s].double()
        prnt = None
        if parent and s < scales - 2:
            prnt = imenlarge2(pyr[s + 1][:n].double())[..., : b64.shape[-2], : b64.shape[-1]]
        iw = _info_weights(b64[:n], b64[n:], prnt, block_size, sigma_nsq)
        iw = iw[..., bound1: iw.shape[-2] - bound1, bound1: iw.shape[-1] - bound1]
        means.append((cs.double() * iw).sum(dim=(1, 2, 3)) / iw.sum(dim=(1, 2, 3)))
    m = torch.stack(means, 1)
    if bool((m < 0).any()):
        score = torch.prod(m.to(torch.complex128) ** w, dim=1).real
    else:
        score = torch.prod(m ** w, dim=1)
    return score.to(dist.dtype)
