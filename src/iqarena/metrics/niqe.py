"""NIQE: natural image quality evaluator (no reference; lower is better).

Mittal, Soundararajan, Bovik, "Making a 'completely blind' image quality analyzer", IEEE Signal Processing
Letters 2013. Original code: the LIVE NIQE release (computequality.m, computefeature.m,
estimateaggdparam.m, estimatemodelparam.m), http://live.ece.utexas.edu/research/quality/niqe_release.zip;
the pristine model modelparameters.mat ships with iqarena (weights/files/niqe, LIVE copyright notice).

As computequality.m: MATLAB rgb2gray (8-bit) for colour input, values 0..255 in float64; the image is
cropped to whole 96x96 blocks; two scales (the second from MATLAB imresize(., 0.5), bicubic with
antialiasing); MSCN coefficients with the 7x7 Gaussian window (sigma 7/6, 'replicate' padding, C = 1);
per block (48x48 at the second scale) 18 features: AGGD shape and mean scale of the coefficients, and for the
four neighbour products (circularly shifted within the block, as circshift on the blkproc block) the AGGD
shape, mean, left and right scale; nanmean / nancov over the blocks; quality = sqrt(d' pinv((S1 + S2)/2) d).
``estimate_niqe_model`` is estimatemodelparam.m: the same features, keeping the blocks whose mean local std
exceeds 0.75 x the image's largest (sharpness selection).

Calibration (docs/no-reference.md): the five official values to 1.5e-13 relative; the 15 printed digits
cannot all be reached in float64, since the covariance inversion amplifies rounding differences of
MATLAB's BLAS to about 1e-13. On images with flat or linear-ramp regions the sign of a coefficient that is
zero up to rounding changes the AGGD fit; the filters follow MATLAB's arithmetic
(ops.nss.conv2_separable) with separable factors fitted to the calibration pairs, so on other images such
regions may still tip differently from MATLAB (two such fits differ by up to 8e-3 relative on CLIVE photos).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.io
import torch

from ..errors import InputError
from ..io import output_path
from ..ops.nss import aggd_fit, gray255, grid, mscn, paired_aggd_fit
from ..ops.resize import imresize
from .registry import register

BLOCK = 96
N_FEATURES = 36


def _bundled(name: str):
    return resources.files("iqarena") / "weights" / "files" / "niqe" / name


@dataclass(frozen=True)
class NIQEModel:
    """A pristine multivariate Gaussian: mean (36,) and covariance (36, 36), float64."""

    mu: np.ndarray
    cov: np.ndarray

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a MATLAB .mat file with ``mu_prisparam`` (1, 36) and ``cov_prisparam`` (36, 36), as the release."""
        path = output_path(path, overwrite)
        scipy.io.savemat(str(path), {"mu_prisparam": self.mu.reshape(1, -1), "cov_prisparam": self.cov})
        return path


def load_niqe_model(path: str | Path | None = None) -> NIQEModel:
    """Read a NIQE model (.mat with mu_prisparam and cov_prisparam, as modelparameters.mat, or an .npz with
    the same names); ``None`` gives the LIVE release model bundled with iqarena."""
    return _load_cached(None if path is None else str(Path(path).resolve()))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str | None) -> NIQEModel:
    where = path or "the bundled modelparameters.mat"
    try:
        if path is None:
            with resources.as_file(_bundled("modelparameters.mat")) as p:
                data = scipy.io.loadmat(str(p))
        elif path.endswith(".npz"):
            data = dict(np.load(path))
        else:
            data = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise InputError(f"NIQE model file not found: {where}. Give a .mat file made by estimatemodelparam.m "
                         "or `iqarena niqe-fit`.") from None
    except Exception as exc:  # scipy raises several types for a file that is not a .mat
        raise InputError(f"cannot read NIQE model {where}: {exc}. It must be a MATLAB .mat (or .npz) file with "
                         "mu_prisparam (1x36) and cov_prisparam (36x36).") from exc
    try:
        mu = np.asarray(data["mu_prisparam"], dtype=np.float64).reshape(-1)
        cov = np.asarray(data["cov_prisparam"], dtype=np.float64)
    except (KeyError, ValueError, TypeError):
        raise InputError(f"NIQE model {where} lacks numeric mu_prisparam and cov_prisparam "
                         f"(found: {', '.join(k for k in data if not k.startswith('__'))}).") from None
    if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
        raise InputError(f"NIQE model {where} has mu of shape {mu.shape} and cov of shape {cov.shape}; "
                         f"expected ({N_FEATURES},) and ({N_FEATURES}, {N_FEATURES}).")
    return NIQEModel(mu, cov)


def _block_features(s: torch.Tensor, b: int) -> torch.Tensor:
    """(N, 1, H, W) MSCN coefficients, H and W multiples of b -> (N, blocks, 18), blocks in blkproc's
    column-major order (computefeature.m on each block)."""
    n, _, h, w = s.shape
    blocks = s.reshape(n, h // b, b, w // b, b).permute(0, 3, 1, 2, 4).reshape(n, -1, b, b)
    g = grid(s.device, s.dtype)
    alpha, left, right, idx = aggd_fit(blocks.flatten(-2))
    c = (g["g1"][idx] / g["g3"][idx]).sqrt()
    first = torch.stack([alpha, (left * c + right * c) / 2], -1)
    alpha, left, right, idx = paired_aggd_fit(blocks)  # (N, B, 4), products wrapping within each block
    c = (g["g1"][idx] / g["g3"][idx]).sqrt()
    bl, br = left * c, right * c
    mean = (br - bl) * (g["g2"][idx] / g["g1"][idx])
    pairs = torch.stack([alpha, mean, bl, br], -1).flatten(-2)  # (N, B, 16)
    return torch.cat([first, pairs], -1)


def niqe_features(x: torch.Tensor, block_size: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Block features (N, blocks, 36) and block sharpness (N, blocks) of computequality.m, float64.

    Sharpness is the mean local std (the MSCN denominator without C) of each block at the first scale,
    which estimatemodelparam.m uses to select pristine blocks.
    """
    im = gray255(x)
    h, w = im.shape[-2:]
    nr, nc = h // block_size, w // block_size
    if block_size < 2 or block_size % 2 or nr == 0 or nc == 0:
        raise InputError(f"NIQE needs at least one {block_size}x{block_size} block (an even block size); the image "
                         f"is {h}x{w}. Use a larger image or a smaller block_size.")
    im = im[..., : nr * block_size, : nc * block_size]
    feats, sharpness = [], None
    for scale in (1, 2):
        s, sd = mscn(im, "replicate")
        b = block_size // scale
        feats.append(_block_features(s, b))
        if scale == 1:
            n = sd.shape[0]
            sharpness = sd.reshape(n, nr, b, nc, b).permute(0, 3, 1, 2, 4).reshape(n, nr * nc, -1).mean(-1)
            im = imresize(im, 0.5)
    return torch.cat(feats, -1), sharpness


def _nan_mean_cov(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB nanmean (per column, ignoring NaN) and nancov (rows with a NaN dropped, n - 1 normalisation,
    n for a single row as MATLAB's) over dim 1 of (N, rows, features)."""
    mu = torch.nanmean(f, 1)
    ok = ~torch.isnan(f).any(-1, keepdim=True)
    n = ok.sum(1, keepdim=True).to(f.dtype)
    fz = torch.where(ok, f, torch.zeros_like(f))
    xc = torch.where(ok, f - fz.sum(1, keepdim=True) / n, torch.zeros_like(f))
    cov = xc.transpose(1, 2) @ xc / torch.where(n > 1, n - 1, torch.ones_like(n))
    return mu, cov


def _pinv(a: torch.Tensor) -> torch.Tensor:
    """MATLAB pinv: SVD, singular values above max(size) * eps(largest) inverted."""
    u, s, vh = torch.linalg.svd(a)
    tol = a.shape[-1] * torch.nextafter(s[..., :1], torch.full_like(s[..., :1], float("inf"))).sub(s[..., :1])
    inv = torch.where(s > tol, 1 / s, torch.zeros_like(s))
    return (vh.transpose(-1, -2) * inv[..., None, :]) @ u.transpose(-1, -2)


def niqe_distance(feats: torch.Tensor, model: NIQEModel) -> torch.Tensor:
    """sqrt(d' pinv((cov_pristine + cov_image) / 2) d) for block features (N, blocks, 36)."""
    mu, cov = _nan_mean_cov(feats)
    mu_p = torch.as_tensor(model.mu, dtype=feats.dtype, device=feats.device)
    cov_p = torch.as_tensor(model.cov, dtype=feats.dtype, device=feats.device)
    bad = ~torch.isfinite(cov).flatten(1).all(1)
    cov = torch.where(bad[:, None, None], torch.zeros_like(cov), cov)
    d = (mu_p - mu)[:, None, :]
    q = ((d @ _pinv((cov_p + cov) / 2)) @ d.transpose(1, 2)).reshape(-1).sqrt()
    return torch.where(bad, torch.full_like(q, float("nan")), q)


@register("niqe", kind="nr", higher_better=False, score_range=(0, float("inf")),
          paper="Mittal, Soundararajan, Bovik, Making a 'completely blind' image quality analyzer, IEEE SPL 2013",
          code="http://live.ece.utexas.edu/research/quality/niqe_release.zip (computequality.m)",
          colour="MATLAB rgb2gray rounded to 8 bits, values 0..255", weights=(), min_size=lambda o: o["block_size"],
          size_note="one 96x96 block (block_size option)",
          nonfinite={"nan": "no block with defined features (a flat image, e.g. an all-black frame): the AGGD fits "
                            "of all-zero MSCN coefficients are 0/0, as computequality.m"})
def niqe(x: torch.Tensor, *, model: str | None = None, block_size: int = BLOCK) -> torch.Tensor:
    """NIQE distance to the pristine model (LIVE release model unless ``model`` names a .mat/.npz file)."""
    feats, _ = niqe_features(x, block_size)
    return niqe_distance(feats, load_niqe_model(model)).to(x.dtype)


def iter_images(source) -> Iterable[torch.Tensor]:
    """Yield (1, C, H, W) tensors from a folder, a list of files, a tensor (N, C, H, W) or a list of tensors."""
    from ..io import list_images, read_image

    if isinstance(source, torch.Tensor):
        yield from (img[None] for img in (source if source.ndim == 4 else source[None]))
        return
    if isinstance(source, (str, Path)):
        source = list_images(source)
    for item in source:
        if isinstance(item, torch.Tensor):
            yield item if item.ndim == 4 else item[None]
        else:
            yield read_image(item)[None]


def estimate_niqe_model(images, *, block_size: int = BLOCK, sharpness_threshold: float = 0.75,
                        progress=None) -> NIQEModel:
    """Fit a pristine NIQE model as estimatemodelparam.m: from every image the blocks whose sharpness
    exceeds ``sharpness_threshold`` x the image's largest; then nanmean and nancov of their features.

    ``images``: a folder, a list of image files, a tensor (N, C, H, W) in [0, 1] or a list of (C, H, W) /
    (1, C, H, W) tensors. ``progress``: an optional callable run after each image.
    """
    rows = []
    for img in iter_images(images):
        feats, sharp = niqe_features(img.to(torch.float64), block_size)
        keep = sharp[0] > sharpness_threshold * sharp[0].max()
        rows.append(feats[0][keep])
        if progress is not None:
            progress()
    if not rows:
        raise InputError("no images given to estimate a NIQE model from.")
    f = torch.cat(rows)[None]
    if f.shape[1] < 2:
        raise InputError(f"only {f.shape[1]} sharp block(s) found; a NIQE model needs many (the release used "
                         "125 pristine images). Give more or larger images, or lower sharpness_threshold.")
    mu, cov = _nan_mean_cov(f)
    return NIQEModel(mu[0].numpy(), cov[0].numpy())
