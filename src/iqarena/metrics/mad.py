"""MAD: most apparent distortion.

Larson and Chandler, "Most apparent distortion: full-reference image quality assessment and the role
of strategy", Journal of Electronic Imaging 19(1), 2010. Original code: MAD_index.m with the MEX files
ical_std.c and ical_stat.c (release 2011, "Mad is now faster!"), http://vision.eng.shizuoka.ac.jp/mad/

Follows MAD_index.m on MATLAB rgb2gray (rounded to 8 bits), 0..255:

- detection ("high quality") index: luminance k v^(2.2/3) (k = 0.02874) read from the code's table
  at LUT(img + 1), which saturates for uint8 so that level 255 gets the value of 254; CSF filter (make_csf with
  its half-pixel grid, applied with fftshift/ifftshift as the code does); for 16 x 16 blocks at stride
  4 (ical_std.c): the std of the filtered error, the mean of the filtered reference, and its
  "modified std" (the smallest std of 8 x 8 sub-blocks, which ical_std.c takes at offsets 0 and 4
  within the block because it reads its stride-4 table at +5); each block's values fill the 4 x 4
  cell at its top-left corner, zeros elsewhere; log contrasts, masking map with thresholds -5 and
  luminance threshold 0.5; times the 16 x 16 local MSE of the grey images ('symmetric' borders);
  16 pixels (17 at the far ends) cut from each border; RMS x 200;
- appearance ("low quality") index: log-Gabor bank (5 scales x 4 orientations, ops/loggabor.py) on
  the grey images; std, skewness and kurtosis of the magnitudes in 16 x 16 blocks at stride 4
  (ical_stat.c); map sum_s w_s (|d std| + 2 |d skew| + |d kurt|), w = [0.5 0.75 1 5 6] / 13.25;
  same border cut; RMS;
- MAD = lo^(1 - a) hi^a, a = 1 / (1 + b1 hi^b2), b1 = exp(-2.55 / 3.35), b2 = 1 / (ln 10 * 3.35).

Speed without changing the values: FFTs of both images batched, one filter at a time; block moments
from exact central moments of the 4 x 4 cells merged pairwise (Chan et al.'s update) instead of
re-summing 256 samples per block; local MSE from cumulative sums. float64 throughout, as the MEX code.
Equal to a loop-by-block transcription of the C code to 1e-12 (tests/test_saliency_mad.py) and to
MAD_index.m with its MEX files run in Octave to 2e-14 on the five TID2013 calibration pairs.
Known deviations: none measured on 8-bit images (values within 1e-3 of an integer grey level snap to it).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..ops.color import rgb2gray
from ..ops.filters import pad
from ..ops.loggabor import mad_log_gabor_bank
from .registry import register

BLOCK = 16
STRIDE = 4
SCALE_WEIGHTS = (0.5, 0.75, 1.0, 5.0, 6.0)


@functools.lru_cache(maxsize=8)
def make_csf(rows: int, cols: int, nfreq: float = 32.0, dtype=torch.float64, device=None) -> torch.Tensor:
    """make_csf(rows, cols, nfreq)' of MAD_index.m: (rows, cols), centred as fftshift'ed spectra."""
    u = torch.arange(rows, dtype=torch.float64) - (rows - 1) / 2
    v = torch.arange(cols, dtype=torch.float64) - (cols - 1) / 2
    u, v = torch.meshgrid(u, v, indexing="ij")
    radfreq = torch.sqrt(u * u + v * v) / cols * 2 * nfreq
    s = (1 - 0.7) / 2 * torch.cos(4 * torch.atan2(v, u)) + (1 + 0.7) / 2
    radfreq = radfreq / s
    csf = 2.6 * (0.0192 + 0.114 * radfreq) * torch.exp(-((0.114 * radfreq) ** 1.1))
    csf = torch.where(radfreq < 7.8909, torch.full_like(csf, 0.9809), csf)
    return csf.to(dtype=dtype, device=device)


def _merge(a: tuple, b: tuple, n: int, order: int) -> tuple:
    """Central moments of the union of two disjoint sets of n samples each (Chan, Golub and LeVeque)."""
    mean_a, a2, a3, a4 = a
    mean_b, b2, b3, b4 = b
    d = mean_b - mean_a
    dd = d * d
    mean = mean_a + 0.5 * d
    m2 = a2 + b2 + (0.5 * n) * dd
    if order != 4:
        return mean, m2, None, None
    m3 = a3 + b3 + 1.5 * d * (b2 - a2)
    m4 = a4 + b4 + dd * ((n / 8) * dd + 1.5 * (a2 + b2)) + 2 * d * (b3 - a3)
    return mean, m2, m3, m4


def block_moments(x: torch.Tensor, block: int, n_blocks: tuple[int, int], order: int = 2) -> tuple:
    """Central moment sums of block x block windows at stride 4 starting at 0, on the block grid.

    Returns (mean, m2, m3, m4), mk = sum over the block of (x - mean)^k (m3, m4 only for order 4).
    Exact central moments of the 4 x 4 cells are merged pairwise, first along rows then columns
    (1 + 1 -> 2 cells, 2 + 2 -> 4 cells), so no power sums of raw values are ever subtracted.
    """
    per = block // STRIDE  # cells per block side: a power of two
    nb_r, nb_c = n_blocks
    hc, wc = nb_r + per - 1, nb_c + per - 1
    lead = x.shape[:-2]
    cells = x[..., : hc * STRIDE, : wc * STRIDE].reshape(-1, hc, STRIDE, wc, STRIDE)
    # (..., 16, hc, wc): the samples of each cell as 16 planes, so the sums run over whole planes
    cells = cells.permute(0, 2, 4, 1, 3).reshape(*lead, STRIDE * STRIDE, hc, wc)
    cmean = cells.mean(-3, keepdim=True)
    d = cells - cmean
    d2 = d * d
    moments = (cmean.squeeze(-3), d2.sum(-3), (d2 * d).sum(-3) if order == 4 else None,
               (d2 * d2).sum(-3) if order == 4 else None)
    n = STRIDE * STRIDE
    for axis in (-1, -2):
        k = 1
        while k < per:
            size = moments[0].shape[axis] - k
            first = tuple(None if t is None else t.narrow(axis, 0, size) for t in moments)
            second = tuple(None if t is None else t.narrow(axis, k, size) for t in moments)
            moments = _merge(first, second, n, order)
            n, k = 2 * n, 2 * k
    return moments


def n_blocks(h: int, w: int, block: int = BLOCK) -> tuple[int, int]:
    """Blocks the MEX loops visit per axis: starts 0, 4, ... while start < size - 15."""
    return (h - block) // STRIDE + 1, (w - block) // STRIDE + 1


def ical_stat(x: torch.Tensor):
    """ical_stat.c on the block grid: unbiased std, skewness and kurtosis of each 16 x 16 block."""
    nb = n_blocks(*x.shape[-2:])
    _, m2, m3, m4 = block_moments(x, BLOCK, nb, order=4)
    count = BLOCK * BLOCK
    std = torch.sqrt(m2 / (count - 1))
    stmp = torch.sqrt(m2 / count)
    nonzero = stmp != 0
    safe = torch.where(nonzero, stmp, torch.ones_like(stmp))
    st3 = safe * safe * safe
    skw = torch.where(nonzero, (m3 / count) / st3, torch.zeros_like(m3))
    krt = torch.where(nonzero, (m4 / count) / (st3 * safe), torch.zeros_like(m4))
    return std, skw, krt


def ical_std(err: torch.Tensor, ref: torch.Tensor):
    """ical_std.c on the block grid: std of ``err`` and mean of ``ref`` per 16 x 16 block, and the
    "modified std" of ``ref``: the smallest std of the 8 x 8 sub-blocks at offsets (0 or 4, 0 or 4),
    where an offset of 4 counts only if start + 5 < size - 15 along that axis (the C code's test)."""
    h, w = err.shape[-2:]
    nb_r, nb_c = n_blocks(h, w)
    _, m2 = block_moments(err, BLOCK, (nb_r, nb_c))[:2]
    std_err = torch.sqrt(m2 / (BLOCK * BLOCK - 1))
    mean_ref, _ = block_moments(ref, BLOCK, (nb_r, nb_c))[:2]
    half = BLOCK // 2
    _, s2 = block_moments(ref, half, (nb_r + 1, nb_c + 1))[:2]
    sub = torch.sqrt(s2 / (half * half - 1))
    starts_r = torch.arange(nb_r, device=err.device) * STRIDE
    starts_c = torch.arange(nb_c, device=err.device) * STRIDE
    next_r = (starts_r + 5 < h - 15).view(-1, 1)
    next_c = (starts_c + 5 < w - 15).view(1, -1)
    inf = torch.full_like(sub[..., :nb_r, :nb_c], math.inf)
    std_mod = sub[..., :nb_r, :nb_c]
    std_mod = torch.minimum(std_mod, torch.where(next_r, sub[..., 1:, :nb_c], inf))
    std_mod = torch.minimum(std_mod, torch.where(next_c, sub[..., :nb_r, 1:], inf))
    std_mod = torch.minimum(std_mod, torch.where(next_r & next_c, sub[..., 1:, 1:], inf))
    return std_err, std_mod, mean_ref


def _to_pixels(grid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Each block value fills the 4 x 4 cell at its block's top-left corner; zeros elsewhere."""
    up = grid.repeat_interleave(STRIDE, -2).repeat_interleave(STRIDE, -1)
    return F.pad(up, (0, w - up.shape[-1], 0, h - up.shape[-2]))


def _border_rms(mp: torch.Tensor) -> torch.Tensor:
    """norm(mp(17:end-17, 17:end-17)(:)) / sqrt(numel): RMS without 16 (17) border pixels."""
    inner = mp[..., BLOCK:-(BLOCK + 1), BLOCK:-(BLOCK + 1)]
    return torch.sqrt((inner * inner).mean(dim=(-2, -1)))


def _luminance(v: torch.Tensor) -> torch.Tensor:
    """k v^(2.2/3), k = 0.02874. For integer grey levels MAD_index.m reads a 256-entry table at
    LUT(img + 1) with img uint8, which saturates at 255: level 255 gets the value of 254, here too."""
    idx = v.long()
    if bool(((idx == v) & (idx >= 0) & (idx <= 255)).all()):
        lut = 0.02874 * torch.arange(256, dtype=torch.float64, device=v.device) ** (2.2 / 3)
        return lut.to(v.dtype)[idx.clamp_max(254)]
    return 0.02874 * v ** (2.2 / 3)


def _box_mean_symmetric(x: torch.Tensor, size: int) -> torch.Tensor:
    """imfilter(x, ones(size) / size^2, 'symmetric', 'same') with window sums from cumulative sums
    (exact for the integer squared errors of 8-bit images)."""
    before = (size - 1) // 2
    xp = pad(x, before, size - 1 - before, before, size - 1 - before, "symmetric")
    c = F.pad(xp.cumsum(-2), (0, 0, 1, 0))
    rows = c[..., size:, :] - c[..., :-size, :]
    c = F.pad(rows.cumsum(-1), (1, 0))
    return (c[..., size:] - c[..., :-size]) / (size * size)


def hi_index(ref: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Detection-based index of MAD_index.m (hi_index) for (N, 1, H, W) grey images in 0..255."""
    h, w = ref.shape[-2:]
    lum = _luminance(torch.cat([ref, dst], 1))
    csf = torch.fft.ifftshift(make_csf(h, w, 32.0, lum.dtype, lum.device))
    filt = torch.fft.ifft2(torch.fft.fft2(lum) * csf).real
    ref_f, dst_f = filt[:, :1], filt[:, 1:]
    std_err, std_ref, mean_ref = ical_std(dst_f - ref_f, ref_f)

    g = 0.5  # luminance threshold
    thr = -5.0  # contrast thresholds Ci_thrsh = Cd_thrsh, slope 1
    bright = mean_ref >= g
    safe_mean = torch.where(bright, mean_ref, torch.ones_like(mean_ref))
    ci_ref = torch.log(std_ref / safe_mean)
    ci_dst = torch.where(bright, torch.log(std_err / safe_mean), torch.full_like(std_err, -math.inf))
    above = (ci_ref > thr) & (ci_dst > ci_ref)
    below = (ci_ref <= thr) & (ci_dst > thr)
    zero = torch.zeros_like(ci_dst)
    msk = torch.where(above, ci_dst - ci_ref, torch.where(below, ci_dst - thr, zero))

    lmse = _box_mean_symmetric((ref - dst) ** 2, BLOCK)
    return _border_rms(_to_pixels(msk, h, w) * lmse)[:, 0] * 200


def lo_index(ref: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Appearance-based index of MAD_index.m (lo_index) for (N, 1, H, W) grey images in 0..255."""
    h, w = ref.shape[-2:]
    bank = mad_log_gabor_bank(h, w, ref.dtype, ref.device)  # (scales, orients, H, W)
    spec = torch.fft.fft2(torch.cat([ref, dst], 1))  # (N, 2, H, W)
    weights = torch.tensor(SCALE_WEIGHTS, dtype=ref.dtype) / sum(SCALE_WEIGHTS)
    mp = 0
    for s in range(bank.shape[0]):
        for o in range(bank.shape[1]):  # one filter at a time keeps the work set small (faster)
            eo = torch.view_as_real(torch.fft.ifft2(spec * bank[s, o]))  # (N, 2, H, W, 2)
            mag = torch.sqrt(eo[..., 0] * eo[..., 0] + eo[..., 1] * eo[..., 1])
            std, skw, krt = ical_stat(mag)
            d = (std[:, 0] - std[:, 1]).abs() + 2 * (skw[:, 0] - skw[:, 1]).abs() + (krt[:, 0] - krt[:, 1]).abs()
            mp = mp + weights[s].item() * d
    return _border_rms(_to_pixels(mp, h, w))


def _grey255(x: torch.Tensor) -> torch.Tensor:
    """rgb2gray (8-bit rounded) in 0..255, float64; values within 1e-3 of an integer (8-bit data
    stored as float) snap to it, so the LUT path of MAD_index.m gets its exact integers."""
    v = rgb2gray(x).double() * 255
    snapped = torch.round(v)
    return torch.where((v - snapped).abs() < 1e-3, snapped, v)


@register("mad", kind="fr", higher_better=False, score_range=(0, float("inf")),
          paper="Larson and Chandler, Most apparent distortion: full-reference image quality assessment and the "
                "role of strategy, J. Electronic Imaging 2010",
          code="http://vision.eng.shizuoka.ac.jp/mad/ (MAD_index.m, ical_std.c, ical_stat.c; 2011 release)",
          colour="MATLAB rgb2gray rounded to 8 bits", min_size=2 * BLOCK + 2,
          size_note="it drops a 16-pixel border and works on 16x16 blocks")
def mad(dist: torch.Tensor, ref: torch.Tensor, *, thresh1: float = 2.55, thresh2: float = 3.35) -> torch.Tensor:
    """Most apparent distortion (MAD_index.m); 0 for identical images, larger is worse."""
    h, w = ref.shape[-2:]
    if min(h, w) < 2 * BLOCK + 2:
        raise InputError(f"mad needs images of at least {2 * BLOCK + 2} x {2 * BLOCK + 2} pixels "
                         f"(it drops a 16-pixel border and works on 16 x 16 blocks), got {h} x {w}.")
    return mad_index(dist, ref, thresh1=thresh1, thresh2=thresh2)[0].to(ref.dtype)


def mad_index(dist: torch.Tensor, ref: torch.Tensor, *, thresh1: float = 2.55,
              thresh2: float = 3.35) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAD_index.m's index.MAD, index.HI and index.LO, each of shape (N,), float64."""
    r, d = _grey255(ref), _grey255(dist)
    hi = hi_index(r, d)
    lo = lo_index(r, d)
    b1 = math.exp(-thresh1 / thresh2)
    b2 = 1 / (math.log(10) * thresh2)
    sig = 1 / (1 + b1 * hi ** b2)
    return lo ** (1 - sig) * hi ** sig, hi, lo
