"""NQM: noise quality measure (dB, higher is better; +inf for identical images, as in the original).

Damera-Venkata, Kite, Geisler, Evans & Bovik, "Image quality assessment based on a degradation model",
IEEE TIP 9(4), 2000. Original code: nqm.m, ctf.m, cmaskn.m, gthresh.m (Niranjan Damera-Venkata, 1998),
as generalised to non-square images in MeTriX MuX (nqm_modified.m, metrix_nqm.m),
http://foulard.ece.cornell.edu/gaubatz/metrix_mux/

Defaults follow metrix_nqm.m: viewing angle 180 / (3.5 pi) degrees (the image seen from 3.5 picture
heights), colour input becomes 0.299 R + 0.587 G + 0.114 B (not rounded, data range 255). The image is
split by the cosine-log filter bank (one low-pass, five octave band-passes, applied with the FFT), local
band-limited contrasts (Peli) get the contrast-threshold function's detection thresholds and the
suprathreshold masking of cmaskn.m (including its use of ctf(band index) and its clipping of |ci| > 1
to +1), and NQM = 10 log10(sum y1^2 / sum (y1 - y2)^2) of the thresholded reconstructions.
Computed in float64 like MATLAB: the threshold decisions on contrasts are sensitive to rounding (float32
FFTs moved NQM by up to 2e-4 relative on the test images; float64 agrees with the original to 5e-8).
"""

from __future__ import annotations

import functools
import math

import torch

from .registry import register
from .vsnr import metrix_input

VIEWING_ANGLE = 1 / 3.5 * 180 / math.pi


def ctf(f_r: torch.Tensor | float) -> torch.Tensor | float:
    """ctf.m: band-pass contrast threshold at radial frequency f_r (cycles/degree)."""
    if isinstance(f_r, torch.Tensor):
        return 1.0 / (200 * (2.6 * (0.0192 + 0.114 * f_r) * torch.exp(-(0.114 * f_r) ** 1.1)))
    return 1.0 / (200 * (2.6 * (0.0192 + 0.114 * f_r) * math.exp(-(0.114 * f_r) ** 1.1)))


@functools.lru_cache(maxsize=8)
def _filter_bank(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(6, h, w) cosine-log filters G_0 .. G_5 of nqm_modified.m, fftshifted (DC first)."""
    yy = torch.arange(h, dtype=torch.float64) - h / 2
    xx = torch.arange(w, dtype=torch.float64) - w / 2
    r = torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    g = [torch.where(r + 2 <= 4, 0.5 * (1 + torch.cos(math.pi * (torch.log2(r + 2) - 1))), torch.zeros_like(r))]
    for k in range(1, 6):
        inside = (r >= 2.0 ** (k - 1)) & (r <= 2.0 ** (k + 1))
        safe = torch.where(inside, r, torch.ones_like(r))
        g.append(torch.where(inside, 0.5 * (1 + torch.cos(math.pi * (torch.log2(safe) - k))), torch.zeros_like(r)))
    return torch.fft.fftshift(torch.stack(g), dim=(-2, -1)).to(device)


def _bands(x: torch.Tensor) -> torch.Tensor:
    """(N, 6, H, W): real(ifft2(G_k .* fft2(x))) for the six filters of an (N, H, W) batch.

    For even sizes the filters are real and even, so the half spectrum (rfft2) gives the same result at
    half the cost; for odd sizes nqm_modified.m's grid is off-centre and the full FFT is used."""
    h, w = x.shape[-2:]
    bank = _filter_bank(h, w, x.device)
    if h % 2 == 0 and w % 2 == 0:
        return torch.fft.irfft2(torch.fft.rfft2(x)[:, None] * bank[..., : w // 2 + 1], s=(h, w))
    return torch.fft.ifft2(torch.fft.fft2(x)[:, None] * bank).real


def _contrasts(b: torch.Tensor) -> torch.Tensor:
    """c_k = a_k / (l_0 + a_1 + ... + a_{k-1}) for k = 1..5: (N, 5, H, W)."""
    denom = torch.cumsum(b[:, :5], dim=1)
    return b[:, 1:] / denom


@register("nqm", kind="fr", higher_better=True, score_range=(float("-inf"), float("inf")),
          paper="Damera-Venkata et al., Image quality assessment based on a degradation model, TIP 2000",
          code="http://foulard.ece.cornell.edu/gaubatz/metrix_mux/ (nqm_modified.m, metrix_nqm.m)",
          colour="0.299 R + 0.587 G + 0.114 B, not rounded (MeTriX MuX); option: gray (MATLAB rgb2gray)",
          min_size=3, size_note="on 1 or 2 pixels the cosine-log bands hold almost no contrast above threshold",
          nonfinite={"inf": "identical images (or differences below every detection threshold): zero noise, "
                            "10 log10(signal / 0) = +inf, as nqm.m",
                     "nan": "a flat reference and no visible difference (e.g. constant images): signal and noise "
                            "are both 0, 0/0 as nqm.m",
                     "-inf": "a flat reference (no contrast above threshold) against a visibly different image: "
                             "10 log10(0 / noise) = -inf, as nqm.m"})
def nqm(dist: torch.Tensor, ref: torch.Tensor, *, viewing_angle: float = VIEWING_ANGLE,
        colour: str = "metrix") -> torch.Tensor:
    """Noise quality measure in dB (nqm_modified.m via metrix_nqm.m)."""
    o, i = metrix_input(ref, colour), metrix_input(dist, colour)
    n = o.shape[0]
    b = _bands(torch.cat([o, i]).double()[:, 0])
    a, ai = b[:n, 1:], b[n:, 1:]
    c, ci = _contrasts(b[:n]), _contrasts(b[n:])
    view = (1, 5, 1, 1)
    detect = ctf(torch.tensor([2.0 ** k / viewing_angle for k in range(1, 6)], dtype=torch.float64,
                              device=c.device)).view(view)
    ct = ctf(torch.arange(1, 6, dtype=torch.float64, device=c.device)).view(view)   # cmaskn.m: ctf(i)
    # cmaskn.m: suprathreshold masking, with |ci| > 1 set to +1 (a local copy: gthresh sees the original ci)
    ci_clip = torch.where(ci.abs() > 1, torch.ones_like(ci), ci)
    t = ct * (0.86 * (c / ct - 1) + 0.3)
    ai = torch.where((ci_clip - c).abs() - t < 0, a, ai)
    # gthresh.m: global detection thresholds
    y1 = torch.where(c.abs() < detect, torch.zeros_like(a), a).sum(dim=1)
    y2 = torch.where(ci.abs() < detect, torch.zeros_like(ai), ai).sum(dim=1)
    noise = ((y1 - y2) ** 2).sum(dim=(1, 2))
    signal = (y1 ** 2).sum(dim=(1, 2))
    return (10 * torch.log10(signal / noise)).to(dist.dtype)
