"""Expected order value of a user if it converts (a regression on converted rows)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from promo_opt.learners.lgbm import DEFAULT_PARAMS, _fit_early_stopped
from promo_opt.threads import lgbm_threads


class OrderValueModel:
    """E[order value | x, converted]; falls back to the mean when there are too few orders."""

    def __init__(self, seed: int = 0, min_rows: int = 200):
        self.seed = seed
        self.min_rows = min_rows

    def fit(self, X: pd.DataFrame, value: np.ndarray, converted: np.ndarray) -> "OrderValueModel":
        on = converted > 0  # rows with an order (for counts, value is per order)
        self.mean_ = float(value[on].mean())
        self.model_ = None
        if on.sum() >= self.min_rows:
            m = lgb.LGBMRegressor(**{**DEFAULT_PARAMS, "n_jobs": lgbm_threads(), "min_child_samples": 50,
                                  "random_state": self.seed})
            self.model_ = _fit_early_stopped(m, X[on], value[on], self.seed)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.model_ is None:
            return np.full(len(X), self.mean_)
        return np.clip(self.model_.predict(X, num_threads=lgbm_threads()), 0.0, None)
