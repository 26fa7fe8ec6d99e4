"""Fusing a small randomized sample with large logged (confounded) data.

Two published-style approaches, both on :class:`~promo_opt.learners.lgbm.PooledLGBM` fitted to the
logged rows first (``p_hat (n, K)``, ``tau_hat_k = p_hat_k - p_hat_0``):

``method="stacked"`` (default): the randomized sample is the only training data of a second
PooledLGBM whose features are the user's features plus the logged model's predictions
(``logit p_hat_0`` and every ``tau_hat_k``): the logged model is used as a learned
representation, while the arm effects are learned where the arm was random, so the logged bias
cannot enter except through what the randomized rows confirm (stacking / "prediction as a
feature" in the data-fusion literature).

``method="correction"``: experimental grounding (Kallus, Puli & Shalit, "Removing Hidden
Confounding by Experimental Grounding", NeurIPS 2018): keep the logged uplift and learn its bias on
the randomized sample, where the arm was assigned with known shares ``e_k``:

1. On the randomized rows the doubly robust pseudo-outcome, with the logged model as the outcome
   model, is unbiased for the true uplift ``tau_k(x)`` whatever the logged model's bias:
   ``q_k = tau_hat_k + 1[A=k](y - p_hat_k)/e_k - 1[A=0](y - p_hat_0)/e_0``
   (Kallus et al. use the plain transformed outcome ``y (1[A=k]/e_k - 1[A=0]/e_0)``; subtracting the
   logged model's prediction keeps it unbiased and lowers its variance, as in the DR-learner).
2. The bias ``q_k - tau_hat_k`` is regressed on ``phi(x)``, linear as in Kallus et al. Which
   correction a randomized sample can afford depends on its size, so four nested corrections
   compete by 5-fold cross-validated squared error against the pseudo-outcome on the randomized
   rows (an unbiased comparison of their uplift errors). The shift is taken when the mean bias is
   two standard errors from zero, a richer correction only when it beats the current one by two
   standard errors of the paired difference of losses: ``none`` (trust the logged model),
   ``shift`` (a constant per arm), ``scale`` (least squares on ``[tau_hat_k, p_hat_0]``) and
   ``features`` (ridge on ``[tau_hat_k, p_hat_0, features]``, penalty by leave-one-out,
   scikit-learn ``RidgeCV``). The choice per arm is kept in ``choice_``.
3. Fused uplift ``tau_k = tau_hat_k + eta_k(x)``; probabilities ``p_0 = p_hat_0``,
   ``p_k = clip(p_hat_0 + tau_k, 0, 1)``.

Which wins depends on the sizes and on how biased the logged data are: see
``benchmarks/observational.py`` (``reports/observational.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

from promo_opt.errors import DataError
from promo_opt.features import FeaturePreprocessor
from promo_opt.learners.lgbm import PooledLGBM
from promo_opt.observational.design import linear_encoder
from promo_opt.observational.propensity import text_as_object

ALPHAS = np.logspace(-1, 5, 25)


class FusedUplift:
    """Logged-data uplift corrected on a randomized sample. ``fit(...)`` -> self; ``predict_proba(X)`` -> (n, K)."""

    def __init__(self, n_arms: int, arm_terms: np.ndarray | None = None, seed: int = 0, method: str = "stacked",
                 **lgbm_params):
        self.n_arms = n_arms
        self.method = method
        self.arm_terms = arm_terms
        self.seed = seed
        self.lgbm_params = lgbm_params

    def fit(self, X_logged: pd.DataFrame, arm_logged: np.ndarray, y_logged: np.ndarray,
            X_rand: pd.DataFrame, arm_rand: np.ndarray, y_rand: np.ndarray,
            shares: np.ndarray | None = None, logged_model: PooledLGBM | None = None) -> "FusedUplift":
        """``shares`` (K,): the randomized sample's assignment probabilities (default: observed shares);
        ``logged_model``: an already fitted logged-data model to reuse (else one is fitted)."""
        arm_rand = np.asarray(arm_rand, dtype=np.int64)
        counts = np.bincount(arm_rand, minlength=self.n_arms)
        if (counts == 0).any():
            raise DataError(f"the randomized sample has no rows of arm(s) {np.flatnonzero(counts == 0).tolist()}; "
                            "every arm needs randomized rows to correct its logged uplift")
        self.shares_ = counts / counts.sum() if shares is None else np.asarray(shares, dtype=np.float64)
        self.logged_ = logged_model or PooledLGBM(self.n_arms, self.arm_terms, self.seed, **self.lgbm_params).fit(
            X_logged, np.asarray(arm_logged), np.asarray(y_logged))
        p = self.logged_.predict_proba(X_rand)
        if self.method == "stacked":
            self.stacked_ = PooledLGBM(self.n_arms, self.arm_terms, self.seed, **self.lgbm_params).fit(
                self._stack(X_rand, p), arm_rand, np.asarray(y_rand))
            return self
        self.pre_ = FeaturePreprocessor().fit(X_rand)
        self.encoder_ = linear_encoder(list(self.pre_.numeric_), list(self.pre_.categorical_))
        F = self.encoder_.fit_transform(self._text(X_rand))
        y = np.asarray(y_rand, dtype=np.float64)
        self.corrections_, self.scale_, self.choice_, self.cv_risk_ = [None], {}, {}, {}
        folds = KFold(5, shuffle=True, random_state=self.seed)
        for k in range(1, self.n_arms):
            tau = p[:, k] - p[:, 0]
            t, c = arm_rand == k, arm_rand == 0
            bias = t * (y - p[:, k]) / self.shares_[k] - c * (y - p[:, 0]) / self.shares_[0]
            Phi = self._phi(k, tau, p[:, 0], F, fit=True)
            loss = {"none": bias**2}
            for name, model in self._candidates().items():
                pred = cross_val_predict(model, self._columns(name, Phi), bias, cv=folds)
                loss[name] = (bias - pred) ** 2
            # a shift when the mean bias differs from zero by two standard errors; a richer correction
            # only when its cross-validated loss beats the current one by two standard errors
            best = "shift" if abs(bias.mean()) > 2 * bias.std(ddof=1) / np.sqrt(len(bias)) else "none"
            for name in ("scale", "features"):
                d = loss[best] - loss[name]
                if d.mean() > 2 * d.std(ddof=1) / np.sqrt(len(d)):
                    best = name
            self.choice_[k], self.cv_risk_[k] = best, {n: float(v.mean()) for n, v in loss.items()}
            self.corrections_.append(None if best == "none"
                                     else self._candidates()[best].fit(self._columns(best, Phi), bias))
        return self

    @staticmethod
    def _candidates() -> dict:
        return {"shift": DummyRegressor(), "scale": LinearRegression(), "features": RidgeCV(alphas=ALPHAS)}

    @staticmethod
    def _columns(name: str, Phi: np.ndarray) -> np.ndarray:
        return Phi[:, :2] if name in ("shift", "scale") else Phi

    def _text(self, X: pd.DataFrame) -> pd.DataFrame:
        return text_as_object(self.pre_.transform(X), list(self.pre_.categorical_))

    def _phi(self, k: int, tau: np.ndarray, p0: np.ndarray, F: np.ndarray, fit: bool = False) -> np.ndarray:
        """[tau_hat_k, p_hat_0] standardized (scale learned on the randomized rows), then the features."""
        head = np.column_stack([tau, p0])
        if fit:
            self.scale_[k] = (head.mean(0), head.std(0) + 1e-12)
        mean, sd = self.scale_[k]
        return np.hstack([(head - mean) / sd, F])

    @staticmethod
    def _stack(X: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
        S = X.copy()
        lp = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
        S["__logged_logit0__"] = lp[:, 0]
        for k in range(1, p.shape[1]):
            S[f"__logged_uplift{k}__"] = p[:, k] - p[:, 0]
        return S

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """(n, K) fused uplift per arm against the control; column 0 is zero."""
        p = self.logged_.predict_proba(X)
        if self.method == "stacked":
            q = self.stacked_.predict_proba(self._stack(X, p))
            return q - q[:, [0]]
        F = self.encoder_.transform(self._text(X))
        out = np.zeros_like(p)
        for k in range(1, self.n_arms):
            tau = p[:, k] - p[:, 0]
            model = self.corrections_[k]
            out[:, k] = tau if model is None else tau + model.predict(self._columns(self.choice_[k], self._phi(k, tau, p[:, 0], F)))
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.method == "stacked":
            return self.stacked_.predict_proba(self._stack(X, self.logged_.predict_proba(X)))
        p0 = self.logged_.predict_proba(X)[:, [0]]
        return np.clip(p0 + self.predict_uplift(X), 0.0, 1.0)
