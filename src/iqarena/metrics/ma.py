"""Ma's no-reference super-resolution quality (Ma's score, NRQM; higher is better, 0..10) and PI.

Ma, Yang, Yang, Yang, "Learning a no-reference quality metric for single-image super-resolution", Computer
Vision and Image Understanding 158, 2017. Original code: https://github.com/chaoma99/sr-metric
(quality_predict.m, feature_all.m, block_dct.m, global_gsm.m, norm_sender_normalized.m, ssim_index_new.m,
gama_gen_gauss.m; matlabPyrTools' buildSFpyr; randomforest-matlab's regRF_predict / mex_regressionRF_predict.cpp);
the trained forests are its model.mat (MIT licence; catalogue entry ``ma-model``, not bundled).

As feature_all.m on MATLAB rgb2gray rounded to 8 bits (grey input used as it is), float64 throughout:

- three scales: the image in [0, 1], then twice a 3x3 Gaussian (sigma 0.5, zero padding) keeping every second
  pixel from the second;
- local frequency statistics (18): blkproc 3x3 blocks with a 2-pixel border (7x7, zero padded) -> 2-D DCT;
  per block the generalised-Gaussian shape of the AC coefficients (grid 0.03:0.001:10, closest moment ratio),
  their coefficient of variation and the variance over the three oriented DCT zones of the coefficient of
  variation; pooled as the mean of the lowest 10 % and of all (shape), the highest 10 % and all (the others);
- global frequency statistics (45) on the 0..255 image: buildSFpyr(2 levels, 6 orientations) -> the divisive
  normalisation of norm_sender_normalized.m (3x3 neighbours, the parent for orientations 1-5 of level 1, the
  other orientations of the level; guard bands 16 and 8) -> GGD shapes of the 12 normalised bands and of the 6
  level pairs, then the SSIM contrast-structure means (11x11 Gaussian, 'valid') between each raw band, resized
  to full size, and the high-pass residual (12), and between the 15 pairs of level-1 normalised bands;
- spatial discontinuity (75): the 25 singular values of the distinct 5x5 patches (im2col, zero padded) per scale;
- three regression forests (randomForest's regRF: x <= split goes left; mean of the trees) on the three
  groups, then ``[1 s1 s2 s3] * linear``.

Known differences: none on purpose. Rounding differs from MATLAB in the last bits (FFT, LAPACK, the DCT as a matrix
product); it shows most in the oriented-zone coefficients of variation of blocks whose zone coefficients are zero
up to rounding (flat or one-directional blocks: noise over eps = 1e-8), up to 2e-10 in a pooled feature against
feature_all.m in GNU Octave (tests/test_ma.py), and it could move a GGD shape to the neighbouring grid value where
a moment ratio falls within rounding of the midpoint between two grid values. A feature that is not finite gives
a NaN score (the original stops with an error).

PI (Blau et al., "The 2018 PIRM challenge on perceptual image super-resolution", ECCV Workshops 2018;
https://github.com/roimehrez/PIRM2018, calc_scores.m / convert_shave_image.m) = ((10 - Ma) + NIQE) / 2 on the
Y channel of MATLAB rgb2ycbcr rounded to 8 bits (16..235) with 4 pixels shaved off every border: the PIRM
evaluation code scores that image with both quality_predict.m and the NIQE release (96x96 blocks).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from scipy.special import gamma as _gamma
from torch import nn

from ..errors import InputError
from ..ops.color import rgb2ycbcr_y8
from ..ops.filters import gaussian_kernel1d
from ..ops.nss import _closest, gray255, matlab_colon
from ..ops.resize import imresize
from ..ops.sfpyr import build_sf_pyr
from .niqe import load_niqe_model, niqe_distance, niqe_features
from .registry import register

N_FEATURES = (18, 45, 75)
MIN_SIDE = 48  # the guard bands of the level-2 normalised bands and the 11x11 SSIM window need it
PIRM_SHAVE = 4

# ------------------------------------------------------------------ generalised Gaussian shape (gama_gen_gauss.m)


@functools.cache
def _ggd_grid_np() -> tuple[np.ndarray, np.ndarray]:
    g = matlab_colon(0.03, 0.001, 10.0)
    r = (_gamma(1.0 / g) * _gamma(3.0 / g)) / (_gamma(2.0 / g) ** 2)  # strictly decreasing on this grid
    return g, r


def _ggd_grid(device) -> tuple[torch.Tensor, torch.Tensor]:
    g, r = _ggd_grid_np()
    return torch.as_tensor(g, device=device), torch.as_tensor(r, device=device)


def gama_gen_gauss(v: torch.Tensor) -> torch.Tensor:
    """gama_gen_gauss.m over the last dim: the grid shape whose ratio Gamma(1/g)Gamma(3/g)/Gamma(2/g)^2 is
    closest to var / (mean |v - mean| ^ 2 + 1e-7) (first index on ties)."""
    v = v.to(torch.float64)
    m = v.mean(-1, keepdim=True)
    var = v.var(-1)
    mean_abs = (v - m).abs().mean(-1) ** 2
    rho = var / (mean_abs + 1e-7)
    g, r = _ggd_grid(v.device)
    return g[_closest(r, rho, increasing=False, squared=False)]


# ------------------------------------------------------------------ local frequency statistics (block_dct.m)

@functools.lru_cache(maxsize=4)
def _dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    c = math.sqrt(2 / n) * torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
    c[0] /= math.sqrt(2)
    return c


def _zones7() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three oriented zones of a 7x7 DCT block (oriented{1,2,3}_dct_rho_config3.m, nn == 7), as masks."""
    z = torch.zeros(3, 7, 7, dtype=torch.bool)
    for r, c0 in ((0, 1), (1, 2), (2, 4), (3, 5)):   # temp(1,2:end) temp(2,3:end) temp(3,5:end) temp(4,6:end)
        z[0, r, c0:] = True
    z[1, 1, 1] = True                                 # temp(2,2) temp(3,3:4) temp(4,3:5) temp(5,4:end) ...
    for r, a, b in ((2, 2, 4), (3, 2, 5), (4, 3, 7), (5, 4, 7), (6, 4, 7)):
        z[1, r, a:b] = True
    for c, r0 in ((0, 1), (1, 2), (2, 4), (3, 5)):   # temp(2:end,1) temp(3:end,2) temp(5:end,3) temp(6:end,4)
        z[2, r0:, c] = True
    return z[0], z[1], z[2]


def _cv(v: torch.Tensor, eps: float) -> torch.Tensor:
    a = v.abs()
    return a.std(-1) / (a.mean(-1) + eps)


def _pool_low(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the lowest ceil(10 %) values and of all values, over the last dim (summed in sorted order)."""
    s = v.sort(-1).values
    k = math.ceil(v.shape[-1] * 0.1)
    return s[..., :k].mean(-1), s.mean(-1)


def _pool_high(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the values from sorted position fix(0.9 n) (1-based) to the end, and of all values."""
    s = v.sort(-1).values
    k = int(v.shape[-1] * 0.9)
    return s[..., max(k - 1, 0):].mean(-1), s.mean(-1)


def block_dct_features(im: torch.Tensor) -> torch.Tensor:
    """block_dct.m for (N, 1, H, W) float64 images in [0, 1]: (N, 6)."""
    n, _, h, w = im.shape
    p = F.pad(im, (2, 2 + (-w) % 3, 2, 2 + (-h) % 3))
    blocks = F.unfold(p, 7, stride=3).transpose(1, 2).reshape(n, -1, 7, 7)  # blkproc's 7x7 blocks
    d = _dct_matrix(7).to(im.device)
    c = d @ blocks @ d.T
    flat = c.flatten(-2)
    ac = flat[..., 1:]  # every coefficient but the DC one (the order does not matter for these statistics)
    gama = gama_gen_gauss(ac)
    cv = _cv(ac, 1e-7)
    zones = [flat[..., m.flatten().to(im.device)] for m in _zones7()]
    ori = torch.stack([_cv(z, 1e-8) for z in zones], -1).var(-1)
    return torch.stack([*_pool_low(gama), *_pool_high(cv), *_pool_high(ori)], -1)


# ------------------------------------------------------------------ global statistics (global_gsm.m)

def _correlate_valid(x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """'valid' correlation with 1-D ``taps`` along ``dim``, as a sum of shifted slices (fast in float64 on CPU)."""
    n = x.shape[dim] - taps.numel() + 1
    out = x.narrow(dim, 0, n) * taps[0]
    for k in range(1, taps.numel()):
        out.add_(x.narrow(dim, k, n), alpha=float(taps[k]))
    return out


def _gauss_valid(x: torch.Tensor) -> torch.Tensor:
    """filter2(fspecial('gaussian', 11, 1.5), x, 'valid') over the last two dims (the window is separable)."""
    g = gaussian_kernel1d(11, 1.5, torch.float64)
    return _correlate_valid(_correlate_valid(x, g, -2), g, -1)


def _cs_mean(a: torch.Tensor, b: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Mean of ssim_index_new.m's cs_map (C2 = (0.03 * 255)^2) between ``a[..., i, :, :]`` and ``b[..., j, :, :]``
    for each index pair; every band is filtered once (its mean and energy), only the products once per pair."""
    c2 = (0.03 * 255) ** 2
    mu_a, e_a = _gauss_valid(a), _gauss_valid(a * a)
    mu_b, e_b = (mu_a, e_a) if b is a else (_gauss_valid(b), _gauss_valid(b * b))
    mu1, mu2 = mu_a[..., i, :, :], mu_b[..., j, :, :]
    s11, s22 = e_a[..., i, :, :] - mu1 * mu1, e_b[..., j, :, :] - mu2 * mu2
    s12 = _gauss_valid(a[..., i, :, :] * b[..., j, :, :]) - mu1 * mu2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return cs.mean((-2, -1))


def _interior(x: torch.Tensor, dy: int = 0, dx: int = 0) -> torch.Tensor:
    """x(2 - dy : end - 1 - dy, 2 - dx : end - 1 - dx): the interior shifted by (dy, dx), as shift.m then a crop."""
    h, w = x.shape[-2:]
    return x[..., 1 - dy: h - 1 - dy, 1 - dx: w - 1 - dx]


def _normalised_band(y_cols: list[torch.Tensor], centre: torch.Tensor, n_norm: int, guard: int) -> torch.Tensor:
    """One band of norm_sender_normalized.m: (N, h, w) interior coefficients divided by the GSM multiplier
    estimated from their neighbourhoods ``y_cols`` (each (N, h, w)), guard band removed, mean removed."""
    y = torch.stack(y_cols, 1).flatten(2)  # (N, K, P)
    p = y.shape[-1]
    c = y @ y.transpose(1, 2) / p
    lam, q = torch.linalg.eigh(c)
    pos = lam * (lam > 0)
    s, sp = lam.sum(-1, keepdim=True), pos.sum(-1, keepdim=True)
    lam = pos * s / (sp + (sp == 0))
    c = (q * lam[:, None, :]) @ q.transpose(1, 2)
    pinv = torch.linalg.pinv(c)
    z = (((pinv.transpose(1, 2) @ y) * y) / n_norm).sum(1).sqrt()  # rows of Y * pinv(C) .* Y / N, summed
    o = centre.flatten(1)
    o = o - o.mean(-1, keepdim=True)
    g = (o / z).reshape(centre.shape)
    g = g[..., guard: g.shape[-2] - guard, guard: g.shape[-1] - guard]
    return g - g.mean((-2, -1), keepdim=True)


def global_gsm_features(gray: torch.Tensor) -> torch.Tensor:
    """global_gsm.m for (N, 1, H, W) float64 images in 0..255: (N, 45)."""
    h, w = gray.shape[-2:]
    hi0, (b1, b2), _ = build_sf_pyr(gray, 2, order=5)
    hi0, b1, b2 = hi0[:, 0], b1[:, 0], b2[:, 0]  # (N, H, W), (N, 6, H, W), (N, 6, h2, w2)
    parents = imresize(b2, 2.0)[..., :h, :w]  # imresize(auxp, 2), cropped to the child's size
    subbands = []
    for level, band in enumerate((b1, b2)):
        for o in range(6):
            cols = [_interior(band[:, o], dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            parent = level == 0 and o < 5  # nband < Nband - Nor: orientation 6 of level 1 has no parent
            if parent:
                cols.append(_interior(parents[:, o]))
            cols += [_interior(band[:, k]) for k in range(6) if k != o]
            subbands.append(_normalised_band(cols, _interior(band[:, o]), 9 + parent, 16 >> level))
    s1, s2 = torch.stack(subbands[:6], 1), torch.stack(subbands[6:], 1)
    gama_horz = torch.cat([gama_gen_gauss(s1.flatten(2)), gama_gen_gauss(s2.flatten(2))], 1)
    gama_scale = gama_gen_gauss(torch.cat([s1.flatten(2), s2.flatten(2)], -1))
    up = torch.cat([b1, imresize(b2, size=(h, w))], 1)  # level-1 bands already have the high-pass size
    cs_scale = _cs_mean(up, hi0[:, None], torch.arange(12), torch.zeros(12, dtype=torch.long))
    i, j = torch.triu_indices(6, 6, 1)
    cs_orient = _cs_mean(s1, s1, i, j)
    return torch.cat([gama_horz, gama_scale, cs_scale, cs_orient], 1)


# ------------------------------------------------------------------ all features (feature_all.m)

def _half(im: torch.Tensor) -> torch.Tensor:
    """imfilter(im, fspecial('gaussian', 3)) (zero padding), then every second pixel from the second."""
    g = gaussian_kernel1d(3, 0.5, torch.float64)
    f = _correlate_valid(_correlate_valid(F.pad(im, (1, 1, 1, 1)), g, -2), g, -1)
    return f[..., 1::2, 1::2]


def _patch_svd(im: torch.Tensor) -> torch.Tensor:
    h, w = im.shape[-2:]
    cols = F.unfold(F.pad(im, (0, (-w) % 5, 0, (-h) % 5)), 5, stride=5)  # im2col(im, [5 5], 'distinct')
    return torch.linalg.svdvals(cols)


def _check_size(h: int, w: int) -> None:
    """InputError unless feature_all.m gives all 138 features: the guard bands and the SSIM window need 48 pixels
    a side, and svd(im2col(.)) 25 values only from at least 25 patches of 5x5 at the third scale."""
    h3, w3 = h // 4, w // 4
    if min(h, w) < MIN_SIDE or -(-h3 // 5) * -(-w3 // 5) < 25:
        raise InputError(f"Ma's score needs an image of at least {MIN_SIDE}x{MIN_SIDE} pixels whose quarter-size "
                         f"scale holds 25 patches of 5x5 (e.g. 84x84 or larger); got {h}x{w}.")


def ma_features_gray(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """feature_all.m on (N, 1, H, W) grey images with values 0..255 (float64): (f1 (N, 18), f2 (N, 45), f3 (N, 75))."""
    gray = gray.to(torch.float64)
    _check_size(*gray.shape[-2:])
    im1 = gray / 255
    im2 = _half(im1)
    im3 = _half(im2)
    scales = (im1, im2, im3)
    f1 = torch.cat([block_dct_features(s) for s in scales], 1)
    f2 = global_gsm_features(gray)
    f3 = torch.cat([_patch_svd(s) for s in scales], 1)
    return f1, f2, f3


def ma_features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ma's three feature groups for (N, C, H, W) images in [0, 1] (MATLAB rgb2gray on 8-bit values)."""
    return ma_features_gray(gray255(x))


# ------------------------------------------------------------------ regression forests (regRF_predict.m)

NODE_TERMINAL = -1


@dataclass(frozen=True)
class RegressionForest:
    """A randomForest regression forest (randomforest-matlab's regRF struct), 0-based, one row per tree.

    ``left``/``right``: child node indices; ``terminal``: leaf flags; ``var``: split variable; ``split``: threshold
    (x <= split goes left); ``value``: node prediction; ``coef``: the bias correction (a + b * prediction, applied
    when either is non-zero).
    """

    left: np.ndarray
    right: np.ndarray
    terminal: np.ndarray
    var: np.ndarray
    split: np.ndarray
    value: np.ndarray
    coef: np.ndarray
    leaves_from: str = "nodestatus"  # how leaves were told: nodestatus, nodestatus (MATLAB packing), or lDau

    @property
    def n_trees(self) -> int:
        return self.left.shape[0]

    @functools.cached_property
    def n_inputs(self) -> int:
        """Features the splits read (the highest split variable + 1)."""
        return int(self.var[~self.terminal].max(initial=-1)) + 1

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``x`` (n, features), as mexRF_predict: trees summed in order, then / ntree."""
        x = np.asarray(x, dtype=np.float64)
        need = self.n_inputs
        if x.ndim != 2 or x.shape[1] < need:
            raise InputError(f"forest input must be (n, features) with at least {need} columns, got {x.shape}.")
        n, t = x.shape[0], self.n_trees
        nodes = self.left.shape[1]
        # flat node ids (tree * nodes + node) for every (row, tree); only the walks not yet at a leaf move on
        pos = np.repeat(np.arange(t, dtype=np.int64)[None, :] * nodes, n, 0).ravel()
        row = np.repeat(np.arange(n, dtype=np.int64), t) * x.shape[1]
        left, right = self.left.ravel(), self.right.ravel()
        terminal, var, split = self.terminal.ravel(), self.var.ravel(), self.split.ravel()
        base = pos - pos % nodes
        xf = x.ravel()
        walk = np.flatnonzero(~terminal[pos])
        for _ in range(nodes):
            if walk.size == 0:
                break
            p = pos[walk]
            go_left = xf[row[walk] + var[p]] <= split[p]
            p = base[walk] + np.where(go_left, left[p], right[p])
            pos[walk] = p
            walk = walk[~terminal[p]]
        pred = np.cumsum(self.value.ravel()[pos].reshape(n, t), axis=1)[:, -1] / t  # in tree order, as the C loop
        if np.any(self.coef != 0):
            pred = self.coef[0] + self.coef[1] * pred
        return pred


@dataclass(frozen=True)
class MaModel:
    """The three forests (DCT, GSM, PCA features) and the linear weights (4,) of Ma's model.mat."""

    forests: tuple[RegressionForest, RegressionForest, RegressionForest]
    linear: np.ndarray

    def predict(self, f1, f2, f3) -> np.ndarray:
        s = [forest.predict(np.asarray(f, dtype=np.float64)) for forest, f in zip(self.forests, (f1, f2, f3))]
        b = self.linear
        return ((b[0] + s[0] * b[1]) + s[1] * b[2]) + s[2] * b[3]


def _status_from(raw: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """Candidate decodings of nodestatus, (nodes, trees) int8: one element per node (Octave's 1-byte char, or an
    int8 array), and MATLAB's packing (its mex fills a 2-byte char array with 1-byte values, so two nodes share a
    UTF-16 code unit, little-endian, and the second half of the array stays zero)."""
    if raw.dtype.kind == "U":
        codes = np.ascontiguousarray(raw).view(np.uint32).reshape(raw.shape).astype(np.int64)
    elif raw.dtype.kind == "S":
        codes = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(raw.shape).astype(np.int64)
    else:
        codes = raw.astype(np.int64)
    out = []
    if codes.shape == shape:
        out.append(("nodestatus", ((codes & 0xFF) ^ 0x80) - 0x80))
        by = np.frombuffer(codes.astype("<u2").ravel(order="F").tobytes(), dtype=np.int8)[: shape[0] * shape[1]]
        out.append(("nodestatus (MATLAB packing)", by.reshape(shape, order="F").astype(np.int64)))
    return out


def _forest_from_fields(get) -> RegressionForest:
    """A RegressionForest from the fields of a regRF struct; ``get(name)`` returns the MATLAB array (2-D)."""
    ldau = np.asarray(get("lDau")).astype(np.int64)
    rdau = np.asarray(get("rDau")).astype(np.int64)
    nodes, trees = ldau.shape
    ntree = int(np.asarray(get("ntree")).ravel()[0])
    ndtree = np.asarray(get("ndtree")).astype(np.int64).ravel()
    upper = np.asarray(get("upper"), dtype=np.float64)
    avnode = np.asarray(get("avnode"), dtype=np.float64)
    mbest = np.asarray(get("mbest")).astype(np.int64)
    try:
        coef = np.asarray(get("coef"), dtype=np.float64).ravel()
    except KeyError:
        coef = np.zeros(2)
    if coef.size < 2:
        coef = np.zeros(2)
    if trees != ntree or rdau.shape != ldau.shape or upper.shape != ldau.shape or avnode.shape != ldau.shape \
            or mbest.shape != ldau.shape or ndtree.size != ntree:
        raise InputError(f"inconsistent regRF structure: lDau {ldau.shape}, rDau {rdau.shape}, upper {upper.shape}, "
                         f"avnode {avnode.shape}, mbest {mbest.shape}, ndtree {ndtree.size}, ntree {ntree}.")
    # Which nodes are leaves: nodestatus == -1, decoded as the file stores it; checked against lDau (a leaf has
    # no daughter) on the nodes each tree uses; lDau == 0 decides if no decoding agrees.
    used = np.arange(nodes)[:, None] < ndtree[None, :]
    leaf_by_daughter = ldau == 0
    terminal, source = leaf_by_daughter, "lDau"
    try:
        raw = np.asarray(get("nodestatus"))
    except KeyError:
        raw = None
    if raw is not None:
        for name, status in _status_from(raw, (nodes, trees)):
            t = status == NODE_TERMINAL
            if np.array_equal(t[used], leaf_by_daughter[used]):
                terminal, source = t | ~used, name
                break
    return RegressionForest(left=(ldau - 1).T.copy(), right=(rdau - 1).T.copy(), terminal=terminal.T.copy(),
                            var=(mbest - 1).clip(min=0).T.copy(), split=upper.T.copy(), value=avnode.T.copy(),
                            coef=coef[:2], leaves_from=source)


def _read_v5(path: str) -> MaModel:
    m = scipy.io.loadmat(path, chars_as_strings=False)
    if "model" not in m:
        raise InputError(f"{path} has no variable 'model' (found: {', '.join(k for k in m if not k.startswith('__'))}).")
    model = m["model"].ravel()[0]
    rf = model["rf"].ravel()
    if rf.size != 3:
        raise InputError(f"{path}: model.rf must hold 3 forests, found {rf.size}.")
    forests = []
    for cell in rf:
        s = np.asarray(cell).ravel()[0]

        def get(name, s=s):
            if name not in (s.dtype.names or ()):
                raise KeyError(name)
            return s[name]

        forests.append(_forest_from_fields(get))
    return MaModel(tuple(forests), np.asarray(model["linear"], dtype=np.float64).ravel())


def _read_v73(path: str) -> MaModel:
    import h5py

    with h5py.File(path, "r") as f:
        if "model" not in f:
            raise InputError(f"{path} has no variable 'model' (found: {', '.join(f)}).")
        g = f["model"]
        refs = np.asarray(g["rf"]).ravel()
        if refs.size != 3:
            raise InputError(f"{path}: model.rf must hold 3 forests, found {refs.size}.")
        forests = []
        for ref in refs:
            s = f[ref]

            def get(name, s=s):
                if name not in s:
                    raise KeyError(name)
                return np.asarray(s[name]).T  # HDF5 holds MATLAB's column-major arrays transposed

            forests.append(_forest_from_fields(get))
        linear = np.asarray(g["linear"], dtype=np.float64).ravel()
    return MaModel(tuple(forests), linear)


def _is_hdf5(path: str) -> bool:
    """MATLAB v7.3 files are HDF5 (with a 512-byte MATLAB header as the user block)."""
    import h5py

    return h5py.is_hdf5(path)


def load_ma_model(path: str | Path | None = None) -> MaModel:
    """Read Ma's model.mat (MATLAB v5/v7 through scipy, v7.3 through h5py): ``model.rf`` (3 regRF structs:
    lDau, rDau, nodestatus, nrnodes, upper, avnode, mbest, ndtree, ntree, coef) and ``model.linear`` (4).
    ``None``: the catalogue's ``ma-model`` (hash-checked; a clear error says where to get it if missing)."""
    if path is None:
        from ..weights import path_for

        path = path_for("ma-model")
    return _load_cached(str(Path(path).resolve()))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> MaModel:
    if not Path(path).is_file():
        raise InputError(f"Ma model file not found: {path}.")
    try:
        model = _read_v73(path) if _is_hdf5(path) else _read_v5(path)
    except (KeyError, IndexError, ValueError, TypeError, NotImplementedError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read Ma's model {path}: {exc}. It must be a MATLAB .mat file with a struct "
                         "'model' holding rf (3 regRF structs) and linear (4 weights).") from exc
    if model.linear.size != 4:
        raise InputError(f"Ma's model {path}: linear must have 4 weights, found {model.linear.size}.")
    return model


# ------------------------------------------------------------------ the metrics

def _predict(model: MaModel, feats) -> torch.Tensor:
    """The model on the features; NaN where a feature is not finite (a flat image: the GSM normalisation divides
    0 by 0, where norm_sender_normalized.m stops with an error)."""
    f = [t.cpu().numpy() for t in feats]
    s = model.predict(*f)
    bad = ~np.all(np.concatenate([np.isfinite(a) for a in f], 1), 1)
    return torch.as_tensor(np.where(bad, np.nan, s), dtype=torch.float64)


def ma_score(x: torch.Tensor, model: MaModel) -> torch.Tensor:
    """Ma's score of (N, C, H, W) images in [0, 1] with a loaded model."""
    return _predict(model, ma_features(x)).to(dtype=x.dtype, device=x.device)


def pirm_y(x: torch.Tensor, shave: int = PIRM_SHAVE) -> torch.Tensor:
    """The PIRM evaluation's input: Y of MATLAB rgb2ycbcr on 8-bit values, rounded to 8 bits, as (N, 1, H, W) in
    [0, 1], with ``shave`` pixels removed from every border (convert_shave_image.m). Grey input is taken as R = G = B."""
    y = rgb2ycbcr_y8(x if x.shape[1] == 3 else x.expand(-1, 3, -1, -1))
    h, w = y.shape[-2:]
    if min(h, w) <= 2 * shave:
        raise InputError(f"a {h}x{w} image has nothing left after shaving {shave} pixels off every border.")
    return y[..., shave: h - shave, shave: w - shave] if shave else y


@register("ma", kind="nr", higher_better=True, score_range=(0, 10), aliases=("nrqm",),
          paper="Ma, Yang, Yang, Yang, Learning a no-reference quality metric for single-image super-resolution, "
                "CVIU 2017",
          code="https://github.com/chaoma99/sr-metric (quality_predict.m, feature_all.m)",
          colour="MATLAB rgb2gray rounded to 8 bits (grey input as it is)", weights=("ma-model",),
          min_size=84, size_note="25 patches of 5x5 at the quarter scale (svd of im2col in feature_all.m)",
          nonfinite={"nan": "a feature that is not finite (the GSM normalisation divides by a zero multiplier); "
                            "norm_sender_normalized.m stops with an error there"})
class Ma(nn.Module):
    """Ma's score (NRQM), 0..10, higher is better. ``model``: a model.mat path (default: the catalogue's)."""

    def __init__(self, model: str | Path | None = None):
        super().__init__()
        self.model = load_ma_model(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ma_score(x, self.model)


@register("pi", kind="nr", higher_better=False, score_range=(0, float("inf")),
          paper="Blau, Mechrez, Timofte, Michaeli, Zelnik-Manor, The 2018 PIRM challenge on perceptual image "
                "super-resolution, ECCV Workshops 2018",
          code="https://github.com/roimehrez/PIRM2018 (calc_scores.m, convert_shave_image.m)",
          colour="Y of MATLAB rgb2ycbcr rounded to 8 bits (grey as R = G = B), 4-pixel border shaved",
          weights=("ma-model",), aliases=("perceptual_index",), min_size=lambda o: 96 + 2 * o["shave"],
          size_note="NIQE's 96x96 block after the PIRM border shave (shave option)",
          nonfinite={"nan": "Ma's features not finite (see ma), or no NIQE block with defined features (a flat "
                            "image), as calc_scores.m"})
class PerceptualIndex(nn.Module):
    """Perceptual index ((10 - Ma) + NIQE) / 2 with the PIRM conventions, lower is better. ``model``: Ma's
    model.mat (default: the catalogue's); ``shave``: border pixels removed (PIRM: 4)."""

    def __init__(self, model: str | Path | None = None, shave: int = PIRM_SHAVE):
        super().__init__()
        self.model = load_ma_model(model)
        self.shave = int(shave)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pirm_y(x, self.shave).to(torch.float64)
        ma = _predict(self.model, ma_features(y))
        feats, _ = niqe_features(y)
        nq = niqe_distance(feats, load_niqe_model(None)).cpu()
        return (((10 - ma) + nq) / 2).to(dtype=x.dtype, device=x.device)
