"""Learners from causalml and EconML behind the house contract (see ``promo_opt.learners``).

They estimate conditional average treatment effects (CATE) tau_k(x) of every promotion arm k
against the control, not probabilities. Per-arm probabilities are built as::

    p_0(x) = P(y=1 | x, control)           (a LightGBM classifier on the control rows)
    p_k(x) = clip(p_0(x) + tau_k(x), 0, 1)  (k >= 1)

and :class:`~promo_opt.learners.honest.CrossFitted` then recalibrates both the level p_0
(Platt scaling) and the uplift tau_k (slope/intercept on held-out folds), so the spend, which
depends on the levels, is right and not only the ranking.

Multi-arm: causalml's treatment groups (one model per arm vs control); EconML's DRLearner with a
discrete multi-valued treatment. Randomized data: the known arm shares are given as propensity,
so nothing is spent estimating it. Size limits (``max_rows``): EconML and the uplift random forest
are fitted on a seeded random subsample of at most ``max_rows`` rows (logged as a warning).
"""

from __future__ import annotations

import logging
import warnings

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd

from promo_opt.errors import ModelError
from promo_opt.features import numeric_matrix
from promo_opt.learners.lgbm import TLEARNER_PARAMS, _fit_early_stopped, lgbm_model, predict_outcome
from promo_opt.threads import lgbm_threads

log = logging.getLogger(__name__)

# Base models inside the meta-learners: no inner validation split (causalml fits them itself),
# so a fixed, moderate number of smooth trees.
BASE_PARAMS = dict(learning_rate=0.05, n_estimators=200, num_leaves=15, min_child_samples=300, subsample=0.8,
                   subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1,
                   deterministic=True, force_row_wise=True)
EFFECT_PARAMS = dict(BASE_PARAMS, num_leaves=7, min_child_samples=200, n_estimators=100)
META_KINDS = ("s", "t", "x", "r", "dr")


class _Imputer:
    """Median imputation fitted at fit time, for libraries that reject NaN."""

    def fit(self, M: np.ndarray) -> "_Imputer":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(M, axis=0) if len(M) else np.zeros(M.shape[1])
        self.median_ = np.where(np.isfinite(med), med, 0.0)
        return self

    def transform(self, M: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(M), self.median_[None, :], M)


def _subsample(n: int, max_rows: int | None, arm: np.ndarray, seed: int, name: str) -> np.ndarray:
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    log.warning("%s: %d rows exceed its size limit; fitting on a random subsample of %d rows", name, n, max_rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


class _CateLearner:
    """Shared part: the control-probability model and the p_0 + tau_k assembly."""

    n_arms: int
    seed: int
    outcome_type: str = "binary"

    def _fit_control(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight) -> None:
        on = arm == 0
        m = lgbm_model(self.outcome_type, random_state=self.seed, **TLEARNER_PARAMS)
        w = None if sample_weight is None else sample_weight[on]
        self.control_ = _fit_early_stopped(m, X[on], y[on], self.seed, stratify=y[on] > 0, sample_weight=w)

    def _assemble(self, X: pd.DataFrame, tau: np.ndarray) -> np.ndarray:
        p0 = predict_outcome(self.control_, X)
        p = np.column_stack([p0, p0[:, None] + tau])
        return np.clip(p, 0.0, 1.0) if self.outcome_type == "binary" else np.clip(p, 0.0, None)

    @staticmethod
    def _check(arm: np.ndarray, n_arms: int, name: str) -> None:
        seen = np.bincount(arm, minlength=n_arms)
        if (seen == 0).any():
            raise ModelError(f"learner {name}: arm(s) {np.flatnonzero(seen == 0).tolist()} have no training rows")


class CausalMLMetaLearner(_CateLearner):
    """causalml's S/T/X/R/DR classifier meta-learner with LightGBM base models, multi-arm.

    ``kind`` in {"s", "t", "x", "r", "dr"}. Only the R-learner takes sample weights (the others
    refuse them: a clear error instead of silently unweighted fits on logged data).
    """

    def __init__(self, n_arms: int, kind: str = "x", seed: int = 0, outcome_type: str = "binary", **params):
        self.n_arms = n_arms
        self.kind = kind
        self.seed = seed
        self.outcome_type = outcome_type
        self.params = params

    def _base(self, classifier: bool, effect: bool = False):
        p = {**(EFFECT_PARAMS if effect else BASE_PARAMS), "n_jobs": lgbm_threads(), "random_state": self.seed,
             **self.params}
        return lgb.LGBMClassifier(**p) if classifier else lgb.LGBMRegressor(**p)

    def _meta(self):
        from causalml.inference import meta

        k = self.kind
        if self.outcome_type != "binary":  # counts and amounts: causalml's regressor meta-learners
            return self._meta_regressor(meta)
        if k == "s":
            return meta.BaseSClassifier(learner=self._base(True))
        if k == "t":
            return meta.BaseTClassifier(learner=self._base(True))
        if k == "x":
            return meta.BaseXClassifier(outcome_learner=self._base(True), effect_learner=self._base(False, True))
        if k == "r":
            r = meta.BaseRClassifier(outcome_learner=self._base(True), effect_learner=self._base(False, True),
                                     n_fold=3, random_state=self.seed)
            return r
        if k == "dr":
            return meta.BaseDRClassifier(learner=self._base(True), treatment_effect_learner=self._base(False, True))
        raise ModelError(f"unknown causalml meta-learner kind {k!r}; expected one of {META_KINDS}")

    def _meta_regressor(self, meta):
        k = self.kind
        if k == "s":
            return meta.BaseSRegressor(learner=self._base(False))
        if k == "t":
            return meta.BaseTRegressor(learner=self._base(False))
        if k == "x":
            return meta.BaseXRegressor(learner=self._base(False))
        if k == "r":
            return meta.BaseRRegressor(learner=self._base(False), n_fold=3, random_state=self.seed)
        if k == "dr":
            return meta.BaseDRRegressor(learner=self._base(False))
        raise ModelError(f"unknown causalml meta-learner kind {k!r}; expected one of {META_KINDS}")

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        name = f"causalml_{self.kind}"
        self._check(arm, self.n_arms, name)
        if sample_weight is not None and self.kind != "r":
            raise ModelError(f"learner {name} cannot take inverse-propensity sample weights (logged data); "
                             "use causalml_r or one of the LightGBM learners (pooled*, tlearner)")
        M = numeric_matrix(X)
        shares = np.bincount(arm, minlength=self.n_arms) / len(arm)
        # propensity of arm k within the rows {control, k}, known on randomized data
        self.share_ = {k: float(shares[k] / (shares[0] + shares[k])) for k in range(1, self.n_arms)}
        p = {k: np.full(len(arm), e) for k, e in self.share_.items()}
        self.meta_ = self._meta()
        kw = {} if self.kind == "s" or self.kind == "t" else {"p": p}
        if self.kind == "r" and sample_weight is not None:
            kw["sample_weight"] = sample_weight
        if self.kind == "r":
            kw["verbose"] = False
        if self.kind == "dr":
            kw["seed"] = self.seed  # its cross-fitting KFold shuffles with this seed (else unseeded: irreproducible)
        # the R-learner's cross_val_predict asks for n_jobs=-1 (worker processes, slow next to
        # LightGBM's own threads): threads instead
        with warnings.catch_warnings(), joblib.parallel_config(backend="threading"):
            warnings.simplefilter("ignore")
            self.meta_.fit(M, arm, y.astype(float) if self.kind == "r" or self.outcome_type != "binary" else y, **kw)
        self._fit_control(X, arm, y, sample_weight)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        M = numeric_matrix(X)
        # the X-learner weights its two effect models by the propensity: the training arm share
        kw = {} if self.kind in ("s", "t", "r") else {"p": {k: np.full(len(M), e) for k, e in self.share_.items()}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau = np.asarray(self.meta_.predict(M, verbose=False, **kw) if self.kind != "r" else self.meta_.predict(M))
        tau = tau.reshape(len(M), self.n_arms - 1)
        return self._assemble(X, tau)


class EconMLDR(_CateLearner):
    """EconML's DRLearner (doubly robust, discrete multi-valued treatment), LightGBM nuisances.

    Fitted on at most ``max_rows`` rows (a seeded subsample above it); missing values are imputed
    by the training medians (EconML rejects NaN). Takes sample weights.
    """

    def __init__(self, n_arms: int, seed: int = 0, max_rows: int | None = 200_000, outcome_type: str = "binary"):
        self.n_arms = n_arms
        self.seed = seed
        self.max_rows = max_rows
        self.outcome_type = outcome_type

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        from econml.dr import DRLearner
        from sklearn.dummy import DummyClassifier

        self._check(arm, self.n_arms, "econml_dr")
        rows = _subsample(len(arm), self.max_rows, arm, self.seed, "econml_dr")
        M = numeric_matrix(X.iloc[rows])
        self.imputer_ = _Imputer().fit(M)
        # randomized data: the propensity is the arm share, which a prior-only classifier estimates
        self.dr_ = DRLearner(model_propensity=DummyClassifier(strategy="prior"),
                             model_regression=lgb.LGBMRegressor(**{**BASE_PARAMS, "n_jobs": lgbm_threads(),
                                                                    "random_state": self.seed}),
                             model_final=lgb.LGBMRegressor(**{**EFFECT_PARAMS, "n_jobs": lgbm_threads(),
                                                               "random_state": self.seed}),
                             cv=2, random_state=self.seed)
        w = None if sample_weight is None else sample_weight[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.dr_.fit(y[rows].astype(float), arm[rows], X=self.imputer_.transform(M), sample_weight=w)
        self._fit_control(X, arm, y, sample_weight)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        M = self.imputer_.transform(numeric_matrix(X))
        tau = np.asarray(self.dr_.const_marginal_effect(M)).reshape(len(M), self.n_arms - 1)
        return self._assemble(X, tau)


class UpliftForest(_CateLearner):
    """causalml's UpliftRandomForestClassifier (KL-divergence splits), multi-arm.

    Pure tree growing in causalml is slow: fitted on at most ``max_rows`` rows (seeded subsample
    above it, logged). Missing values are imputed by the training medians. Per-arm probabilities
    come from the forest's own leaf estimates (``full_output``); no sample weights.
    """

    def __init__(self, n_arms: int, seed: int = 0, max_rows: int | None = 50_000, n_estimators: int = 20,
                 max_depth: int = 5, min_samples_leaf: int = 200):
        self.n_arms = n_arms
        self.seed = seed
        self.max_rows = max_rows
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        from causalml.inference.tree import UpliftRandomForestClassifier

        if sample_weight is not None:
            raise ModelError("learner uplift_forest cannot take inverse-propensity sample weights (logged data); "
                             "use econml_dr, causalml_r or one of the LightGBM learners")
        self._check(arm, self.n_arms, "uplift_forest")
        rows = _subsample(len(arm), self.max_rows, arm, self.seed, "uplift_forest")
        M = numeric_matrix(X.iloc[rows])
        self.imputer_ = _Imputer().fit(M)
        self.forest_ = UpliftRandomForestClassifier(
            control_name="0", n_estimators=self.n_estimators, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=max(1, int(np.ceil(np.sqrt(M.shape[1]) * 2))),
            random_state=self.seed, n_jobs=lgbm_threads())
        self.forest_.fit(self.imputer_.transform(M), arm[rows].astype(str), y[rows].astype(int))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        M = self.imputer_.transform(numeric_matrix(X))
        out = self.forest_.predict(M, full_output=True)
        return np.clip(np.column_stack([out[str(k)].to_numpy(dtype=float) for k in range(self.n_arms)]), 0.0, 1.0)
