"""Propensity models for binary and multi-arm treatments, with overlap diagnostics.

``PropensityModel(model="logistic"|"gbm")`` estimates ``e[i, k] = P(arm k | x_i)`` as an
``(n, K)`` matrix (control at column 0). ``fit`` also keeps cross-fitted out-of-fold
propensities ``oof_`` (each row predicted by a model that did not see it), which the weighting
and doubly robust estimators use so that over-fitting does not shrink the estimated imbalance.

- logistic: multinomial logistic regression on standardized numerics (median-imputed, with
  missing indicators) and one-hot text columns; already calibrated by construction.
- gbm: scikit-learn's HistGradientBoostingClassifier (missing values and categoricals native),
  calibrated by ``CalibratedClassifierCV`` (isotonic from 2,000 rows, else sigmoid) when
  ``calibrate``.

``overlap(e, arm)`` reports the common support (Lechner's min-max rule: for every arm's
propensity, the range shared by all arms' rows), the share of rows outside it and the rows a
threshold would trim. ``with_estimated_propensity(config, data)`` fills ``TrainingData.propensity``
(the probability of the logged arm) when the config asks for it, for the uplift learners.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from promo_opt.errors import DataError
from promo_opt.features import FeaturePreprocessor
from promo_opt.observational.design import linear_encoder

log = logging.getLogger(__name__)

FLOOR = 1e-6  # propensities are clipped to [FLOOR, 1] before any division


def text_as_object(typed: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as plain objects (None when missing), as scikit-learn's encoders expect."""
    out = typed.copy()
    for c in categorical:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


class PropensityModel:
    """P(arm | x) for K arms. ``fit(X, arm)`` -> self; ``predict_proba(X)`` -> (n, K)."""

    def __init__(self, model: str = "logistic", calibrate: bool = True, folds: int = 5, seed: int = 0,
                 n_arms: int | None = None):
        self.model = model
        self.calibrate = calibrate
        self.folds = folds
        self.seed = seed
        self.n_arms = n_arms

    # -- one estimator -----------------------------------------------------------------------
    def _estimator(self, n_rows: int, categorical: list[str]):
        if self.model == "logistic":
            return make_pipeline(linear_encoder(self.numeric_, categorical), LogisticRegression(C=1.0, max_iter=5000))
        if self.model == "gbm":
            gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                 min_samples_leaf=max(20, n_rows // 200), early_stopping=True,
                                                 categorical_features="from_dtype", random_state=self.seed)
            if not self.calibrate:
                return gbm
            method = "isotonic" if n_rows >= 2000 else "sigmoid"
            return CalibratedClassifierCV(gbm, method=method, cv=3)
        raise ValueError(f"unknown propensity model {self.model!r}; expected 'logistic' or 'gbm'")

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        typed = self.pre_.transform(X)
        return text_as_object(typed, self.categorical_) if self.model == "logistic" else typed

    def _proba(self, est, X: pd.DataFrame) -> np.ndarray:
        p = np.zeros((len(X), self.n_arms_))
        p[:, est.classes_] = est.predict_proba(X)
        return p

    # -- fit / predict -----------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, arm: np.ndarray) -> "PropensityModel":
        # one OpenMP thread: gradient boosting's threads spin badly on a busy shared machine
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._fit(X, arm)

    def _fit(self, X: pd.DataFrame, arm: np.ndarray) -> "PropensityModel":
        arm = np.asarray(arm, dtype=np.int64)
        self.n_arms_ = int(self.n_arms or arm.max() + 1)
        counts = np.bincount(arm, minlength=self.n_arms_)
        if (counts > 0).sum() < 2:
            raise DataError(f"the treatment has one arm only (arm {int(np.argmax(counts))} in all {len(arm)} rows): "
                            "a propensity model and every effect need rows of at least two arms")
        self.pre_ = FeaturePreprocessor().fit(X)
        self.numeric_, self.categorical_ = list(self.pre_.numeric_), list(self.pre_.categorical_)
        Xt = self._prepare(X)
        folds = int(min(self.folds, counts[counts > 0].min()))
        if folds < 2:
            raise DataError(f"an arm has only {int(counts[counts > 0].min())} row(s): too few to estimate propensities")
        self.oof_ = np.zeros((len(arm), self.n_arms_))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(Xt, arm):
            est = self._estimator(len(tr), self.categorical_).fit(Xt.iloc[tr], arm[tr])
            self.oof_[te] = self._proba(est, Xt.iloc[te])
        self.estimator_ = self._estimator(len(arm), self.categorical_).fit(Xt, arm)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._proba(self.estimator_, self._prepare(X))


# --------------------------------------------------------------------------------------------
# overlap
# --------------------------------------------------------------------------------------------
@dataclass
class Overlap:
    """Common support of the arms' propensities.

    ``support[k] = (lo, hi)``: the range of ``e[:, k]`` shared by every arm's rows;
    ``outside``: (n,) rows outside the support of some arm; ``share_outside``: their share;
    ``share_below_trim[k]``: rows with ``e[:, k] < trim``.
    """

    support: list[tuple[float, float]]
    outside: np.ndarray
    share_outside: float
    share_below_trim: list[float]
    trim: float

    def to_dict(self, arm_names: list[str]) -> dict:
        return {"share_outside_common_support": self.share_outside, "trim": self.trim,
                "common_support": {a: list(s) for a, s in zip(arm_names, self.support)},
                "share_below_trim": dict(zip(arm_names, self.share_below_trim))}


def overlap(e: np.ndarray, arm: np.ndarray, trim: float = 0.01) -> Overlap:
    """Lechner's min-max common support of an (n, K) propensity matrix; see :class:`Overlap`."""
    K = e.shape[1]
    present = [j for j in range(K) if (arm == j).any()]
    support, outside = [], np.zeros(len(arm), dtype=bool)
    for k in range(K):
        lo = max(float(e[arm == j, k].min()) for j in present)
        hi = min(float(e[arm == j, k].max()) for j in present)
        support.append((lo, hi))
        outside |= (e[:, k] < lo) | (e[:, k] > hi)
    return Overlap(support, outside, float(outside.mean()), [float((e[:, k] < trim).mean()) for k in range(K)], trim)


# --------------------------------------------------------------------------------------------
# the hook for training on logged data
# --------------------------------------------------------------------------------------------
def estimate_propensity(config, X: pd.DataFrame, arm: np.ndarray, estimand: str = "ate") -> PropensityModel:
    """A :class:`PropensityModel` fitted with the config's ``observational`` options (``auto``: the
    candidate with the best covariate balance after weighting for ``estimand``; see ``selection_``)."""
    o = config.observational
    names = ["logistic", "gbm"] if o.propensity_model == "auto" else [o.propensity_model]
    fitted = [PropensityModel(m, o.calibrate, o.folds, config.seed, n_arms=len(config.arm_names)).fit(X, arm)
              for m in names]
    if len(fitted) == 1:
        fitted[0].selection_ = {"chosen": names[0], "rule": "observational.propensity_model"}
        return fitted[0]
    return select_by_balance(fitted, X, arm, estimand, o.trim)


def weighted_imbalance(B: np.ndarray, e: np.ndarray, arm: np.ndarray, estimand: str, trim: float) -> float:
    """Worst |standardized mean difference| after weighting, over every non-control arm and every column
    of ``B`` (covariates and the squares of the numeric ones), on the rows the estimators keep."""
    from promo_opt.observational.weighting import overlap_rows

    worst = 0.0
    for k in range(1, e.shape[1]):
        if not (arm == k).any():
            continue
        try:
            keep = overlap_rows(e, arm, k, trim, estimand=estimand)
        except DataError:
            return float("inf")
        t, c = keep & (arm == k), keep & (arm == 0)
        if estimand == "ate":
            wt, wc = 1.0 / e[t, k], 1.0 / e[c, 0]
        else:
            wt, wc = np.ones(int(t.sum())), e[c, k] / e[c, 0]
        xt, xc = B[arm == k], B[arm == 0]
        sd = np.sqrt((xt.var(0) + xc.var(0)) / 2)
        sd = np.where(sd > 0, sd, 1.0)
        smd = (wt @ B[t] / wt.sum() - wc @ B[c] / wc.sum()) / sd
        worst = max(worst, float(np.abs(smd).max()))
    return worst


def balance_design(X: pd.DataFrame) -> np.ndarray:
    """Covariates for the balance check: the balance frame plus squares of non-binary numeric columns."""
    from promo_opt.observational.design import balance_frame

    B = balance_frame(X).to_numpy(dtype=np.float64)
    wide = [j for j in range(B.shape[1]) if len(np.unique(B[:, j])) > 2]
    Bs = (B[:, wide] - B[:, wide].mean(0)) ** 2
    return np.column_stack([B, Bs]) if wide else B


def select_by_balance(models: list[PropensityModel], X: pd.DataFrame, arm: np.ndarray, estimand: str,
                      trim: float) -> PropensityModel:
    """The model whose cross-fitted propensities balance the covariates best after weighting;
    ``selection_`` records every candidate's worst |SMD| and the choice."""
    B = balance_design(X)
    scores = {m.model: weighted_imbalance(B, np.clip(m.oof_, FLOOR, 1.0), arm, estimand, trim) for m in models}
    best = min(models, key=lambda m: scores[m.model])
    best.selection_ = {"chosen": best.model, "rule": f"smallest worst |SMD| after {estimand.upper()} weighting "
                       "(covariates and squares of numeric ones)", "max_abs_smd_after": scores}
    log.info("propensity model by balance: %s (%s)", best.model, scores)
    return best


def with_estimated_propensity(config, data):
    """``TrainingData`` with ``propensity`` (P(logged arm), cross-fitted) filled when the config asks.

    Returns ``data`` unchanged when ``observational.estimate_propensity`` is false or when
    ``data.propensity`` already names a column. Logs the overlap (share outside common support).
    """
    if not config.observational.estimate_propensity or data.propensity is not None:
        return data
    model = estimate_propensity(config, data.X, data.arm)
    e = np.clip(model.oof_, FLOOR, 1.0)
    ov = overlap(e, data.arm, config.observational.trim)
    if ov.share_outside > 0.05:
        log.warning("estimated propensities: %.1f%% of the training rows are outside the arms' common support; "
                    "uplift there is extrapolated", 100 * ov.share_outside)
    return dataclasses.replace(data, propensity=e[np.arange(len(data.arm)), data.arm])
