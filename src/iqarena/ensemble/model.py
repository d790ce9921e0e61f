"""Fitting, saving and loading an ensemble: k-fold bagging with folds grouped by reference content.

``fit_ensemble`` draws a seeded k-fold split over the images' contents (the reference; the image
itself where there is none), so no content is in a training fold and its validation fold at once.
Each fold trains every learner of the preset on the other folds, with the fold itself for early
stopping; the ensemble's prediction is the mean over folds of the mean over learners. The
out-of-fold predictions (each image predicted by the models that never saw its content) give the
cross-validated SRCC/PLCC and the permutation importance.

A model folder holds ``ensemble.json`` (the manifest: format version, preset, learners and their
settings, feature columns and how to compute them, folds, the CV figures, a SHA-256 of every model
file) and the learners' files in their libraries' own formats; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..evaluate.stats import evaluate
from ..io import atomic_output
from .features import FeatureTable
from .learners import Learner, build_learner
from .presets import Preset, get_preset

FORMAT = "iqarena-ensemble"
VERSION = 1
MANIFEST = "ensemble.json"


def content_folds(contents: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of every row: contents sorted, shuffled with ``seed``, dealt round-robin.
    Rows sharing a content share a fold (the same rule as ``iqarena train``'s ``data.fold``)."""
    unique = sorted(set(contents))
    if folds < 2 or folds > len(unique):
        raise InputError(f"{folds} folds need between 2 and {len(unique)} (the number of distinct contents).",
                         option="folds")
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[c] for c in contents])


@dataclass
class Ensemble:
    preset: Preset
    columns: tuple[str, ...]
    sources: tuple[dict, ...]
    kind: str  # "fr" | "nr": whether computing the features needs a reference
    models: list[list[Learner]]  # [fold][learner]
    seed: int = 0
    label_higher_better: bool = True
    cv: dict = field(default_factory=dict)
    importance: dict = field(default_factory=dict)
    threads: int | None = None

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(f"this ensemble takes {self.n_features} features per image, got an array of shape "
                             f"{x.shape}.", option="features")
        bad = ~np.isfinite(x)
        if bad.any():
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            raise InputError(f"feature {self.columns[j]!r} has {int(bad[:, j].sum())} NaN or infinite values (the "
                             "metric that produced them could not score those images); the ensemble cannot "
                             "predict them.", option="features")
        return np.mean([np.mean([m.predict(x) for m in fold], axis=0) for fold in self.models], axis=0)

    def predict_table(self, table: FeatureTable) -> np.ndarray:
        return self.predict(table.select(self.columns).values)

    # -------------------------------------------------------------- files

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise InputError(f"{folder} is not empty; choose another folder or allow replacing it (--overwrite).",
                                 option="overwrite")
            if not (folder / MANIFEST).is_file():
                raise InputError(f"{folder} is not empty and holds no {MANIFEST}: iqarena replaces only a model "
                                 "folder it wrote. Choose another folder.", option="output")
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files, states = {}, []
        for k, fold in enumerate(self.models):
            row = []
            for j, m in enumerate(fold):
                for f in m.save(tmp / f"fold{k}-{j}-{m.name}"):
                    files[f] = _sha256(tmp / f)
                row.append(m.state())
            states.append(row)
        manifest = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "preset": self.preset.name, "learners": [[n, p] for n, p in self.preset.learners],
                    "folds": len(self.models), "seed": self.seed, "columns": list(self.columns),
                    "sources": list(self.sources), "kind": self.kind,
                    "label_higher_better": self.label_higher_better, "states": states, "files": files,
                    "cv": self.cv, "importance": self.importance}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Ensemble":
        folder = Path(folder)
        m = read_manifest(folder)
        preset = Preset(m["preset"], tuple((n, dict(p)) for n, p in m["learners"]), folds=m["folds"])
        for name, digest in m["files"].items():
            path = folder / name
            if not path.is_file() or _sha256(path) != digest:
                raise InputError(f"{path} is missing or changed since the ensemble was saved (its SHA-256 is in "
                                 f"{MANIFEST}); fit the ensemble again.")
        models = []
        for k, row in enumerate(m["states"]):
            fold = []
            for j, ((name, params), state) in enumerate(zip(preset.learners, row)):
                learner = build_learner(name, seed=m["seed"], **params).load(folder / f"fold{k}-{j}-{name}")
                learner.rounds = state.get("rounds")
                fold.append(learner)
            models.append(fold)
        return cls(preset, tuple(m["columns"]), tuple(m["sources"]), m["kind"], models, m["seed"],
                   m["label_higher_better"], m.get("cv", {}), m.get("importance", {}))


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{folder} is not an ensemble model folder (no {MANIFEST}); give the folder written by "
                         "`iqarena ensemble fit -o`.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is damaged ({exc}); fit the ensemble again.") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InputError(f"{path} is not an iqarena ensemble manifest (no format {FORMAT!r}).")
    if m.get("version") != VERSION:
        raise InputError(f"{path} was written by an iqarena with ensemble format {m.get('version')}; this iqarena "
                         f"reads format {VERSION}. Fit the ensemble again with this version.")
    return m


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- fitting

def fit_ensemble(features: FeatureTable, labels: np.ndarray, contents: Sequence[str], *,
                 preset: str | Preset = "xgboost", folds: int | None = None, seed: int = 0,
                 threads: int | None = None, params: dict | None = None, label_higher_better: bool = True,
                 permutation: bool = True, log: Callable[[str], None] = lambda m: None) -> Ensemble:
    """Fit ``preset`` on ``features`` (rows in the order of ``labels`` and ``contents``).

    ``params`` overrides the settings of every learner of the preset that has them (for example
    ``{"n_estimators": 200}``); ``folds`` overrides the preset's fold count.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    y = np.asarray(labels, dtype=np.float64)
    x = features.values
    if len(y) != x.shape[0] or len(contents) != len(y):
        raise InputError(f"{x.shape[0]} feature rows, {len(y)} labels and {len(contents)} contents: they must be "
                         "the same images, in the same order.", option="labels")
    if not np.isfinite(y).all():
        raise InputError(f"{int((~np.isfinite(y)).sum())} labels are NaN or infinite; fix the label file.",
                         option="labels")
    features.check_finite()
    learners = tuple((n, {**p, **{k: v for k, v in (params or {}).items()
                                  if k in build_learner(n).defaults}}) for n, p in preset.learners)
    unused = set(params or {}) - {k for n, _ in learners for k in build_learner(n).defaults}
    if unused:
        raise InputError(f"no learner of {preset.name} has the parameter {', '.join(sorted(unused))}.",
                         option="params")
    preset = Preset(preset.name, learners, folds or preset.folds, preset.metrics, preset.extractor, preset.source,
                    preset.notes)
    fold_ids = content_folds(list(contents), preset.folds, seed)
    oof = np.empty_like(y)
    models, per_fold = [], []
    for k in range(preset.folds):
        val, train = fold_ids == k, fold_ids != k
        fold = []
        for j, (name, p) in enumerate(preset.learners):
            started = time.perf_counter()
            learner = build_learner(name, seed=seed + k, threads=threads, **p)
            learner.fit(x[train], y[train], x[val], y[val])
            fold.append(learner)
            log(f"fold {k + 1}/{preset.folds}: {name} fitted in {time.perf_counter() - started:.1f} s"
                + (f" ({learner.rounds} rounds)" if learner.rounds else ""))
        models.append(fold)
        oof[val] = np.mean([m.predict(x[val]) for m in fold], axis=0)
        r = evaluate(oof[val], y[val], higher_better=True, labels_higher_better=label_higher_better)
        per_fold.append({"fold": k, "n": int(val.sum()), "srcc": r.srcc, "plcc": r.plcc})
    ens = Ensemble(preset, features.columns, features.sources, _kind(features.sources), models, seed,
                   label_higher_better, threads=threads)
    ens.cv = cv_summary(oof, y, fold_ids, per_fold, label_higher_better)
    ens.cv["oof"] = {"names": list(features.names), "pred": oof.tolist()}
    ens.cv["best_feature"] = best_feature(features, y, fold_ids, label_higher_better)
    ens.importance = importance(ens, x, y, fold_ids, permutation=permutation, seed=seed)
    return ens


def _kind(sources: Sequence[dict]) -> str:
    from ..metrics import get_info
    from .features import EXTRACTORS

    for s in sources:
        if "metric" in s and get_info(s["metric"]).kind == "fr":
            return "fr"
        if "extractor" in s and EXTRACTORS.get(s["extractor"]).kind == "fr":
            return "fr"
    return "nr"


def cv_summary(pred: np.ndarray, y: np.ndarray, fold_ids: np.ndarray, per_fold: list[dict],
               label_higher_better: bool) -> dict:
    pooled = evaluate(pred, y, higher_better=True, labels_higher_better=label_higher_better)
    return {"folds": per_fold,
            "mean": {"srcc": float(np.mean([f["srcc"] for f in per_fold])),
                     "plcc": float(np.mean([f["plcc"] for f in per_fold]))},
            "pooled": {"srcc": pooled.srcc, "plcc": pooled.plcc}}


def best_feature(features: FeatureTable, y: np.ndarray, fold_ids: np.ndarray, label_higher_better: bool) -> dict:
    """The single feature with the highest mean validation-fold SRCC, evaluated on the same folds
    (its direction taken from its Spearman correlation on the other folds, so nothing peeks)."""
    from scipy import stats

    best = None
    folds = int(fold_ids.max()) + 1
    for j, col in enumerate(features.columns):
        srccs, plccs = [], []
        for k in range(folds):
            val, train = fold_ids == k, fold_ids != k
            rho = stats.spearmanr(features.values[train, j], y[train]).statistic
            up = not np.isfinite(rho) or (rho >= 0) == label_higher_better
            r = evaluate(features.values[val, j], y[val], higher_better=up, labels_higher_better=label_higher_better)
            srccs.append(r.srcc)
            plccs.append(r.plcc)
        cand = {"feature": col, "srcc": float(np.nanmean(srccs)), "plcc": float(np.nanmean(plccs))}
        if best is None or cand["srcc"] > best["srcc"]:
            best = cand
    return best or {}


def importance(ens: Ensemble, x: np.ndarray, y: np.ndarray, fold_ids: np.ndarray, *, permutation: bool = True,
               seed: int = 0, max_permuted: int = 64) -> dict:
    """Per feature: the share of total split gain (mean over folds and boosters; absent for learners
    without splits) and the drop in validation-fold SRCC when the feature's values are shuffled within
    the fold (mean over folds). Permutation is measured for at most ``max_permuted`` features: all of
    them when there are that few, else those with the most gain."""
    from scipy import stats

    n = ens.n_features
    gains = [g for fold in ens.models for m in fold if (g := m.gain(n)) is not None and g.sum() > 0]
    gain = np.mean([g / g.sum() for g in gains], axis=0) if gains else None
    out: dict = {"columns": list(ens.columns), "gain": gain.tolist() if gain is not None else None}
    if not permutation:
        return out
    chosen = range(n) if n <= max_permuted else (np.argsort(-gain)[:max_permuted] if gain is not None else [])
    perm = np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    for k, fold in enumerate(ens.models):
        val = fold_ids == k
        xv, yv = x[val], y[val]
        base = stats.spearmanr(np.mean([m.predict(xv) for m in fold], axis=0), yv).statistic
        for j in chosen:
            shuffled = xv.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drop = base - stats.spearmanr(np.mean([m.predict(shuffled) for m in fold], axis=0), yv).statistic
            perm[j] = (0.0 if np.isnan(perm[j]) else perm[j]) + drop / len(ens.models)
    out["permutation"] = [None if np.isnan(v) else float(v) for v in perm]
    return out
