"""BRISQUE: blind/referenceless image spatial quality evaluator (no reference; lower is better).

Mittal, Moorthy, Bovik, "No-reference image quality assessment in the spatial domain", IEEE TIP 2012.
Original code: the LIVE BRISQUE release (brisquescore.m, brisque_feature.m, estimateggdparam.m,
estimateaggdparam.m, libsvm's svm-scale and svm-predict with allrange and allmodel),
http://live.ece.utexas.edu/research/quality/BRISQUE_release.zip; allmodel / allrange ship with iqarena
(weights/files/brisque, LIVE copyright notice).

As brisquescore.m: MATLAB rgb2gray (8-bit) for colour input, values 0..255 in float64; 36 features over
two scales (the second from MATLAB imresize(., 0.5)): MSCN coefficients with the 7x7 Gaussian window
(sigma 7/6) applied by filter2 'same' (zero padding), their GGD shape and variance, and for the four
neighbour products (circshift over the whole image) the AGGD shape, mean, left and right variance. The
release writes the features with fprintf('%f'), svm-scale rescales them to [-1, 1] with allrange and
prints '%g', and svm-predict evaluates the RBF epsilon-SVR and prints '%g'; with ``libsvm_io=True``
(default) these roundings are reproduced, so scores equal the release's printed output. The SVR is
evaluated here (no executables): sum_i coef_i exp(-gamma |x - sv_i|^2) - rho.

``train_brisque`` fits a new epsilon-SVR with an RBF kernel (libsvm, through scikit-learn's ``SVR``; extra
``iqarena[train]``) on the features of labelled images and writes ``allmodel`` / ``allrange`` in libsvm's text
formats, readable by libsvm and by ``brisque(model=DIR)``.

Calibration (docs/no-reference.md): all five official values to their printed digits. On images with flat
regions the sign of the coefficients that are zero up to rounding depends on MATLAB's filter arithmetic,
reproduced by ops.nss.conv2_separable with separable factors fitted to the calibration pairs; on other
images such regions may still tip differently from MATLAB (two such fits differ by up to 0.6 on CLIVE photos).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ResourceError
from ..io import output_path
from ..ops.nss import ggd_fit, gray255, grid, mscn, paired_aggd_fit
from ..ops.resize import imresize
from .registry import register

N_FEATURES = 36
MIN_SIZE = 16


def _bundled(name: str):
    return resources.files("iqarena") / "weights" / "files" / "brisque" / name


# ----------------------------------------------------------------------------------------- libsvm files

@dataclass
class SVRModel:
    """An RBF support-vector regression in libsvm's model format (epsilon_svr or nu_svr)."""

    gamma: float
    rho: float
    coef: np.ndarray                 # (n_sv,)
    sv: np.ndarray                   # (n_sv, n_features), zeros where the file omits an index
    header: dict = field(default_factory=dict)  # other header lines (svm_type, nr_class, probA, ...) as text

    def predict(self, scaled: torch.Tensor) -> torch.Tensor:
        """Decision values sum_i coef_i exp(-gamma |x - sv_i|^2) - rho for scaled features (N, F), float64."""
        x = scaled.to(torch.float64)
        sv = torch.as_tensor(self.sv, dtype=torch.float64, device=x.device)
        if x.shape[1] < sv.shape[1]:
            x = torch.nn.functional.pad(x, (0, sv.shape[1] - x.shape[1]))
        elif x.shape[1] > sv.shape[1]:
            sv = torch.nn.functional.pad(sv, (0, x.shape[1] - sv.shape[1]))
        d2 = ((x[:, None, :] - sv[None]) ** 2).sum(-1)
        coef = torch.as_tensor(self.coef, dtype=torch.float64, device=x.device)
        return torch.exp(-self.gamma * d2) @ coef - self.rho

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write libsvm's text format; numbers with 17 significant digits, so reading it back is exact."""
        path = _writable(path, overwrite)
        head = {"svm_type": "epsilon_svr", "kernel_type": "rbf", **self.header}
        head.update(gamma=repr(float(self.gamma)), total_sv=str(len(self.coef)), rho=repr(float(self.rho)))
        order = ["svm_type", "kernel_type", "degree", "gamma", "coef0", "nr_class", "total_sv", "rho", "label",
                 "probA", "probB", "nr_sv"]
        keys = [k for k in order if k in head] + [k for k in head if k not in order]
        lines = [f"{k} {head[k]}" for k in keys] + ["SV"]
        for c, row in zip(self.coef, self.sv):
            items = " ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(row) if v != 0)
            lines.append(f"{float(c)!r} {items} ")
        path.write_text("\n".join(lines) + "\n")
        return path


def read_svr_model(path: str | Path) -> SVRModel:
    """Parse a libsvm model file (RBF epsilon-SVR or nu-SVR), as svm-predict reads it."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the BRISQUE model {path}: {exc}.") from None
    return parse_svr_model(text, str(path))


def parse_svr_model(text: str, where: str = "model") -> SVRModel:
    lines = text.splitlines()
    header: dict[str, str] = {}
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "SV")
    except StopIteration:
        raise InputError(f"{where} is not a libsvm model file: no 'SV' line. Give the allmodel file of the "
                         "BRISQUE release or one written by train_brisque.") from None
    for ln in lines[:start]:
        if ln.strip():
            key, _, value = ln.strip().partition(" ")
            header[key] = value.strip()
    if header.get("kernel_type") != "rbf" or header.get("svm_type") not in ("epsilon_svr", "nu_svr"):
        raise InputError(f"{where}: svm_type {header.get('svm_type')!r}, kernel_type {header.get('kernel_type')!r}; "
                         "BRISQUE needs an RBF regression model (epsilon_svr or nu_svr, kernel_type rbf).")
    try:
        gamma, rho = float(header.pop("gamma")), float(header.pop("rho"))
        coefs, rows = [], []
        for ln in lines[start + 1:]:
            parts = ln.split()
            if not parts:
                continue
            coefs.append(float(parts[0]))
            rows.append({int(i): float(v) for i, v in (p.split(":") for p in parts[1:])})
    except (KeyError, ValueError) as exc:
        raise InputError(f"{where}: malformed libsvm model ({exc}). Each SV line is 'coef index:value ...' and "
                         "the header needs gamma and rho.") from None
    if not coefs:
        raise InputError(f"{where}: the model has no support vectors.")
    n_feat = max((max(r) for r in rows if r), default=0)
    sv = np.zeros((len(rows), n_feat))
    for k, r in enumerate(rows):
        for i, v in r.items():
            sv[k, i - 1] = v
    header.pop("total_sv", None)
    return SVRModel(gamma, rho, np.array(coefs), sv, header)


@dataclass
class FeatureRange:
    """svm-scale's range file: features mapped from [fmin, fmax] to [lower, upper]."""

    lower: float
    upper: float
    fmin: np.ndarray
    fmax: np.ndarray

    def scale(self, f: np.ndarray) -> np.ndarray:
        """svm-scale: value == min -> lower, == max -> upper, else lower + (upper - lower)(v - min)/(max - min);
        features with min == max are dropped (0)."""
        span = self.fmax - self.fmin
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.lower + (self.upper - self.lower) * (f - self.fmin) / span
        out = np.where(f == self.fmin, self.lower, np.where(f == self.fmax, self.upper, out))
        return np.where(span == 0, 0.0, out)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        path = _writable(path, overwrite)
        lines = ["x", f"{self.lower!r} {self.upper!r}"]
        lines += [f"{i + 1} {float(a)!r} {float(b)!r}" for i, (a, b) in enumerate(zip(self.fmin, self.fmax))]
        path.write_text("\n".join(lines) + "\n")
        return path


def read_feature_range(path: str | Path) -> FeatureRange:
    """Parse svm-scale's range file (the 'x' section; a 'y' section is not used by BRISQUE)."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        if not lines or lines[0] != ["x"]:
            raise ValueError("the first line must be 'x'")
        lower, upper = float(lines[1][0]), float(lines[1][1])
        rows = {}
        for parts in lines[2:]:
            if parts[0] == "y":
                break
            rows[int(parts[0])] = (float(parts[1]), float(parts[2]))
        n = max(rows)
        fmin, fmax = np.zeros(n), np.zeros(n)
        for i, (a, b) in rows.items():
            fmin[i - 1], fmax[i - 1] = a, b
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise InputError(f"cannot read the BRISQUE feature range {path}: {exc}. Give svm-scale's range file "
                         "(allrange of the release, or one written by train_brisque).") from None
    return FeatureRange(lower, upper, fmin, fmax)


def _writable(path: str | Path, overwrite: bool) -> Path:
    path = output_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BrisqueModel:
    svr: SVRModel
    range: FeatureRange

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write ``allmodel`` and ``allrange`` into ``folder`` (the release's file names)."""
        folder = Path(folder)
        for name in ("allmodel", "allrange"):
            _writable(folder / name, overwrite)
        self.svr.save(folder / "allmodel", overwrite=True)
        self.range.save(folder / "allrange", overwrite=True)
        return folder


def load_brisque_model(model: str | Path | None = None, feature_range: str | Path | None = None) -> BrisqueModel:
    """The release model (``None``), a folder holding allmodel and allrange, or a model file (with its range
    file given, or named allrange next to it)."""
    return _load_cached(None if model is None else str(Path(model).resolve()),
                        None if feature_range is None else str(Path(feature_range).resolve()))


@functools.lru_cache(maxsize=8)
def _load_cached(model: str | None, feature_range: str | None) -> BrisqueModel:
    if model is None:
        with resources.as_file(_bundled("allmodel")) as m, resources.as_file(_bundled("allrange")) as r:
            return BrisqueModel(read_svr_model(m), read_feature_range(r))
    path = Path(model)
    if path.is_dir():
        model_file, range_file = path / "allmodel", path / "allrange"
    else:
        model_file, range_file = path, path.parent / "allrange"
    if feature_range is not None:
        range_file = Path(feature_range)
    for f in (model_file, range_file):
        if not f.is_file():
            raise InputError(f"BRISQUE model file not found: {f}. Give a folder with allmodel and allrange "
                             "(as train_brisque writes), or the model file and feature_range=RANGE_FILE.")
    return BrisqueModel(read_svr_model(model_file), read_feature_range(range_file))


# ----------------------------------------------------------------------------------------- features

def brisque_features(x: torch.Tensor) -> torch.Tensor:
    """The 36 features of brisque_feature.m for each image: (N, 36) float64."""
    im = gray255(x)
    h, w = im.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise InputError(f"BRISQUE needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels; got {h}x{w}.")
    g = grid(im.device, im.dtype)
    n, out = im.shape[0], []
    for scale in range(2):
        s, _ = mscn(im, "zeros")
        alpha, sigma = ggd_fit(s.reshape(n, -1))
        alpha2, left, right, idx = paired_aggd_fit(s[:, 0])  # (N, 4)
        const = g["g1"][idx].sqrt() / g["g3"][idx].sqrt()
        mean = (right - left) * (g["g2"][idx] / g["g1"][idx]) * const
        out += [alpha[:, None], (sigma * sigma)[:, None],
                torch.stack([alpha2, mean, left * left, right * right], -1).reshape(n, 16)]
        if scale == 0:
            im = imresize(im, 0.5)
    return torch.cat(out, 1)


def _printf(values: np.ndarray, fmt: str) -> np.ndarray:
    """Values as C printf(fmt) then strtod would give them back (Python formats with correct rounding)."""
    return np.array([float(fmt % v) for v in values.reshape(-1)]).reshape(values.shape)


def scale_features(feats: torch.Tensor, rng: FeatureRange, libsvm_io: bool = True) -> torch.Tensor:
    """Features (N, 36) -> svm-scale output; with ``libsvm_io`` the '%f' and '%g' text round trips of the
    release (brisquescore.m's fprintf, svm-scale's printf) are applied."""
    f = feats.detach().cpu().to(torch.float64).numpy()
    if libsvm_io:
        f = _printf(f, "%f")
    n = min(f.shape[1], rng.fmin.size)
    s = rng.scale(f[:, :n])
    if libsvm_io:
        s = _printf(s, "%g")
    return torch.as_tensor(s, device=feats.device)


@register("brisque", kind="nr", higher_better=False, score_range=(-float("inf"), float("inf")),
          paper="Mittal, Moorthy, Bovik, No-reference image quality assessment in the spatial domain, IEEE TIP 2012",
          code="http://live.ece.utexas.edu/research/quality/BRISQUE_release.zip (brisquescore.m)",
          colour="MATLAB rgb2gray rounded to 8 bits, values 0..255", weights=(), min_size=MIN_SIZE,
          size_note="the release's minimum: the 7x7 MSCN window on the half-size scale",
          nonfinite={"nan": "a flat (constant) image, e.g. all black or flat grey: the GGD/AGGD fits of all-zero "
                            "MSCN coefficients are 0/0, as in the release"})
def brisque(x: torch.Tensor, *, model: str | None = None, feature_range: str | None = None,
            libsvm_io: bool = True) -> torch.Tensor:
    """BRISQUE score with the LIVE release SVR (about 0..100 on natural images; lower is better).

    ``model``: a folder with allmodel and allrange (train_brisque output) or a libsvm model file;
    ``libsvm_io=False`` skips the release's text rounding of features and scores.
    """
    m = load_brisque_model(model, feature_range)
    scores = m.svr.predict(scale_features(brisque_features(x), m.range, libsvm_io))
    if libsvm_io:
        scores = torch.as_tensor(_printf(scores.cpu().numpy(), "%g"), device=scores.device)
    return scores.to(x.dtype)


# ----------------------------------------------------------------------------------------- training

def _svr_model(fitted, gamma: float) -> SVRModel:
    """A fitted scikit-learn ``SVR`` as libsvm's model: its decision value is sum_i dual_coef_i K(sv_i, x) +
    intercept, libsvm's sum_i coef_i K(sv_i, x) - rho, so coef = dual_coef_ and rho = -intercept_."""
    return SVRModel(float(gamma), -float(fitted.intercept_[0]), np.asarray(fitted.dual_coef_[0], dtype=np.float64),
                    np.asarray(fitted.support_vectors_, dtype=np.float64),
                    {"svm_type": "epsilon_svr", "kernel_type": "rbf", "nr_class": "2"})


def train_brisque(images, scores, *, c: float = 1024.0, gamma: float = 0.05, epsilon: float = 0.1,
                  tol: float = 1e-3, libsvm_io: bool = True, output_dir: str | Path | None = None,
                  overwrite: bool = False, progress=None) -> BrisqueModel:
    """Train a BRISQUE model: features of ``images``, svm-scale ranges to [-1, 1], RBF epsilon-SVR on ``scores``.

    ``images``: image files or (C, H, W) / (1, C, H, W) tensors in [0, 1] (any sizes), or one (N, C, H, W)
    tensor; ``scores``: one number per image on the scale the model should predict (the release used DMOS,
    lower is better). Defaults C = 1024 and gamma = 0.05 are those of the release model (its coefficients
    are +-1024 and its gamma 0.05); epsilon = 0.1 and the stopping tolerance ``tol`` = 1e-3 are libsvm's
    defaults. The SVR is fitted by libsvm (scikit-learn's ``SVR``; ``pip install 'iqarena[train]'``). With
    ``output_dir`` the model is written there as allmodel and allrange. ``progress``: optional callable run
    after each image.
    """
    from .niqe import iter_images  # the same image sources as estimate_niqe_model

    try:
        from sklearn.svm import SVR  # libsvm, the solver of the release
    except ImportError:
        raise ResourceError("training a BRISQUE model needs scikit-learn: pip install 'iqarena[train]'.") from None
    rows = []
    for img in iter_images(images):
        rows.append(brisque_features(img.to(torch.float64)))
        if progress is not None:
            progress()
    z = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(rows) != len(z):
        raise InputError(f"{len(rows)} images but {len(z)} scores; give one score per image.")
    if len(z) < 2:
        raise InputError("training a BRISQUE model needs at least two labelled images.")
    f = torch.cat(rows).numpy()
    if not np.isfinite(f).all():
        bad = int((~np.isfinite(f).all(1)).sum())
        raise InputError(f"{bad} training image(s) give undefined BRISQUE features (flat images); remove them.")
    if libsvm_io:
        f = _printf(f, "%f")
    rng = FeatureRange(-1.0, 1.0, f.min(0), f.max(0))
    s = rng.scale(f)
    if libsvm_io:
        s = _printf(s, "%g")
    model = BrisqueModel(_svr_model(SVR(kernel="rbf", C=c, gamma=gamma, epsilon=epsilon, tol=tol).fit(s, z), gamma),
                         rng)
    if output_dir is not None:
        model.save(output_dir, overwrite=overwrite)
    return model
