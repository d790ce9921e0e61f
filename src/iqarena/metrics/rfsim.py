"""RFSIM: Riesz-transform based feature similarity (higher is better, 1 for identical images).

Zhang, Zhang & Mou, "RFSIM: A feature based image quality assessment metric using Riesz transforms",
ICIP 2010. Original code: RFSIM.m (Lin Zhang, 2010), https://web.comp.polyu.edu.hk/cslzhang/IQA/RFSIM/RFSIM.htm

Defaults follow RFSIM.m: MATLAB rgb2gray (8-bit) on the 0-255 scale; automatic downsampling by
F = max(1, round(min(H, W) / 256)) (F x F average with conv2 'same', then every F-th sample); first-
and second-order Riesz transforms in the Fourier domain; the mask is the union of the Canny edge maps
of both images, each dilated by strel('square', 4); C = 1.2; the score is the product of the five
masked mean similarities.

The edge maps reproduce MATLAB's edge(I, 'canny', [0.08 0.13], 3.6) as shipped since R2011 (verified
against the edge.m source): derivative-of-Gaussian gradients (kernel extent ceil(4 sigma), 'conv',
'replicate'), magnitude normalised by its maximum, four-sector non-maximum suppression with linear
interpolation on interior pixels, hysteresis by 8-connected components holding a pixel above the
high threshold (bwselect). It runs in float64. MATLAB releases before R2011a used a different Canny
(Gaussian and 2-D derivative filters cut at 1e-4, then bwmorph thinning, now edge(..., 'canny_old'));
RFSIM values computed with those releases differ. Where the mask is empty MATLAB divides 0 by 0: NaN.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from .registry import register
from .uqi import grey_255


@functools.lru_cache(maxsize=8)
def _canny_kernels(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """edge.m smoothGradient: normalised Gaussian and derivative-of-Gaussian 1-D kernels (float64)."""
    ext = math.ceil(4 * sigma)
    x = torch.arange(-ext, ext + 1, dtype=torch.float64)
    g = torch.exp(-(x * x) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    g = g / g.sum()
    d = torch.empty_like(g)                      # MATLAB gradient(): central differences, one-sided at the ends
    d[1:-1] = (g[2:] - g[:-2]) / 2
    d[0], d[-1] = g[1] - g[0], g[-1] - g[-2]
    pos, neg = d > 0, d < 0
    d = torch.where(pos, d / d[pos].sum(), torch.where(neg, d / d[neg].sum().abs(), d))
    return g, d


def _conv1d_replicate(x: torch.Tensor, k: torch.Tensor, dim: int) -> torch.Tensor:
    """imfilter(x, k, 'conv', 'replicate') along ``dim`` (-1 or -2) for an odd 1-D kernel, as a sum of
    shifted copies (float64; torch's float64 convolution is slow on CPU)."""
    ext = (k.numel() - 1) // 2
    n = x.shape[dim]
    idx = torch.arange(-ext, n + ext, device=x.device).clamp(0, n - 1)
    xp = x.index_select(dim, idx)
    out = torch.zeros_like(x)
    for t in range(k.numel()):            # conv: out[i] = sum_t k[t] x[i + ext - t]
        out = out + k[t] * xp.narrow(dim, 2 * ext - t, n)
    return out


def _smooth_gradient(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """dx, dy of edge.m: Gaussian along one axis, derivative along the other, 'conv' with 'replicate'."""
    g, d = _canny_kernels(sigma)
    g, d = g.to(x.device), d.to(x.device)
    dx = _conv1d_replicate(_conv1d_replicate(x, g, -2), d, -1)
    dy = _conv1d_replicate(_conv1d_replicate(x, g, -1), d, -2)
    return dx, dy


def _local_maxima(ix: torch.Tensor, iy: torch.Tensor, mag: torch.Tensor, low: float) -> torch.Tensor:
    """edge.m cannyFindLocalMaxima: interior pixels that are maxima along the gradient and above ``low``."""
    c = mag[..., 1:-1, 1:-1]
    x, y = ix[..., 1:-1, 1:-1], iy[..., 1:-1, 1:-1]

    def at(dr: int, dc: int) -> torch.Tensor:
        h, w = mag.shape[-2:]
        return mag[..., 1 + dr: h - 1 + dr, 1 + dc: w - 1 + dc]

    def ratio(a, b):
        return (a / b).abs()

    keep = torch.zeros_like(c, dtype=torch.bool)
    sectors = (
        (((y <= 0) & (x > -y)) | ((y >= 0) & (x < -y)), ratio(y, x), ((0, 1), (-1, 1)), ((0, -1), (1, -1))),
        (((x > 0) & (-y >= x)) | ((x < 0) & (-y <= x)), ratio(x, y), ((-1, 0), (-1, 1)), ((1, 0), (1, -1))),
        (((x <= 0) & (x > y)) | ((x >= 0) & (x < y)), ratio(x, y), ((-1, 0), (-1, -1)), ((1, 0), (1, 1))),
        (((y < 0) & (x <= y)) | ((y > 0) & (x >= y)), ratio(y, x), ((0, -1), (-1, -1)), ((0, 1), (1, 1))),
    )
    for sel, dd, (a1, b1), (a2, b2) in sectors:
        g1 = at(*a1) * (1 - dd) + at(*b1) * dd
        g2 = at(*a2) * (1 - dd) + at(*b2) * dd
        keep |= sel & (c >= g1) & (c >= g2) & (c > low)
    return F.pad(keep, (1, 1, 1, 1))


def canny(x: torch.Tensor, low: float, high: float, sigma: float) -> torch.Tensor:
    """MATLAB edge(x, 'canny', [low high], sigma) for every image of an (N, 1, H, W) batch (bool)."""
    x = x.double()
    dx, dy = _smooth_gradient(x, sigma)
    mag = torch.hypot(dx, dy)
    mmax = mag.amax(dim=(-2, -1), keepdim=True)
    mag = torch.where(mmax > 0, mag / torch.where(mmax > 0, mmax, torch.ones_like(mmax)), mag)
    weak = _local_maxima(dx, dy, mag, low)
    strong = weak & (mag > high)
    # bwselect(weak, strong seeds, 8): 8-connected components of the weak map that hold a strong pixel;
    # one labelling call for the whole batch (the structure does not connect different images).
    structure = np.zeros((3, 3, 3, 3), dtype=bool)
    structure[1, 1] = True
    labels, _ = ndi.label(weak.cpu().numpy(), structure=structure)
    keep = np.unique(labels[strong.cpu().numpy()])
    keep = keep[keep > 0]
    return torch.from_numpy(np.isin(labels, keep)).to(x.device)


@functools.lru_cache(maxsize=8)
def _riesz_kernels(h: int, w: int, device: torch.device) -> torch.Tensor:
    """RFSIM.m RieszTransform kernels on the rfft2 half spectrum: (5, h, w//2+1) complex128 for
    Rx, Ry, Rxx, Rxy, Ryy. real(ifft2(X K)) = ifft2(X K_h) with K_h(k) = (K(k) + conj(K(-k))) / 2 for a
    real image; K_h is Hermitian, so its half spectrum and irfft2 give MATLAB's result exactly (K itself
    is not Hermitian on the Nyquist row and column of even sizes)."""
    fx = (torch.arange(1, w + 1, dtype=torch.float64) - (w // 2 + 1)) / (w - w % 2)
    fy = (torch.arange(1, h + 1, dtype=torch.float64) - (h // 2 + 1)) / (h - h % 2)
    u1 = torch.fft.ifftshift(fx.expand(h, w))                  # meshgrid: u1 varies along columns
    u2 = torch.fft.ifftshift(fy[:, None].expand(h, w))
    radius = torch.sqrt(u1 * u1 + u2 * u2)
    radius[0, 0] = 1.0
    rx = -1j * u1 / radius
    ry = -1j * u2 / radius
    rx[0, 0] = 0
    ry[0, 0] = 0
    k = torch.stack([rx, ry, rx * rx, rx * ry, ry * ry])
    k_neg = torch.roll(torch.flip(k, (-2, -1)), shifts=(1, 1), dims=(-2, -1))
    k = (k + k_neg.conj()) / 2
    return k[..., : w // 2 + 1].to(device)


def riesz(x: torch.Tensor) -> torch.Tensor:
    """(N, 5, H, W): first- and second-order Riesz transforms of an (N, 1, H, W) batch."""
    h, w = x.shape[-2:]
    spec = torch.fft.rfft2(x.double())
    return torch.fft.irfft2(spec * _riesz_kernels(h, w, x.device), s=(h, w))


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """RFSIM.m: F = max(1, round(min(H, W) / 256)); conv2(x, ones(F) / F^2, 'same') sampled at 1:F:end.

    conv2 'same' sample i averages x[i - (F - 1 - F // 2) .. i + F // 2] (zeros outside), so this is an
    F x F mean pool with stride F over the zero-padded image."""
    rows, cols = x.shape[-2:]
    f = max(1, int(math.floor(min(rows, cols) / 256 + 0.5)))
    if f == 1:
        return x
    before = f - 1 - f // 2
    out = F.avg_pool2d(F.pad(x, (before, f, before, f)), f, stride=f)
    return out[..., : -(-rows // f), : -(-cols // f)]


def _dilate_square4(m: torch.Tensor) -> torch.Tensor:
    """imdilate(m, strel('square', 4)): the 4x4 window covers rows/cols i-2 .. i+1 (MATLAB's even-size origin)."""
    mf = F.pad(m.float(), (2, 1, 2, 1))
    return F.max_pool2d(mf, 4, stride=1) > 0


@register("rfsim", kind="fr", higher_better=True, score_range=(-1.0, 1.0),
          paper="Zhang, Zhang & Mou, RFSIM: a feature based image quality assessment metric using Riesz transforms, ICIP 2010",
          code="https://web.comp.polyu.edu.hk/cslzhang/IQA/RFSIM/RFSIM.htm (RFSIM.m)",
          colour="MATLAB rgb2gray rounded to 8 bits",
          min_size=3, size_note="Canny's non-maximum suppression needs interior pixels",
          nonfinite={"nan": "no Canny edge in either image (flat or black images, or tiny ones): the mask is empty "
                            "and the masked means 0/0, as RFSIM.m"})
def rfsim(dist: torch.Tensor, ref: torch.Tensor, *, c: float = 1.2, canny_low: float = 0.08,
          canny_high: float = 0.13, canny_sigma: float = 3.6) -> torch.Tensor:
    """Riesz-transform based feature similarity (RFSIM.m)."""
    n = ref.shape[0]
    x = torch.cat([grey_255(ref), grey_255(dist)])
    x = _downsample(x)
    r = riesz(x)
    mask = _dilate_square4(canny(x, canny_low, canny_high, canny_sigma))
    mask = (mask[:n] | mask[n:]).double()
    a, b = r[:n], r[n:]
    sim = (2 * a * b + c) / (a * a + b * b + c)
    valid = mask.sum(dim=(1, 2, 3))
    means = (sim * mask).sum(dim=(2, 3)) / valid[:, None]
    return means.prod(dim=1).to(dist.dtype)
