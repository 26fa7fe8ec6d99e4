"""Cross-fitted outcome regressions ``mu[i, k] = E[y | x_i, arm k]`` for the doubly robust estimators.

One model per arm (fitted on that arm's rows), predictions out of fold: row ``i``'s ``mu`` comes
from models that did not see row ``i``. ``linear``: logistic regression for a 0/1 outcome, least
squares (a tiny ridge) otherwise, on the same design as the logistic propensity; ``gbm``:
scikit-learn's HistGradientBoosting classifier/regressor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from promo_opt.features import FeaturePreprocessor
from promo_opt.observational.design import linear_encoder
from promo_opt.observational.propensity import text_as_object


def _model(kind: str, binary: bool, numeric: list[str], categorical: list[str], n_rows: int, seed: int):
    if kind == "linear":
        head = LogisticRegression(C=1.0, max_iter=5000) if binary else Ridge(alpha=1e-3)
        return make_pipeline(linear_encoder(numeric, categorical), head)
    if kind == "gbm":
        common = dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=max(20, n_rows // 200),
                      early_stopping=n_rows >= 1000, categorical_features="from_dtype", random_state=seed)
        return HistGradientBoostingClassifier(**common) if binary else HistGradientBoostingRegressor(**common)
    raise ValueError(f"unknown outcome model {kind!r}; expected 'linear' or 'gbm'")


def cross_fitted_outcomes(X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, n_arms: int, kind: str = "linear",
                          folds: int = 5, seed: int = 0) -> np.ndarray:
    """(n, n_arms) out-of-fold predictions of the outcome under every arm (one OpenMP thread)."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return _cross_fit(X, arm, y, n_arms, kind, folds, seed)


def _cross_fit(X, arm, y, n_arms, kind, folds, seed) -> np.ndarray:
    pre = FeaturePreprocessor().fit(X)
    numeric, categorical = list(pre.numeric_), list(pre.categorical_)
    Xt = pre.transform(X)
    if kind == "linear":
        Xt = text_as_object(Xt, categorical)
    binary = bool(np.isin(y, (0, 1)).all())
    mu = np.zeros((len(y), n_arms))
    counts = np.bincount(arm, minlength=n_arms)
    folds = int(max(2, min(folds, counts[counts > 0].min())))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(Xt, arm):
        for k in range(n_arms):
            rows = tr[arm[tr] == k]
            if len(rows) == 0:
                continue
            if binary and len(np.unique(y[rows])) < 2:  # no variation: the arm's rate is the prediction
                mu[te, k] = float(y[rows].mean())
                continue
            m = _model(kind, binary, numeric, categorical, len(rows), seed + k).fit(Xt.iloc[rows], y[rows])
            mu[te, k] = m.predict_proba(Xt.iloc[te])[:, 1] if binary else m.predict(Xt.iloc[te])
    return mu
