"""IW-SSIM: information content weighted SSIM (higher is better, 1 for identical images).

Wang & Li, "Information content weighting for perceptual image quality assessment", IEEE TIP 20(5), 2011.
Original code: iwssim.m (Zhou Wang, Qiang Li) with matlabPyrTools' buildLpyr,
https://ece.uwaterloo.ca/~z70wang/research/iwssim/

Defaults follow iwssim.m: MATLAB rgb2gray rounded to 8 bits, data range 255, 5-scale Laplacian pyramid
(binomial filter binom5, 'reflect1' edges), 11x11 Gaussian window (sigma 1.5) with 'valid' filtering,
K = (0.01, 0.03), scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) as MS-SSIM, luminance term
only at the coarsest scale, information weights from the Gaussian scale mixture model on 3x3
neighbourhoods plus the parent coefficient (enlarged with imenlarge2), sigma_nsq = 0.4.
Computed in float32 except the coarsest scale's SSIM maps (that band reaches 16 x 255, too large for
float32 moments) and the 10 x 10 covariance eigen-decomposition, which run in float64; against the
original code the largest relative difference seen is 4e-7 (1e-7 with ``double=True``).
Where a scale's weighted mean is negative MATLAB's power gives a complex number; the real part of the
complex product is returned.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.filters import gaussian_kernel1d, imfilter, row_blocks
from ..ops.resize import resize_matrix
from ..ops.wavelets import laplacian_pyramid
from .registry import register
from .uqi import grey_255

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_TOL = 1e-15
#: elements of the neighbourhood vectors per block of rows in _info_weights
_CHUNK = 1 << 20


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


@functools.lru_cache(maxsize=16)
def _enlarge_taps(m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """imenlarge2 along one axis as sparse taps: (2m, 4) indices and weights (float64).

    imenlarge2 resizes to 4m - 3 samples (bilinear), extrapolates one more sample at each end and keeps
    every other sample: output 0 is 2 t[0] - t[1], output j (1 <= j <= 2m - 2) is t[2j - 1], the last is
    2 t[4m - 4] - t[4m - 5], where t = R x and R is imresize's (4m - 3, m) matrix."""
    r = resize_matrix(m, 4 * m - 3, (4 * m - 3) / m, "bilinear", antialias=False)
    e = torch.cat([(2 * r[0] - r[1])[None], r[1:4 * m - 4:2], (2 * r[4 * m - 4] - r[4 * m - 5])[None]])
    w, idx = torch.topk(e.abs(), k=min(4, m), dim=1)
    return idx.to(device), torch.gather(e, 1, idx).to(device)


def imenlarge2(x: torch.Tensor) -> torch.Tensor:
    """iwssim.m imenlarge2: bilinear imresize to (4M-3, 4N-3), linear extrapolation of one more sample on
    each side, every other sample: a (2M, 2N) image (computed with the few taps each output needs)."""
    m, n = x.shape[-2:]
    idx, w = _enlarge_taps(m, x.device)
    w = w.to(x.dtype)
    x = sum(w[:, t, None] * x.index_select(-2, idx[:, t]) for t in range(idx.shape[1]))
    idx, w = _enlarge_taps(n, x.device)
    w = w.to(x.dtype)
    return sum(w[:, t] * x.index_select(-1, idx[:, t]) for t in range(idx.shape[1]))


def _box3(x: torch.Tensor) -> torch.Tensor:
    """filter2(ones(3) / 9, x, 'same'): 3x3 mean with zero padding."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)


def _info_weights(y: torch.Tensor, yn: torch.Tensor, parent: torch.Tensor | None, block: int,
                  sigma_nsq: float) -> torch.Tensor:
    """info_content_weight_map for one band: (N, 1, H - block + 1, W - block + 1) in the dtype of y."""
    mx, my = _box3(y), _box3(yn)
    cov = _box3(y * yn) - mx * my
    ss_x = torch.clamp(_box3(y * y) - mx * mx, min=0)
    ss_y = torch.clamp(_box3(yn * yn) - my * my, min=0)
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
    dim, nexp = block * block + (parent is not None), hb * wb

    def columns(r0: int, r1: int) -> torch.Tensor:
        """The neighbourhood vectors of rows r0 .. r1 - 1 of the block positions: (N, dim, (r1 - r0) wb)."""
        cols = F.unfold(y[..., r0:r1 + block - 1, :], block)
        if parent is None:
            return cols
        return torch.cat([cols, parent[:, :, lb + r0:lb + r1, lb:lb + wb].reshape(n_img, 1, -1)], 1)

    # a block of rows at a time: the (N, dim, positions) vectors of a whole band were ten band-sized copies
    cu = 0
    for r0, r1 in row_blocks(hb, dim * n_img * w, _CHUNK):
        cols = columns(r0, r1)
        cu = cu + (cols @ cols.transpose(1, 2)).double()
    cu = cu / nexp
    lam, q = torch.linalg.eigh(cu)
    pos = lam * (lam > 0)
    total, total_pos = lam.sum(1, keepdim=True), pos.sum(1, keepdim=True)
    lam = pos * total / (total_pos + (total_pos == 0).to(lam.dtype))  # clip negative eigenvalues, keep the trace
    # a flat band has a singular covariance: MATLAB's inv gives Inf there (and the score NaN), torch's inv raises
    cinv, singular = torch.linalg.inv_ex(q @ torch.diag_embed(lam) @ q.transpose(1, 2))
    cinv = torch.where(singular[:, None, None] != 0, torch.full_like(cinv, float("nan")), cinv).to(y.dtype)
    parts = []
    for r0, r1 in row_blocks(hb, dim * n_img * w, _CHUNK):
        cols = columns(r0, r1)
        parts.append(((cinv @ cols) * cols).sum(1))
    ss = torch.cat(parts, 1).view(n_img, 1, hb, wb) / dim
    g = g[..., lb:lb + hb, lb:lb + wb]
    vv = vv[..., lb:lb + hb, lb:lb + wb]
    a = (vv + (1 + g * g) * sigma_nsq) * ss / (sigma_nsq * sigma_nsq)
    b = 1 + vv / sigma_nsq
    lam = lam.to(y.dtype)
    infow = torch.zeros_like(a)
    for j in range(dim):
        infow = infow + torch.log2(b + a * lam[:, j].view(n_img, 1, 1, 1))
    return torch.where(infow < _TOL, torch.zeros_like(infow), infow)


@register("iw_ssim", kind="fr", higher_better=True, score_range=(-1.0, 1.0),
          paper="Wang & Li, Information content weighting for perceptual image quality assessment, TIP 2011",
          code="https://ece.uwaterloo.ca/~z70wang/research/iwssim/ (iwssim.m, matlabPyrTools buildLpyr)",
          colour="MATLAB rgb2gray rounded to 8 bits",
          min_size=lambda o: o["window_size"] * 2 ** (min(5, o["scales"]) - 1),
          size_note="the 11x11 window ('valid') at the 5th scale of the pyramid (scales option)",
          nonfinite={"nan": "a flat pyramid band (e.g. constant images): its GSM covariance is singular; "
                            "MATLAB's inv gives Inf there and iwssim.m NaN"})
def iw_ssim(dist: torch.Tensor, ref: torch.Tensor, *, scales: int = 5, k1: float = 0.01, k2: float = 0.03,
            window_size: int = 11, sigma: float = 1.5, block_size: int = 3, parent: bool = True,
            sigma_nsq: float = 0.4, weights: tuple[float, ...] = MS_WEIGHTS,
            double: bool = False) -> torch.Tensor:
    """Information content weighted SSIM (iwssim.m)."""
    scales = min(5, scales)
    if min(dist.shape[-2:]) < window_size * 2 ** (scales - 1):
        raise InputError(f"iw_ssim with {scales} scales needs images of at least {window_size * 2 ** (scales - 1)} px "
                         f"on each side, got {tuple(dist.shape[-2:])}; use fewer scales or larger images.")
    w = torch.tensor(weights[:scales], dtype=torch.float64, device=dist.device)
    w = w / w.sum()
    n = dist.shape[0]
    pyr = laplacian_pyramid(torch.cat([grey_255(ref), grey_255(dist)]).float(), scales)
    c1, c2 = (k1 * 255) ** 2, (k2 * 255) ** 2
    bound = (window_size - 1) // 2
    bound1 = bound - (block_size - 1) // 2
    work = torch.float64 if double else torch.float32
    means = []
    for s in range(scales):
        band = pyr[s].to(work if s < scales - 1 else torch.float64)
        win = gaussian_kernel1d(window_size, sigma, band.dtype, band.device)
        cs, lum = _cs_l_maps(band[:n], band[n:], win, c1, c2)
        if s == scales - 1:
            means.append((cs * lum).double().mean(dim=(1, 2, 3)))
            break
        prnt = None
        if parent and s < scales - 2:
            prnt = imenlarge2(pyr[s + 1][:n].to(work))[..., : band.shape[-2], : band.shape[-1]]
        iw = _info_weights(band[:n], band[n:], prnt, block_size, sigma_nsq)
        iw = iw[..., bound1: iw.shape[-2] - bound1, bound1: iw.shape[-1] - bound1]
        means.append((cs.double() * iw).sum(dim=(1, 2, 3)) / iw.sum(dim=(1, 2, 3)))
    m = torch.stack(means, 1)
    if bool((m < 0).any()):
        score = torch.prod(m.to(torch.complex128) ** w, dim=1).real
    else:
        score = torch.prod(m ** w, dim=1)
    return score.to(dist.dtype)
