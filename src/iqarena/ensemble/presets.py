"""Named recipes: which learners, with which settings, over which features, in how many folds.

``debut.kele`` and ``egb`` are the two NTIRE 2021 entries that won their places with boosters
(report, Sections 5.7 and 5.9); every learner name is also a one-learner preset with its library's
usual settings, so ``--model ridge`` and ``--model debut.kele`` are the same kind of choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry
from .learners import LEARNERS


@dataclass(frozen=True)
class Preset:
    name: str
    #: (learner name, its parameters): the ensemble averages them, fold by fold
    learners: tuple[tuple[str, dict], ...]
    folds: int = 5
    #: the features the recipe uses: registered metric names (scored per image), or ``()`` for any
    metrics: tuple[str, ...] = ()
    #: a deep feature extractor (``features.EXTRACTORS``) the recipe uses instead of metric scores
    extractor: str | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        learners = " + ".join(n for n, _ in self.learners)
        feats = f"metrics {', '.join(self.metrics)}" if self.metrics else (
            f"deep features {self.extractor}" if self.extractor else "the features given")
        return f"{learners}, {self.folds}-fold bagging, {feats}"


PRESETS: Registry[Preset] = Registry("ensemble model", listing="`iqarena ensemble fit --help`")

PRESETS.add("debut.kele", Preset(
    "debut.kele",
    (("xgboost", {"max_depth": 3, "learning_rate": 0.01, "subsample": 0.7, "colsample_bytree": 0.7,
                  "n_estimators": 10000, "early_stopping": 500}),),
    folds=5,
    # the report's list; "VIFs" is the pixel-domain VIF (vifp), "VIF" the wavelet-domain one
    metrics=("ssim", "ms_ssim", "cw_ssim", "gmsd", "lpips_vgg", "dists", "nlpd", "fsim", "vsi", "vifp", "vif",
             "mad"),
    source="NTIRE 2021 report, Section 5.7 (debut.kele, 7th): XGBoost, max depth 3, learning rate 0.01, "
           "feature and sample subsampling 0.7, up to 10,000 rounds, early stopping at 500, 5-fold bagging",
    notes=("the report does not say how the folds were drawn; iqarena groups them by reference content",),
), aliases=("debut_kele", "debut-kele"))

PRESETS.add("egb", Preset(
    "egb",
    (("xgboost", {}), ("lightgbm", {}), ("catboost", {})),
    folds=5,
    extractor="vgg16_egb",
    source="NTIRE 2021 report, Section 5.9 (LION, 11th) and Hammou, Fezza, Hamidouche, 'EGB: image quality "
           "assessment based on ensemble of gradient boosting', CVPRW 2021 (code: github.com/Dounia18/EGB): "
           "VGG-16 block4_conv2, block4_conv3 and block5_conv1, global average pooling, |ref - dist|, the mean "
           "of XGBoost, LightGBM and CatBoost",
    notes=("the published code ships its boosters as pickles without their settings; iqarena uses each "
           "library's usual settings with early stopping on the validation fold",
           "the report does not mention bagging; iqarena bags over the same grouped folds as every preset"),
), aliases=("lion",))

for _name in LEARNERS.names():
    PRESETS.add(_name, Preset(_name, ((_name, {}),), source=f"{_name} with iqarena's default settings"),
                aliases=tuple(LEARNERS.aliases(_name)))


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)
