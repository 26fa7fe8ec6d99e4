"""Cross-fitting, uplift calibration and honest learner selection.

Why: the allocator hands promotions to exactly the users whose estimated uplift is largest, so
any estimation noise is selected for (the winner's curse): expected conversions and spend of
the chosen users are overstated, the true spend falls short of the budget and the true ROI
short of its floor. Two steps counter it, both estimated on out-of-fold predictions only:

1. level: ``p_control`` is recalibrated (Platt scaling on control rows), since every arm's
   probability is built on it and the spend depends on the levels, not only the differences;
2. uplift: for each arm k, on the rows that received k, the best linear predictor of the true
   uplift given the estimate (Chernozhukov et al.'s BLP)::

       y - p_control(x) = gamma_k + beta_k * (tau_hat_k(x) - mean tau_hat_k) + noise

   beta_k < 1 measures how much of the estimated heterogeneity is noise; the calibrated uplift
   ``gamma_k + beta_k * (tau_hat_k - mean)`` shrinks it away. Scoring averages the fold models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from promo_opt.learners.lgbm import LEARNERS, make_learner

log = logging.getLogger(__name__)

_EPS = 1e-6


def _logit(p):
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass
class UpliftCalibration:
    """Per-arm maps from raw fold-model probabilities to calibrated ones (see module doc)."""

    platt: tuple[float, float] = (0.0, 1.0)  # control: logit p0 -> a + b * logit(raw p0)
    gamma: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) mean uplift, gamma[0] = 0
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) slope, beta[0] = 0
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) mean raw uplift

    @classmethod
    def fit(cls, raw: np.ndarray, arm: np.ndarray, y: np.ndarray, max_beta: float = 5.0) -> "UpliftCalibration":
        K = raw.shape[1]
        on0 = arm == 0
        platt = _platt(_logit(raw[on0, 0]), y[on0])
        p0 = _apply_platt(platt, raw[:, 0])
        gamma, beta, center = np.zeros(K), np.zeros(K), np.zeros(K)
        for k in range(1, K):
            on = arm == k
            tau = raw[on, k] - raw[on, 0]
            center[k] = tau.mean()
            resid = y[on] - p0[on]
            x = tau - center[k]
            gamma[k] = resid.mean()
            var = float((x * x).mean())
            b = float((x * (resid - gamma[k])).mean() / var) if var > 0 else 0.0
            beta[k] = float(np.clip(b, 0.0, max_beta))
        return cls(platt=platt, gamma=gamma, beta=beta, center=center)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        p0 = _apply_platt(self.platt, raw[:, 0])
        tau = raw - raw[:, :1]
        cal = self.gamma[None, :] + self.beta[None, :] * (tau - self.center[None, :])
        cal[:, 0] = 0.0
        return np.clip(p0[:, None] + cal, _EPS, 1 - _EPS)


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of y on z (two parameters), by a few Newton steps."""
    a, b = 0.0, 1.0
    X = np.column_stack([np.ones_like(z), z])
    w = np.array([a, b])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (y - p)
        H = (X * (p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, grad)
        w = w + step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def _apply_platt(platt, p):
    a, b = platt
    return 1 / (1 + np.exp(-(a + b * _logit(p))))


class CrossFitted:
    """K-fold cross-fitting of a base learner with out-of-fold uplift calibration.

    After ``fit``: ``oof_`` (n, K) calibrated out-of-fold probabilities of the training rows,
    ``calibration_``, ``models_`` (one per fold; scoring averages them).
    """

    def __init__(self, learner: str, n_arms: int, arm_terms: np.ndarray | None = None, folds: int = 5,
                 calibrate: bool = True, seed: int = 0):
        self.learner = learner
        self.n_arms = n_arms
        self.arm_terms = arm_terms
        self.folds = folds
        self.calibrate = calibrate
        self.seed = seed

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray) -> "CrossFitted":
        n = len(y)
        raw = np.zeros((n, self.n_arms))
        self.models_ = []
        skf = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        for f, (tr, te) in enumerate(skf.split(np.zeros(n), arm * 2 + y)):
            m = make_learner(self.learner, self.n_arms, self.arm_terms, seed=self.seed + 101 * f)
            m.fit(X.iloc[tr], arm[tr], y[tr])
            raw[te] = m.predict_proba(X.iloc[te])
            self.models_.append(m)
            log.debug("%s fold %d/%d fitted", self.learner, f + 1, self.folds)
        self.calibration_ = UpliftCalibration.fit(raw, arm, y) if self.calibrate else None
        self.oof_ = self.calibration_.apply(raw) if self.calibrate else raw
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raw = np.mean([m.predict_proba(X) for m in self.models_], axis=0)
        return self.calibration_.apply(raw) if self.calibration_ is not None else raw


class Ensemble:
    """The average of several cross-fitted learners' calibrated probabilities.

    Its out-of-fold predictions are the average of the members' (no extra fitting), so it
    competes in selection on the same held-out footing as each member.
    """

    learner = "ensemble"

    def __init__(self, members: list[CrossFitted]):
        self.members = members
        self.oof_ = np.mean([m.oof_ for m in members], axis=0)
        self.calibration_ = None

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean([m.predict_proba(X) for m in self.members], axis=0)


def transformed_outcome_risk(p: np.ndarray, arm: np.ndarray, y: np.ndarray) -> float:
    """Mean over arms of E[(Z_k - tau_hat_k)^2], Z_k the IPW transformed outcome of arm k vs control.

    On randomized data E[Z_k | x] = tau_k(x), so this risk equals E[(tau_k - tau_hat_k)^2] plus a
    constant that does not depend on the model: lower is better, comparable across learners.
    """
    risks = []
    for k in range(1, p.shape[1]):
        on = (arm == 0) | (arm == k)
        t = (arm[on] == k).astype(float)
        e = t.mean()
        z = y[on] * (t / e - (1 - t) / (1 - e))
        tau = p[on, k] - p[on, 0]
        risks.append(float(np.mean((z - tau) ** 2)))
    return float(np.mean(risks))


@dataclass
class SelectionReport:
    chosen: str
    reason: str
    risk: dict[str, float]  # transformed-outcome risk per candidate learner (lower is better)
    log_loss: dict[str, float]  # out-of-fold log loss of the observed arm's probability
    calibration: dict[str, dict[str, list[float]]]  # gamma/beta per learner
    policy_value: dict[str, dict[str, float]] = field(default_factory=dict)  # held-out DR check

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "reason": self.reason, "transformed_outcome_risk": self.risk,
                "oof_log_loss": self.log_loss, "uplift_calibration": self.calibration,
                "policy_value": self.policy_value}


def _log_loss(p: np.ndarray, arm: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(p[np.arange(len(y)), arm], _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def select_learner(X, arm, y, n_arms, arm_terms, *, learner="auto", folds=5, calibrate=True, seed=0):
    """Fit the candidate learners with cross-fitting; the report names the one of least uplift risk.

    Returns ``(fitted, report)``: every cross-fitted candidate by name (and their "ensemble").
    """
    names = list(LEARNERS) if learner == "auto" else [learner]
    fitted = {}
    for n in names:
        fitted[n] = CrossFitted(n, n_arms, arm_terms, folds=folds, calibrate=calibrate, seed=seed).fit(X, arm, y)
        log.info("learner %s cross-fitted (%d folds)", n, folds)
    if len(names) > 1:
        fitted["ensemble"] = Ensemble([fitted[n] for n in names])
        names = [*names, "ensemble"]
    risk = {n: transformed_outcome_risk(m.oof_, arm, y) for n, m in fitted.items()}
    ll = {n: _log_loss(m.oof_, arm, y) for n, m in fitted.items()}
    cal = {n: {"gamma": m.calibration_.gamma.tolist(), "beta": m.calibration_.beta.tolist()}
           for n, m in fitted.items() if m.calibration_ is not None}
    chosen = min(names, key=lambda n: (risk[n], ll[n]))
    reason = (f"least out-of-fold transformed-outcome risk ({risk[chosen]:.6g})" if len(names) > 1
              else "learner fixed by model.learner")
    return fitted, SelectionReport(chosen=chosen, reason=reason, risk=risk, log_loss=ll, calibration=cal)
