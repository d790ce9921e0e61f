"""VSI: visual saliency-induced index.

Zhang, Shen and Li, "VSI: A visual saliency-induced index for perceptual image quality assessment",
IEEE TIP 2014. Original code: VSI.m, https://sse.tongji.edu.cn/linzhang/IQA/VSI/VSI.htm

Follows VSI.m on 0..255 RGB values: SDSP saliency (Zhang, Gu and Li, ICIP 2013) of each image, computed
on its imresize to 256 x 256 ('bilinear', antialiased when shrinking) in the code's CIELab
(ops/lab.py), with the log-Gabor frequency prior (omega0 = 0.021, sigmaF = 1.34), the location
prior (sigmaD = 145) and the warm-colour prior (sigmaC = 0.001), imresize'd back ('bilinear') and
mat2gray'ed; opponent channels L = 0.06 R + 0.63 G + 0.27 B, M = 0.30 R + 0.04 G - 0.35 B,
N = 0.34 R - 0.60 G + 0.17 B; downsampling by F = max(1, round(min(H, W) / 256)) (F x F average,
conv2 'same', every F-th sample) of L, M, N and the saliency maps; Scharr gradient of L; constants
1.27 (saliency), 386 (gradient), 130 (chroma), alpha = 0.40, lambda = 0.020, and
real((S_M S_N)^lambda) for negative chroma products, as MATLAB computes it.

Agrees with VSI.m (run in Octave with a MATLAB-semantics imresize) to 1.3e-9 on the five TID2013
calibration pairs in float64. Known deviations: for float32 input the SDSP saliency runs in float32
(the rest in float64), moving scores by at most 1.7e-8 there; grey input (which VSI.m rejects) is
replicated to three channels; where MATLAB returns NaN (constant a* or b* channel, so mat2gray divides
by zero; black images) constant maps normalise to 0 and an all-zero weight falls back to the unweighted
mean.
"""

from __future__ import annotations

import functools

import torch

from ..errors import InputError
from ..ops.lab import rgb2lab_sdsp
from ..ops.loggabor import sdsp_log_gabor
from ..ops.resize import imresize
from .fsim import box_decimate, real_power
from .registry import register
from .srsim import downsample_factor, mat2gray, saliency_pool, scharr_magnitude

# L, M, N opponent channels of VSI.m, rows applied to (R, G, B).
_LMN = ((0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17))


def sdsp(x: torch.Tensor, *, omega0: float = 0.021, sigma_f: float = 1.34, sigma_d: float = 145.0,
         sigma_c: float = 0.001, work_size: int = 256) -> torch.Tensor:
    """SDSP saliency (as inside VSI.m) of (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) map in [0, 1]."""
    h, w = x.shape[-2:]
    lab = rgb2lab_sdsp(imresize(x, size=(work_size, work_size), method="bilinear"))
    lg = sdsp_log_gabor(work_size, work_size, omega0, sigma_f, lab.dtype, lab.device)
    # LG is real and even, so real(ifft2(fft2(c) .* LG)) is the inverse real FFT of rfft2(c) .* LG
    half = lg[:, : work_size // 2 + 1]
    band = torch.fft.irfft2(torch.fft.rfft2(lab) * half, s=(work_size, work_size))
    sf = torch.sqrt((band * band).sum(1, keepdim=True))
    sd = _location_prior(work_size, sigma_d, lab.dtype, lab.device)
    a, b = mat2gray(lab[:, 1:2]), mat2gray(lab[:, 2:3])
    sc = 1 - torch.exp(-(a * a + b * b) / sigma_c ** 2)
    vs = imresize(sf * sd * sc, size=(h, w), method="bilinear")
    return mat2gray(vs)


@functools.lru_cache(maxsize=8)
def _location_prior(n: int, sigma_d: float, dtype, device) -> torch.Tensor:
    c = torch.arange(1, n + 1, dtype=torch.float64) - n / 2
    d2 = c[:, None] ** 2 + c[None, :] ** 2
    return torch.exp(-d2 / sigma_d ** 2).to(dtype=dtype, device=device)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@register("vsi", kind="fr", higher_better=True, score_range=(0, 1),
          paper="Zhang, Shen and Li, VSI: A visual saliency-induced index for perceptual image quality "
                "assessment, TIP 2014",
          code="https://sse.tongji.edu.cn/linzhang/IQA/VSI/VSI.htm (VSI.m)",
          colour="RGB (0..255) as VSI.m: SDSP saliency in CIELab, L/M/N opponent channels; grey replicated to RGB",
          min_size=8, size_note="iqarena's bound (VSI.m sets none): a smaller image's saliency comes from a 256x256 "
                    "upscale of a few pixels")
def vsi(dist: torch.Tensor, ref: torch.Tensor, *, c_vs: float = 1.27, c_gm: float = 386.0, c_chrom: float = 130.0,
        alpha: float = 0.40, lam: float = 0.020, omega0: float = 0.021, sigma_f: float = 1.34,
        sigma_d: float = 145.0, sigma_c: float = 0.001) -> torch.Tensor:
    """Visual saliency-induced index (VSI.m)."""
    h, w = ref.shape[-2:]
    if min(h, w) < 8:
        raise InputError(f"vsi needs images of at least 8 x 8 pixels, got {h} x {w}.")
    n = ref.shape[0]
    work = _work_dtype(ref)
    f = downsample_factor(h, w)
    sal, rgb = [], []
    for img in (ref, dist):  # full-size steps one image set at a time: no full-size concatenation
        img = img.to(work)
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        sal.append(box_decimate(sdsp(img, omega0=omega0, sigma_f=sigma_f, sigma_d=sigma_d, sigma_c=sigma_c), f))
        rgb.append(box_decimate(img, f))
    sal = torch.cat(sal).double()
    # L, M, N are linear in RGB, so downsampling RGB first gives the same channels with less work
    rgb = torch.cat(rgb).double()
    lmn = torch.einsum("ij,njhw->nihw", rgb.new_tensor(_LMN) * 255, rgb)
    grad = scharr_magnitude(lmn[:, :1])
    s1, s2 = sal[:n], sal[n:]
    g1, g2 = grad[:n], grad[n:]
    m1, m2 = lmn[:n, 1:2], lmn[n:, 1:2]
    n1, n2 = lmn[:n, 2:3], lmn[n:, 2:3]
    vs_sim = (2 * s1 * s2 + c_vs) / (s1 * s1 + s2 * s2 + c_vs)
    gm_sim = (2 * g1 * g2 + c_gm) / (g1 * g1 + g2 * g2 + c_gm)
    m_sim = (2 * m1 * m2 + c_chrom) / (m1 * m1 + m2 * m2 + c_chrom)
    n_sim = (2 * n1 * n2 + c_chrom) / (n1 * n1 + n2 * n2 + c_chrom)
    weight = torch.maximum(s1, s2)
    return saliency_pool(gm_sim ** alpha * vs_sim * real_power(m_sim * n_sim, lam), weight).to(ref.dtype)
