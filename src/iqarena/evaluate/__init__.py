"""The evaluation protocol (NTIRE 2021: SRCC + PLCC after a third-order polynomial fit), confidence
intervals, significance tests, and benchmark reports over datasets."""

from .stats import (MAPPINGS, Comparison, Interval, Mapping, Result, bootstrap, bootstrap_draws, compare,
                    compare_oriented, evaluate, fit_mapping, intervals, krcc, main_score, orient, plcc, rmse, srcc,
                    williams_test)

__all__ = ["MAPPINGS", "Comparison", "Interval", "Mapping", "Result", "bootstrap", "bootstrap_draws", "compare",
           "compare_oriented", "evaluate", "fit_mapping", "intervals", "krcc", "main_score", "orient", "plcc", "rmse",
           "srcc", "williams_test"]
