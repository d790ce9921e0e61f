"""The learners an ensemble bags: three gradient-boosting libraries and three simple baselines.

A learner fits on a training fold (with the validation fold for early stopping where it has rounds),
predicts, saves itself in its library's own portable format (XGBoost JSON, LightGBM text, CatBoost
``.cbm``, NumPy arrays for the baselines: no pickles, so loading a model folder runs no code), loads
back, and reports its importance per feature where the library measures one (total split gain).

Registered in ``LEARNERS``; every learner takes ``seed`` and ``threads`` (None: the library's default)
and its own parameters, checked against :attr:`Learner.defaults`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..registry import Registry


class Learner:
    """A regressor over a feature matrix. Subclasses set ``defaults`` and implement the four methods."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    #: the package that provides it (named in the error when it is missing)
    package: ClassVar[str | None] = None

    def __init__(self, seed: int = 0, threads: int | None = None, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InputError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters are "
                             f"{', '.join(sorted(self.defaults)) or 'none'}.", option="params")
        self.seed, self.threads = int(seed), threads
        self.params = {**self.defaults, **params}
        self.rounds: int | None = None  # boosting rounds kept (after early stopping)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "Learner":
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, stem: Path) -> list[str]:
        """Write the fitted model to files named ``stem`` + suffix; returns the file names."""
        raise NotImplementedError

    def load(self, stem: Path) -> "Learner":
        raise NotImplementedError

    def gain(self, n_features: int) -> np.ndarray | None:
        """Total split gain per feature (None for learners without splits)."""
        return None

    def state(self) -> dict:
        """What the manifest records beside the files (rounds kept)."""
        return {"rounds": self.rounds}


LEARNERS: Registry[type[Learner]] = Registry("ensemble learner", listing="`iqarena ensemble fit --help`")


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"the {package} package is not installed; install the ensemble extra: "
                         "pip install 'iqarena[ensemble]'.") from None


def _gain_vector(scores: dict[str, float], n: int) -> np.ndarray:
    out = np.zeros(n)
    for k, v in scores.items():
        out[int(k.lstrip("f"))] = v
    return out


@LEARNERS.register("xgboost")
class XGBoost(Learner):
    """XGBoost's ``hist`` trees, squared error; early stopping on the validation fold's RMSE."""

    name = "xgboost"
    package = "xgboost"
    defaults = {"max_depth": 6, "learning_rate": 0.3, "subsample": 1.0, "colsample_bytree": 1.0,
                "min_child_weight": 1.0, "reg_lambda": 1.0, "n_estimators": 1000, "early_stopping": 50}

    def fit(self, x, y, x_val=None, y_val=None):
        xgb = _need("xgboost", "xgboost")
        p = dict(self.params)
        rounds, stop = int(p.pop("n_estimators")), int(p.pop("early_stopping"))
        params = {"objective": "reg:squarederror", "tree_method": "hist", "seed": self.seed,
                  "eta": p.pop("learning_rate"), **p}
        if self.threads:
            params["nthread"] = self.threads
        train = xgb.DMatrix(x, label=y)
        evals = [(xgb.DMatrix(x_val, label=y_val), "val")] if x_val is not None else []
        self.model = xgb.train(params, train, rounds, evals=evals, verbose_eval=False,
                               early_stopping_rounds=stop if evals and stop else None)
        self.rounds = (self.model.best_iteration + 1) if evals and stop else rounds
        return self

    def predict(self, x):
        xgb = _need("xgboost", "xgboost")
        if self.threads:
            self.model.set_param({"nthread": self.threads})
        return self.model.predict(xgb.DMatrix(x), iteration_range=(0, self.rounds)).astype(np.float64)

    def save(self, stem):
        self.model.save_model(f"{stem}.xgb.json")
        return [f"{stem.name}.xgb.json"]

    def load(self, stem):
        xgb = _need("xgboost", "xgboost")
        self.model = xgb.Booster()
        self.model.load_model(f"{stem}.xgb.json")
        return self

    def gain(self, n_features):
        return _gain_vector(self.model.get_score(importance_type="total_gain"), n_features)


@LEARNERS.register("lightgbm")
class LightGBM(Learner):
    """LightGBM's leaf-wise trees, L2 loss; early stopping on the validation fold's L2."""

    name = "lightgbm"
    package = "lightgbm"
    defaults = {"num_leaves": 31, "learning_rate": 0.1, "feature_fraction": 1.0, "bagging_fraction": 1.0,
                "min_data_in_leaf": 20, "n_estimators": 1000, "early_stopping": 50}

    def fit(self, x, y, x_val=None, y_val=None):
        lgb = _need("lightgbm", "lightgbm")
        p = dict(self.params)
        rounds, stop = int(p.pop("n_estimators")), int(p.pop("early_stopping"))
        params = {"objective": "regression", "seed": self.seed, "verbose": -1, "deterministic": True,
                  "force_row_wise": True, "bagging_freq": 1 if p["bagging_fraction"] < 1 else 0, **p}
        if self.threads:
            params["num_threads"] = self.threads
        train = lgb.Dataset(x, label=y, free_raw_data=True)
        valid = [lgb.Dataset(x_val, label=y_val, reference=train)] if x_val is not None else []
        callbacks = [lgb.early_stopping(stop, verbose=False)] if valid and stop else []
        self.model = lgb.train(params, train, rounds, valid_sets=valid, callbacks=callbacks)
        self.rounds = self.model.best_iteration if valid and stop and self.model.best_iteration > 0 else rounds
        return self

    def predict(self, x):
        kw = {"num_threads": self.threads} if self.threads else {}
        return self.model.predict(x, num_iteration=self.rounds, **kw).astype(np.float64)

    def save(self, stem):
        self.model.save_model(f"{stem}.lgb.txt", num_iteration=self.rounds)
        return [f"{stem.name}.lgb.txt"]

    def load(self, stem):
        lgb = _need("lightgbm", "lightgbm")
        self.model = lgb.Booster(model_file=f"{stem}.lgb.txt")
        return self

    def gain(self, n_features):
        return self.model.feature_importance("gain", iteration=self.rounds).astype(np.float64)


@LEARNERS.register("catboost")
class CatBoost(Learner):
    """CatBoost's symmetric trees, RMSE; overfitting detector on the validation fold, best model kept."""

    name = "catboost"
    package = "catboost"
    defaults = {"depth": 6, "learning_rate": 0.05, "l2_leaf_reg": 3.0, "rsm": 1.0, "subsample": 0.8,
                "n_estimators": 1000, "early_stopping": 50}

    def fit(self, x, y, x_val=None, y_val=None):
        cb = _need("catboost", "catboost")
        p = dict(self.params)
        rounds, stop = int(p.pop("n_estimators")), int(p.pop("early_stopping"))
        has_val = x_val is not None
        self.model = cb.CatBoostRegressor(iterations=rounds, random_seed=self.seed, verbose=False,
                                          allow_writing_files=False, thread_count=self.threads or -1,
                                          bootstrap_type="Bernoulli", use_best_model=has_val,
                                          early_stopping_rounds=stop if has_val and stop else None, **p)
        self.model.fit(x, y, eval_set=(x_val, y_val) if has_val else None)
        self.rounds = int(self.model.tree_count_)
        return self

    def predict(self, x):
        return np.asarray(self.model.predict(x, thread_count=self.threads or -1), dtype=np.float64)

    def save(self, stem):
        self.model.save_model(f"{stem}.cbm")
        return [f"{stem.name}.cbm"]

    def load(self, stem):
        cb = _need("catboost", "catboost")
        self.model = cb.CatBoostRegressor()
        self.model.load_model(f"{stem}.cbm")
        return self

    def gain(self, n_features):
        return np.asarray(self.model.get_feature_importance(type="PredictionValuesChange"), dtype=np.float64)


class _ArrayLearner(Learner):
    """A learner whose fitted state is a few arrays, saved as one ``.npz``."""

    arrays: dict[str, np.ndarray]

    def save(self, stem):
        np.savez(f"{stem}.npz", **self.arrays)
        return [f"{stem.name}.npz"]

    def load(self, stem):
        with np.load(f"{stem}.npz", allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        return self


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


@LEARNERS.register("ridge")
class Ridge(_ArrayLearner):
    """Standardised features, ridge regression; the penalty chosen by efficient leave-one-out
    cross-validation on the training fold (scikit-learn's RidgeCV) among ``alphas``."""

    name = "ridge"
    package = "scikit-learn"
    defaults = {"alphas": [float(a) for a in np.logspace(-3, 5, 33)]}

    def fit(self, x, y, x_val=None, y_val=None):
        lm = _need("sklearn.linear_model", "scikit-learn")
        mean, scale = _standardise(x)
        model = lm.RidgeCV(alphas=self.params["alphas"]).fit((x - mean) / scale, y)
        self.arrays = {"mean": mean, "scale": scale, "coef": model.coef_, "intercept": np.array(model.intercept_),
                       "alpha": np.array(model.alpha_)}
        return self

    def predict(self, x):
        a = self.arrays
        return ((x - a["mean"]) / a["scale"]) @ a["coef"] + a["intercept"]


@LEARNERS.register("svr")
class SVR(_ArrayLearner):
    """Standardised features and labels, epsilon-SVR with an RBF kernel (libsvm through scikit-learn);
    saved as support vectors and dual coefficients, evaluated here with the same kernel."""

    name = "svr"
    package = "scikit-learn"
    defaults = {"C": 1.0, "epsilon": 0.1, "gamma": "scale"}

    def fit(self, x, y, x_val=None, y_val=None):
        svm = _need("sklearn.svm", "scikit-learn")
        mean, scale = _standardise(x)
        z = (x - mean) / scale
        y_mean, y_scale = float(y.mean()), float(y.std() or 1.0)
        model = svm.SVR(kernel="rbf", C=self.params["C"], epsilon=self.params["epsilon"],
                        gamma=self.params["gamma"]).fit(z, (y - y_mean) / y_scale)
        self.arrays = {"mean": mean, "scale": scale, "support": model.support_vectors_,
                       "dual": model.dual_coef_.ravel(), "intercept": np.array(model.intercept_[0]),
                       "gamma": np.array(model._gamma), "y": np.array([y_mean, y_scale])}
        return self

    def predict(self, x, rows: int = 1024):
        a = self.arrays
        sv = a["support"]
        sv_sq = (sv * sv).sum(1)[None, :]
        out = np.empty(len(x))
        for i in range(0, len(x), rows):  # a block of rows at a time: memory stays at rows x support vectors
            z = (x[i:i + rows] - a["mean"]) / a["scale"]
            sq = (z * z).sum(1)[:, None] + sv_sq - 2 * z @ sv.T
            out[i:i + rows] = np.exp(-a["gamma"] * np.maximum(sq, 0)) @ a["dual"]
        return (out + a["intercept"]) * a["y"][1] + a["y"][0]


@LEARNERS.register("mean-rank", aliases=("mean_rank",))
class MeanRank(_ArrayLearner):
    """No trees: each feature becomes its percentile among the training fold's values, turned so that
    it rises with the labels (the sign of its Spearman correlation on the training fold), and the
    percentiles are averaged; a straight line fitted on the training fold puts the mean in label units."""

    name = "mean-rank"
    defaults = {}

    def fit(self, x, y, x_val=None, y_val=None):
        from scipy import stats

        signs = np.array([1.0 if not np.isfinite(r := stats.spearmanr(c, y).statistic) or r >= 0 else -1.0
                          for c in x.T])
        self.arrays = {"sorted": np.sort(x, axis=0), "sign": signs}
        slope, intercept = np.polyfit(self._mean_rank(x), y, 1)
        self.arrays["line"] = np.array([slope, intercept])
        return self

    def _mean_rank(self, x):
        s, sign = self.arrays["sorted"], self.arrays["sign"]
        n = s.shape[0]
        pct = np.empty_like(x, dtype=np.float64)
        for j in range(x.shape[1]):  # one vectorised search per feature
            lo = np.searchsorted(s[:, j], x[:, j], "left")
            hi = np.searchsorted(s[:, j], x[:, j], "right")
            pct[:, j] = (lo + hi) / (2.0 * n)
        pct = np.where(sign > 0, pct, 1.0 - pct)
        return pct.mean(axis=1)

    def predict(self, x):
        slope, intercept = self.arrays["line"]
        return slope * self._mean_rank(x) + intercept


def build_learner(name: str, seed: int = 0, threads: int | None = None, **params) -> Learner:
    return LEARNERS.get(name)(seed=seed, threads=threads, **params)
