"""Two base learners on LightGBM: a pooled model with the arm as a feature, and a T-learner.

Both stop boosting on an inner validation split (log loss; Poisson or Tweedie deviance for count
and amount outcomes), so the number of trees adapts to the data size instead of being a magic
constant. Each fit uses the job's thread budget (:mod:`promo_opt.threads`).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from promo_opt.threads import lgbm_threads

ARM_COLUMN = "__arm__"

DEFAULT_PARAMS = dict(
    learning_rate=0.05, num_leaves=31, min_child_samples=100, subsample=0.8, subsample_freq=1,
    colsample_bytree=0.8, reg_lambda=1.0, n_estimators=2000, verbose=-1,
    deterministic=True, force_row_wise=True,
)

# LightGBM objective per data.outcome_type: a classifier for 0/1, log-link regressions otherwise
# (Poisson for counts; Tweedie for amounts, which are zero for most users and skewed when not).
OUTCOME_OBJECTIVES = {"count": dict(objective="poisson"),
                      "amount": dict(objective="tweedie", tweedie_variance_power=1.5)}


def lgbm_model(outcome_type: str = "binary", **params):
    """A LightGBM estimator for the outcome type: predict with :func:`predict_outcome`."""
    params = {**DEFAULT_PARAMS, "n_jobs": lgbm_threads(), **params}
    if outcome_type == "binary":
        return lgb.LGBMClassifier(**params)
    return lgb.LGBMRegressor(**{**params, **OUTCOME_OBJECTIVES[outcome_type]})


def predict_outcome(model, X) -> np.ndarray:
    """P(y=1 | x) of a classifier, E[y | x] of a regressor (on the response scale)."""
    threads = {"num_threads": lgbm_threads()}  # the job's budget now, not the one it was trained under
    if isinstance(model, lgb.LGBMClassifier):
        return model.predict_proba(X, **threads)[:, 1]
    return np.clip(model.predict(X, **threads), 0.0, None)

# Complexity levels of the pooled learner. Uplift is a weak signal next to the outcome's noise,
# so smooth models often rank users better; which level wins is decided on held-out folds.
POOLED_LEVELS = {
    "pooled_smooth": dict(num_leaves=4, min_child_samples=1000, learning_rate=0.03),
    "pooled": dict(num_leaves=15, min_child_samples=300),
    "pooled_flexible": dict(num_leaves=31, min_child_samples=100),
}
TLEARNER_PARAMS = dict(num_leaves=15, min_child_samples=300)
LEARNERS = (*POOLED_LEVELS, "tlearner")


def _fit_early_stopped(model, X: pd.DataFrame, y: np.ndarray, seed: int, stratify: np.ndarray | None = None,
                       sample_weight: np.ndarray | None = None):
    """Fit on 80%, stop on the other 20% (log loss / l2, weighted when weights are given), keeping the best iteration."""
    rng = np.random.default_rng(seed)
    n = len(y)
    valid = np.zeros(n, dtype=bool)
    groups = stratify if stratify is not None else np.zeros(n, dtype=np.int64)
    for gval in np.unique(groups):
        idx = np.flatnonzero(groups == gval)
        valid[rng.choice(idx, size=max(1, int(round(0.2 * idx.size))), replace=False)] = True
    if valid.all() or not valid.any():
        return model.fit(X, y, sample_weight=sample_weight)
    w = {} if sample_weight is None else {"sample_weight": sample_weight[~valid],
                                          "eval_sample_weight": [sample_weight[valid]]}
    model.fit(X[~valid], y[~valid], eval_X=(X[valid],), eval_y=(y[valid],),
              callbacks=[lgb.early_stopping(50, verbose=False)], **w)
    return model


class TLearnerLGBM:
    """One LightGBM classifier per arm: p_k(x) = P(y=1 | x, arm=k)."""

    def __init__(self, n_arms: int, seed: int = 0, outcome_type: str = "binary", **params):
        self.n_arms = n_arms
        self.seed = seed
        self.outcome_type = outcome_type
        self.params = params

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "TLearnerLGBM":
        self.models_ = []
        for k in range(self.n_arms):
            on = arm == k
            m = lgbm_model(self.outcome_type, random_state=self.seed + k, **self.params)
            w = None if sample_weight is None else sample_weight[on]
            self.models_.append(_fit_early_stopped(m, X[on], y[on], self.seed + k, stratify=y[on] > 0,
                                                   sample_weight=w))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([predict_outcome(m, X) for m in self.models_])


class PooledLGBM:
    """One LightGBM classifier on the features plus the arm (a categorical) and the arm's terms.

    Sharing one model across arms lets sparse arms borrow the base-rate structure of the others;
    the arm's cost terms (discount, voucher, send cost) let trees treat stronger offers alike.

    ``monotone=True``: the promotion's strength terms (columns ``MONOTONE_TERMS`` of ``arm_terms``:
    the discount and the cost per conversion, i.e. what the user is given) get LightGBM's
    increasing ``monotone_constraints``: a bigger discount never lowers the predicted conversion.
    The arm is then described by its terms only (no arm categorical, which would let trees bypass
    the constraint), unless two arms share the same terms: then the categorical is kept so they
    stay apart, and the constraint holds only along the terms.
    """

    MONOTONE_TERMS = (0, 1)

    def __init__(self, n_arms: int, arm_terms: np.ndarray | None = None, seed: int = 0, monotone: bool = False,
                 outcome_type: str = "binary", **params):
        self.n_arms = n_arms
        self.arm_terms = arm_terms  # (n_arms, n_terms) numeric description of each arm
        self.seed = seed
        self.monotone = monotone
        self.outcome_type = outcome_type
        self.params = params

    def _with_arm_column(self) -> bool:
        if not self.monotone or self.arm_terms is None:
            return True
        return len(np.unique(np.asarray(self.arm_terms), axis=0)) < self.n_arms

    def _design(self, X: pd.DataFrame, arm: np.ndarray) -> pd.DataFrame:
        D = X.copy()
        if self._with_arm_column():
            D[ARM_COLUMN] = pd.Categorical(arm, categories=list(range(self.n_arms)))
        if self.arm_terms is not None:
            for j in range(self.arm_terms.shape[1]):
                D[f"__arm_term{j}__"] = self.arm_terms[arm, j]
        return D

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "PooledLGBM":
        D = self._design(X, arm)
        params = {"random_state": self.seed, **self.params}
        if self.monotone and self.arm_terms is not None:
            terms = {f"__arm_term{j}__" for j in self.MONOTONE_TERMS if j < self.arm_terms.shape[1]}
            params["monotone_constraints"] = [1 if c in terms else 0 for c in D.columns]
            params["monotone_constraints_method"] = "advanced"
        m = lgbm_model(self.outcome_type, **params)
        self.model_ = _fit_early_stopped(m, D, y, self.seed, stratify=arm * 2 + (y > 0), sample_weight=sample_weight)
        return self

    def _forest(self):
        """The booster compiled for per-arm scoring (:mod:`promo_opt.learners.forest`), or None when
        its trees use something the compiled scorer does not follow (then LightGBM predicts)."""
        if not hasattr(self, "forest_"):
            from promo_opt.learners.forest import CompiledForest

            arm_cols = [ARM_COLUMN] + [f"__arm_term{j}__" for j in range(0 if self.arm_terms is None
                                                                         else self.arm_terms.shape[1])]
            try:
                self.forest_ = CompiledForest(self.model_.booster_, arm_cols)
            except (ValueError, KeyError):
                self.forest_ = None
        return self.forest_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        n = len(X)
        forest = self._forest()
        if forest is None:
            return np.column_stack([
                predict_outcome(self.model_, self._design(X, np.full(n, k))) for k in range(self.n_arms)
            ])
        import numba

        from promo_opt.features import numeric_matrix

        numba.set_num_threads(min(lgbm_threads(), numba.config.NUMBA_NUM_THREADS))
        D = self._design(X, np.zeros(n, dtype=np.int64))
        cols = list(D.columns)
        M = numeric_matrix(D)
        base = forest.raw(M, ~forest.arm_tree)  # the trees that do not split on the arm: once for all arms
        out = np.empty((n, self.n_arms))
        for k in range(self.n_arms):
            if self._with_arm_column():
                M[:, cols.index(ARM_COLUMN)] = k
            if self.arm_terms is not None:
                for j in range(self.arm_terms.shape[1]):
                    M[:, cols.index(f"__arm_term{j}__")] = self.arm_terms[k, j]
            out[:, k] = forest.response(base + forest.raw(M, forest.arm_tree))
        return out


def make_learner(name: str, n_arms: int, arm_terms: np.ndarray | None, seed: int, outcome_type: str = "binary"):
    """A fresh learner by its registry name (see ``promo_opt.learners.registry``)."""
    from promo_opt.learners.registry import make_learner as _make

    return _make(name, n_arms, arm_terms, seed, outcome_type)
