"""Cross-fitting, uplift calibration and honest learner selection.

Why: the allocator hands promotions to exactly the users whose estimated uplift is largest, so
any estimation noise is selected for (the winner's curse): expected conversions and spend of
the chosen users are overstated, the true spend falls short of the budget and the true ROI
short of its floor. Two steps counter it, both estimated on out-of-fold predictions only:

1. level: ``p_control`` is recalibrated (Platt scaling on control rows), since every arm's
   probability is built on it and the spend depends on the levels, not only the differences;
2. uplift: for each arm k, on the rows that received k or the control, the best linear predictor
   of the true uplift given the estimate (Chernozhukov et al.'s BLP)::

       y = a0 + a1 p_control(x) + gamma_k (D - e) + beta_k (D - e)(tau_hat_k(x) - mean tau_hat_k) + noise

   with D = 1 on the rows that received k and e its share. beta_k < 1 measures how much of the
   estimated heterogeneity is noise, beta_k > 1 how much the model flattened; the calibrated
   uplift ``gamma_k + beta_k * (tau_hat_k - mean)`` corrects both. Scoring averages the fold models.

   The control rows are what make the slope honest: ``D - e`` is independent of x under
   randomization, so an error of ``p_control`` that moves with tau_hat (a smooth pooled model
   that puts the level too high where the uplift is high, and too low where it is low) cannot
   leak into beta_k. A regression of ``y - p_control`` on tau_hat over the arm's rows alone takes
   that error for (missing) heterogeneity: in the travel world it gave beta 1.03 where the
   candidates' true uplift rises 2.2 per unit of the estimate, so the model promised the best
   users half their true return and an ROI floor cut the budget to half.

Both gamma_k and beta_k are themselves noisy (a few thousand binary outcomes per arm give beta a
standard error of ~0.3), and a noisy beta > 1 would stretch noise instead of removing it. So each
is shrunk toward its no-change value (the model's own mean uplift; a slope of 1) by empirical
Bayes (:func:`eb_shrink_all`): a normal prior around the no-change value whose variance is
estimated from the deviations themselves, so a deviation within its standard error is dropped
and one of many standard errors is kept nearly whole. With three or more promotions the prior
variance is estimated from all of them (James-Stein), not from each arm's one deviation: in a
20k-user campaign with four promotions, one arm's slope 3.96 +- 1.78 kept 2.90 on its own
(the others were near 1) and stretched noise into a loss; pooled, it keeps 1.8.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from promo_opt.errors import ModelError
from promo_opt.learners.registry import LEARNERS, auto_candidates, check_learner_name, make_learner

# ``learner: auto`` on large data: the candidates compete on a seeded subsample of at most
# SELECTION_ROWS rows with at most SELECTION_FOLDS folds; the winner is then cross-fitted on all
# rows with max(2, round(folds * SELECTION_ROWS / n)) folds (at least 2, at most model.folds), so
# the training cost grows about linearly in n instead of as folds x candidates x n.
SELECTION_ROWS = 100_000
SELECTION_FOLDS = 5
# Overlap on logged data: a propensity below this is poor overlap (warned, recorded)
POOR_OVERLAP = 0.02

Progress = Callable[[str, int, int], None]  # (what, done, total)

log = logging.getLogger(__name__)

_EPS = 1e-6


def _logit(p):
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def eb_shrink(estimate: float, target: float, se: float) -> float:
    """Posterior mean of a normal-prior empirical Bayes model centred on ``target``.

    The prior variance is estimated from the one deviation d = estimate - target as
    max(0, d^2 - se^2), so the result is ``target + d * max(0, 1 - se^2 / d^2)``.
    """
    d = estimate - target
    if d == 0.0 or not np.isfinite(d):
        return float(target)
    if not np.isfinite(se):
        return float(target)
    return float(target + d * max(0.0, 1.0 - (se * se) / (d * d)))


def eb_shrink_all(estimates: np.ndarray, targets: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Empirical Bayes posterior means of several estimates, each toward its target, under one
    normal prior of variance tau^2 on the deviations: ``target + d tau^2 / (tau^2 + se^2)``.

    With three or more deviations that have a standard error, tau^2 = max(0, mean(d^2 - se^2))
    (the James-Stein moment estimate); with fewer, each is shrunk on its own (:func:`eb_shrink`).
    A standard error of 0 (nothing estimated) or not finite keeps the target."""
    est, tgt, se = (np.asarray(a, dtype=np.float64) for a in (estimates, targets, se))
    d = est - tgt
    ok = np.isfinite(d) & np.isfinite(se) & (se > 0)
    out = tgt.copy()
    if ok.sum() < 3:
        for i in np.flatnonzero(ok):
            out[i] = eb_shrink(float(est[i]), float(tgt[i]), float(se[i]))
        return out
    tau2 = max(0.0, float(np.mean(d[ok] ** 2 - se[ok] ** 2)))
    out[ok] = tgt[ok] + d[ok] * tau2 / (tau2 + se[ok] ** 2)
    return out


@dataclass
class UpliftCalibration:
    """Per-arm maps from raw fold-model probabilities to calibrated ones (see module doc)."""

    platt: tuple[float, float] = (0.0, 1.0)  # control: logit p0 -> a + b * logit(raw p0)
    gamma: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) mean uplift, gamma[0] = 0
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) slope, beta[0] = 0
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) mean raw uplift
    binary: bool = True  # binary: Platt scaling of p_control; count/amount: its log-link analogue

    @classmethod
    def fit(cls, raw: np.ndarray, arm: np.ndarray, y: np.ndarray, max_beta: float = 5.0,
            outcome_type: str = "binary", shrink: bool = True) -> "UpliftCalibration":
        """``shrink`` False: gamma and beta as estimated, without empirical Bayes (their sampling
        spread, for :func:`promo_opt.evaluation.heldout.calibration_cov`)."""
        K = raw.shape[1]
        on0 = arm == 0
        binary = outcome_type == "binary"
        platt = _platt(_logit(raw[on0, 0]), y[on0]) if binary else _log_link(np.log(np.maximum(raw[on0, 0], _EPS)), y[on0])
        p0 = cls._level(platt, raw[:, 0], binary)
        est = np.array([(0.0, 0.0, 1.0, 0.0, 0.0)] + [_blp(raw, arm, y, p0, k) for k in range(1, K)])
        g, se_g, b, se_b, center = est.T
        if shrink:
            g[1:] = eb_shrink_all(g[1:], center[1:], se_g[1:])
            b[1:] = eb_shrink_all(b[1:], np.ones(K - 1), se_b[1:])
        beta = np.clip(b, 0.0, max_beta)
        beta[0] = 0.0
        return cls(platt=platt, gamma=g, beta=beta, center=center, binary=binary)

    @staticmethod
    def _level(platt, p, binary: bool) -> np.ndarray:
        if binary:
            return _apply_platt(platt, p)
        a, b = platt
        return np.exp(np.clip(a + b * np.log(np.maximum(p, _EPS)), -50.0, 50.0))

    def apply(self, raw: np.ndarray) -> np.ndarray:
        p0 = self._level(self.platt, raw[:, 0], self.binary)
        tau = raw - raw[:, :1]
        cal = self.gamma[None, :] + self.beta[None, :] * (tau - self.center[None, :])
        cal[:, 0] = 0.0
        p = p0[:, None] + cal
        return np.clip(p, _EPS, 1 - _EPS) if self.binary else np.clip(p, 0.0, None)


def _blp(raw: np.ndarray, arm: np.ndarray, y: np.ndarray, p0: np.ndarray, k: int) -> tuple[float, ...]:
    """(gamma, se of gamma, beta, se of beta, center) of arm k by the best linear predictor regression
    of Chernozhukov et al. on the rows of the control and k (module doc)::

        y = a0 + a1 p0(x) + gamma (D - e) + beta (D - e)(tau_hat(x) - center) + noise

    The control rows absorb level errors of p0 that move with tau_hat, which the arm-only
    regression of y - p0 on tau_hat takes for heterogeneity (with counts, whose uplift scales
    with the level, it drove beta to 0; with a smooth binary model, to 1 where the truth was 2).
    Heteroskedasticity-robust standard errors; a standard error of 0 means "nothing to estimate"
    (too few rows, or an estimate that does not vary), which the shrinkage keeps at no change.
    """
    on = (arm == 0) | (arm == k)
    tau = raw[on, k] - raw[on, 0]
    center = float(tau.mean())
    d = (arm[on] == k).astype(np.float64)
    if d.sum() < 2 or (1 - d).sum() < 2:
        return center, 0.0, 1.0, 0.0, center
    dd = d - d.mean()
    X = np.column_stack([np.ones(len(d)), p0[on], dd, dd * (tau - center)])
    yy = y[on].astype(np.float64)
    XtX_inv = np.linalg.pinv(X.T @ X)
    coef = XtX_inv @ (X.T @ yy)
    e = yy - X @ coef
    cov = XtX_inv @ ((X * (e * e)[:, None]).T @ X) @ XtX_inv
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    beta, se_b = (float(coef[3]), float(se[3])) if se[3] > 0 else (1.0, 0.0)
    return float(coef[2]), float(se[2]), beta, se_b, center


def _log_link(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Poisson regression of y on z = log(prediction) (log link, two parameters), by Newton steps:
    the count/amount analogue of Platt scaling."""
    X = np.column_stack([np.ones_like(z), z])
    w = np.array([0.0, 1.0])
    for _ in range(50):
        mu = np.exp(np.clip(X @ w, -50.0, 50.0))
        grad = X.T @ (y - mu)
        H = (X * mu[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, grad)
        w = w + step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


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


def fold_splits(arm: np.ndarray, y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) row indices of every fold, stratified by arm and outcome (> 0); the same
    for every learner with the same seed, so their out-of-fold losses are paired row by row."""
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), arm * 2 + (y > 0)))


class CrossFitted:
    """K-fold cross-fitting of a base learner with out-of-fold uplift calibration.

    After ``fit``: ``oof_`` (n, K) calibrated out-of-fold probabilities of the training rows,
    ``calibration_``, ``models_`` (one per fold; scoring averages them). For count and amount
    outcomes (``outcome_type``) the "probabilities" are expected outcomes.

    ``fit`` is ``start`` + ``fit_fold`` for every fold + ``finish``; the race of
    :func:`select_learner` calls the three itself to interleave learners fold by fold.
    """

    def __init__(self, learner: str, n_arms: int, arm_terms: np.ndarray | None = None, folds: int = 5,
                 calibrate: bool = True, seed: int = 0, outcome_type: str = "binary"):
        check_learner_name(learner)
        self.learner = learner
        self.n_arms = n_arms
        self.arm_terms = arm_terms
        self.folds = folds
        self.calibrate = calibrate
        self.seed = seed
        self.outcome_type = outcome_type

    def start(self, n: int) -> "CrossFitted":
        self.raw_ = np.zeros((n, self.n_arms))
        self.models_ = []
        self.fold_seconds_ = []
        return self

    def fit_fold(self, f: int, tr: np.ndarray, te: np.ndarray, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray,
                 sample_weight: np.ndarray | None = None) -> "CrossFitted":
        t0 = time.perf_counter()
        m = make_learner(self.learner, self.n_arms, self.arm_terms, seed=self.seed + 101 * f,
                         outcome_type=self.outcome_type)
        w = None if sample_weight is None else sample_weight[tr]
        m.fit(X.iloc[tr], arm[tr], y[tr], **({} if w is None else {"sample_weight": w}))
        self.raw_[te] = m.predict_proba(X.iloc[te])
        self.models_.append(m)
        self.fold_seconds_.append(time.perf_counter() - t0)
        log.debug("%s fold %d/%d fitted", self.learner, f + 1, self.folds)
        return self

    def finish(self, arm: np.ndarray, y: np.ndarray) -> "CrossFitted":
        self.calibration_ = (UpliftCalibration.fit(self.raw_, arm, y, outcome_type=self.outcome_type)
                             if self.calibrate else None)
        self.oof_ = self.calibration_.apply(self.raw_) if self.calibrate else self.raw_
        return self

    def recalibrated_oof(self, arm: np.ndarray, y: np.ndarray, rows: np.ndarray,
                         at: np.ndarray | None = None) -> np.ndarray | None:
        """The out-of-fold probabilities under a calibration refitted, without shrinkage, on ``rows``
        (a bootstrap draw of the training rows): how much the sampling noise of the uplift's level
        and slope moves them (the shrinkage's centre, the model's own mean uplift, is learned from
        the same rows, so the shrunk refit would understate it); of the rows ``at`` (default all). None when the
        learner is not calibrated (or ``raw_`` was not kept: a loaded model)."""
        raw = getattr(self, "raw_", None)
        if self.calibration_ is None or raw is None:
            return None
        cal = UpliftCalibration.fit(raw[rows], arm[rows], y[rows], outcome_type=self.outcome_type, shrink=False)
        return cal.apply(raw if at is None else raw[at])

    def __getstate__(self) -> dict:
        # the raw out-of-fold predictions serve the forecast's uncertainty at training time only
        state = dict(self.__dict__)
        state.pop("raw_", None)
        return state

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            progress: Progress | None = None) -> "CrossFitted":
        """``sample_weight`` (n,): inverse-propensity (and drift) weights, passed to every fold model."""
        self.start(len(y))
        for f, (tr, te) in enumerate(fold_splits(arm, y, self.folds, self.seed)):
            self.fit_fold(f, tr, te, X, arm, y, sample_weight)
            if progress is not None:
                progress(self.learner, f + 1, self.folds)
        return self.finish(arm, y)

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

    def recalibrated_oof(self, arm: np.ndarray, y: np.ndarray, rows: np.ndarray,
                         at: np.ndarray | None = None) -> np.ndarray | None:
        """The members' :meth:`CrossFitted.recalibrated_oof` (same rows), averaged."""
        draws = [m.recalibrated_oof(arm, y, rows, at) for m in self.members]
        return None if any(d is None for d in draws) else np.mean(draws, axis=0)


def transformed_outcome_losses(p: np.ndarray, arm: np.ndarray, y: np.ndarray,
                               propensity: np.ndarray | None = None,
                               baseline: np.ndarray | None = None) -> np.ndarray:
    """Each row's share of :func:`transformed_outcome_risk` (the shares sum to the risk).

    Rows are independent, so the standard error of a paired risk difference between two models
    is ``sqrt(n) * std(losses_a - losses_b)``, control rows shared by every arm included.
    ``baseline`` (n, K): see :func:`selection_baseline`.
    """
    K = p.shape[1]
    out = np.zeros(len(y))
    for k in range(1, K):
        on = (arm == 0) | (arm == k)
        t = (arm[on] == k).astype(float)
        yk = y[on] if baseline is None else y[on] - baseline[on, k]
        if propensity is None:
            e = t.mean()
            z = yk * (t / e - (1 - t) / (1 - e))
        else:  # scaled to the {control, k} rows, as the randomized formula is
            z = yk * (t - (1 - t)) / propensity[on] * on.mean()
        tau = p[on, k] - p[on, 0]
        out[on] += (z - tau) ** 2 / (on.sum() * (K - 1))
    return out


def transformed_outcome_risk(p: np.ndarray, arm: np.ndarray, y: np.ndarray,
                             propensity: np.ndarray | None = None,
                             baseline: np.ndarray | None = None) -> float:
    """Mean over arms of E[(Z_k - tau_hat_k)^2], Z_k the IPW transformed outcome of arm k vs control.

    On randomized data E[Z_k | x] = tau_k(x), so this risk equals E[(tau_k - tau_hat_k)^2] plus a
    constant that does not depend on the model: lower is better, comparable across learners.
    ``propensity`` (n,): P(logged arm | x) on logged data; the arm shares otherwise.
    ``baseline`` (n, K): subtracted from the outcome before weighting (:func:`selection_baseline`).
    """
    return float(transformed_outcome_losses(p, arm, y, propensity, baseline).sum())


def selection_baseline(preds: list[np.ndarray], arm: np.ndarray) -> np.ndarray:
    """The outcome level subtracted in the transformed outcome, (n, K): for arm k,
    ``b_k(x) = (1 - e_k) mu_k(x) + e_k mu_0(x)``, mu the candidates' mean out-of-fold prediction and
    e_k the share of arm k among the rows of the control and k.

    Why: Z_k = (y - b(x)) (t/e - (1-t)/(1-e)) keeps E[Z_k | x] = tau_k(x) for any b that does not
    use the row's own arm or outcome (out-of-fold predictions do not), so the comparison stays
    unbiased; this b is the variance-minimising level, and it removes the outcome's baseline from
    the noise. With counts and amounts, whose level varies far more than their uplift, the raw
    transformed outcome left most learners within one standard error of each other, and the
    one-standard-error rule then kept the most constrained one whatever the data said.
    """
    mu = np.mean(preds, axis=0)
    K = mu.shape[1]
    b = np.zeros_like(mu)
    for k in range(1, K):
        on = (arm == 0) | (arm == k)
        e = float((arm[on] == k).mean()) if on.any() else 0.5
        b[:, k] = (1 - e) * mu[:, k] + e * mu[:, 0]
    return b


def one_se_choice(losses: dict[str, np.ndarray], order: list[str]) -> tuple[str, str, dict[str, float]]:
    """The one-standard-error rule: the first learner of ``order`` (most constrained first) whose
    risk exceeds the least risk by at most one standard error of the paired difference.

    Returns (choice, reason, the standard error of each learner's difference to the least-risk one).
    Why: on uplift data the risk differences between learners are often within noise, and the
    more flexible learner then mostly fits noise, which the allocator selects for.
    """
    risk = {nm: float(v.sum()) for nm, v in losses.items()}
    best = min(order, key=lambda nm: risk[nm])
    se = {nm: float(np.sqrt(len(v)) * (v - losses[best]).std()) for nm, v in losses.items()}
    chosen = next(nm for nm in order if risk[nm] - risk[best] <= se[nm])
    if chosen == best:
        return chosen, f"least out-of-fold transformed-outcome risk ({risk[best]:.6g})", se
    return chosen, (f"the most constrained learner within one standard error of the least out-of-fold "
                    f"transformed-outcome risk ({best}: {risk[best]:.6g}; {chosen}: {risk[chosen]:.6g}, "
                    f"standard error of the difference {se[chosen]:.3g})"), se


@dataclass
class SelectionReport:
    chosen: str
    reason: str
    risk: dict[str, float]  # transformed-outcome risk per candidate learner (lower is better)
    log_loss: dict[str, float]  # out-of-fold log loss of the observed arm's probability
    calibration: dict[str, dict[str, list[float]]]  # gamma/beta per learner
    policy_value: dict[str, dict[str, float]] = field(default_factory=dict)  # held-out DR check
    uplift_metrics: dict[str, dict[str, dict]] = field(default_factory=dict)  # learner -> arm -> qini/auuc/uplift@k
    qini_curves: dict[str, dict] = field(default_factory=dict)  # the chosen learner's per-arm Qini curves
    candidates: list[str] = field(default_factory=list)
    selection_rows: int = 0  # rows the candidates were compared on (all, or a subsample)
    selection_folds: int = 0
    final_folds: int = 0  # folds of the chosen learner's fit on all rows
    seconds: dict[str, float] = field(default_factory=dict)
    overlap: dict[str, float] = field(default_factory=dict)  # logged data only
    risk_se: dict[str, float] = field(default_factory=dict)  # SE of each risk's difference to the least
    race: dict = field(default_factory=dict)  # RaceReport.as_dict(): who stopped early and why

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "reason": self.reason, "candidates": self.candidates,
                "selection_rows": self.selection_rows, "selection_folds": self.selection_folds,
                "final_folds": self.final_folds, "transformed_outcome_risk": self.risk,
                "risk_difference_se": self.risk_se,
                "oof_log_loss": self.log_loss, "uplift_metrics": self.uplift_metrics,
                "uplift_calibration": self.calibration, "policy_value": self.policy_value,
                "seconds": self.seconds, "overlap": self.overlap, "race": self.race, "qini_curves": self.qini_curves}


def _log_loss(p: np.ndarray, arm: np.ndarray, y: np.ndarray) -> float:
    """Out-of-fold log loss of the observed arm (binary), or its mean Poisson deviance (count/amount)."""
    q = p[np.arange(len(y)), arm]
    if not np.isin(y, (0, 1)).all():
        q = np.maximum(q, _EPS)
        return float(2 * np.mean(np.where(y > 0, y * np.log(np.maximum(y, _EPS) / q), 0.0) - (y - q)))
    q = np.clip(q, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def overlap_diagnostics(propensity: np.ndarray) -> dict[str, float]:
    """Overlap of logged data: smallest propensity, share of rows below POOR_OVERLAP, and the
    effective sample size of the inverse-propensity weights as a share of the rows."""
    w = 1.0 / propensity
    return {"min_propensity": float(propensity.min()), "share_below_%g" % POOR_OVERLAP: float((propensity < POOR_OVERLAP).mean()),
            "effective_sample_share": float(w.sum() ** 2 / (w * w).sum() / len(w))}


def _check_propensity(propensity: np.ndarray, n: int) -> np.ndarray:
    propensity = np.asarray(propensity, dtype=np.float64)
    if propensity.shape != (n,):
        raise ModelError(f"propensity has shape {propensity.shape}; expected ({n},), one per training row")
    bad = ~np.isfinite(propensity) | (propensity <= 0) | (propensity > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelError(f"propensity row {i} is {propensity[i]}; expected a probability in (0, 1] "
                         "(the probability that the row got the arm it got)")
    return propensity


def _subsample_rows(arm: np.ndarray, y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded sample of ``size`` rows, stratified by (arm, outcome)."""
    rng = np.random.default_rng([seed, 4241])
    strata = arm * 2 + (y > 0)
    take = []
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        take.append(rng.choice(idx, size=max(1, int(round(size * idx.size / len(y)))), replace=False))
    return np.sort(np.concatenate(take))


@dataclass
class RaceReport:
    """How ``learner: auto``'s candidates were raced: who stopped, after how many folds, and why."""

    eliminated: dict[str, dict] = field(default_factory=dict)  # learner -> {after_folds, reason}
    fold_seconds: dict[str, list[float]] = field(default_factory=dict)
    threads: int = 0

    def as_dict(self) -> dict:
        return {"eliminated": self.eliminated, "fold_seconds": self.fold_seconds, "threads": self.threads}


# The race (select_learner): after every fold from the second on, a candidate whose out-of-fold
# transformed-outcome risk so far exceeds the least by more than RACE_Z standard errors of the paired
# difference stops (it cannot come within the one-standard-error rule's reach); after the first
# fold, a candidate whose fold took more than SLOW_FACTOR times the cheap candidates' (registry
# cost <= 1.5) and that is not ahead of all of them by a standard error stops as too slow to win.
RACE_Z = 2.0
SLOW_FACTOR = 4.0


def _race(names: list[str], X, arm, y, n_arms, arm_terms, folds, calibrate, seed, outcome_type, weights,
          propensity, tick, eliminate: bool = True) -> tuple[dict[str, CrossFitted], RaceReport]:
    """Successive halving over folds (see RACE_Z, SLOW_FACTOR); the survivors are fully cross-fitted."""
    from promo_opt.threads import lgbm_threads

    report = RaceReport(threads=lgbm_threads())
    splits = fold_splits(arm, y, folds, seed)
    cf = {nm: CrossFitted(nm, n_arms, arm_terms, folds=folds, calibrate=calibrate, seed=seed,
                          outcome_type=outcome_type).start(len(y)) for nm in names}
    alive = list(names)
    seen = np.zeros(len(y), dtype=bool)

    def stop(nm: str, after: int, reason: str) -> None:
        alive.remove(nm)
        report.eliminated[nm] = {"after_folds": after, "reason": reason}
        report.fold_seconds[nm] = cf[nm].fold_seconds_
        log.info("race: %s stops after %d fold(s): %s", nm, after, reason)

    for f, (tr, te) in enumerate(splits):
        for i, nm in enumerate(list(alive)):
            cf[nm].fit_fold(f, tr, te, X, arm, y, weights)
            tick(nm, len(alive) - i - 1 + len(alive) * (folds - f - 1))  # fits still planned
        seen[te] = True
        if not eliminate or len(alive) < 2 or f == folds - 1:
            continue
        base = selection_baseline([cf[nm].raw_[seen] for nm in alive], arm[seen])
        losses = {nm: transformed_outcome_losses(cf[nm].raw_[seen], arm[seen], y[seen],
                                                 None if propensity is None else propensity[seen], base)
                  for nm in alive}
        risk = {nm: float(v.sum()) for nm, v in losses.items()}
        best = min(alive, key=lambda nm: risk[nm])
        se = {nm: float(np.sqrt(len(v)) * (v - losses[best]).std()) for nm, v in losses.items()}
        if f == 0:
            cheap = [nm for nm in alive if LEARNERS[nm].cost <= 1.5]
            if cheap:
                ref = float(np.median([cf[nm].fold_seconds_[0] for nm in cheap]))
                best_cheap = min(cheap, key=lambda nm: risk[nm])
                for nm in [nm for nm in alive if nm not in cheap]:
                    secs = cf[nm].fold_seconds_[0]
                    se_c = float(np.sqrt(len(losses[nm])) * (losses[nm] - losses[best_cheap]).std())
                    ahead = risk[best_cheap] - risk[nm] > se_c
                    if secs > SLOW_FACTOR * ref and not ahead:
                        stop(nm, 1, f"too slow to win: {secs:.1f}s per fold vs {ref:.1f}s for the cheap learners, "
                                    f"and not ahead of {best_cheap} by a standard error after one fold")
            continue  # one fold of rows is too few to judge the risk
        for nm in list(alive):
            if nm != best and risk[nm] - risk[best] > RACE_Z * se[nm]:
                stop(nm, f + 1, f"transformed-outcome risk {risk[nm] - risk[best]:.4g} above {best}'s after "
                                f"{f + 1} folds, more than {RACE_Z:g} standard errors ({se[nm]:.3g})")
        # the one-SE rule's choice so far: a less constrained learner can only take its place by pulling
        # ahead of it by more than a standard error; one that is not ahead at all stops
        choice, _, _ = one_se_choice({nm: losses[nm] for nm in alive}, alive)
        for nm in alive[alive.index(choice) + 1:]:
            d = losses[choice] - losses[nm]
            if d.sum() <= 0:
                stop(nm, f + 1, f"not ahead of {choice} (the more constrained learner the one-standard-error rule "
                                f"keeps) after {f + 1} folds")
    for nm in alive:
        report.fold_seconds[nm] = cf[nm].fold_seconds_
    return {nm: cf[nm].finish(arm, y) for nm in alive}, report


def select_learner(X, arm, y, n_arms, arm_terms, *, learner="auto", folds=5, calibrate=True, seed=0,
                   propensity=None, arm_names=None, policy_check=None, progress=None,
                   selection_rows=SELECTION_ROWS, outcome_type="binary", sample_weight=None, race=True):
    """Fit the candidate learners with cross-fitting; the report names the one of least uplift risk.

    ``propensity`` (n,): P(logged arm | x) on logged (non-randomized) data: learners get inverse-
    propensity sample weights, the risk uses it, and only learners that take weights compete.
    ``sample_weight`` (n,): other row weights (importance weights of a drift correction); they
    multiply the inverse-propensity weights.
    ``policy_check(fitted, report, rows)``: the caller's decision-aware check (may change
    ``report.chosen``), run on the selection rows ``rows`` before the winner is refitted.
    ``progress(what, done, total)``: called after every fold fit.

    ``learner: auto`` races its candidates fold by fold (:func:`_race`): a candidate clearly worse
    than the best so far, or too slow to win, stops early; the survivors compete by the one-SE rule.
    ``race`` False: every candidate is cross-fitted on every fold.
    Above ``selection_rows`` rows the candidates compete on a subsample (see SELECTION_ROWS).
    Returns ``(fitted, report)``: every surviving cross-fitted candidate by name (and their
    "ensemble"); ``fitted[report.chosen]`` is fitted on all rows.
    """
    from promo_opt.evaluation.metrics import arm_metrics, qini_curves

    check_learner_name(learner)
    n = len(y)
    y = np.asarray(y)
    arm_names = arm_names or [f"arm{k}" for k in range(n_arms)]
    overlap = {}
    if propensity is not None:
        propensity = _check_propensity(propensity, n)
        overlap = overlap_diagnostics(propensity)
        if overlap["min_propensity"] < POOR_OVERLAP:
            log.warning("poor overlap in the logged data: smallest propensity %.3g, %.1f%% of rows below %g, "
                        "effective sample %.1f%% of rows: estimates for rarely-treated users are unreliable",
                        overlap["min_propensity"], 100 * overlap[f"share_below_{POOR_OVERLAP:g}"], POOR_OVERLAP,
                        100 * overlap["effective_sample_share"])
    weights = None if propensity is None else 1.0 / propensity
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        weights = sample_weight if weights is None else weights * sample_weight
    weighted = weights is not None
    names = auto_candidates(weighted=weighted, outcome_type=outcome_type) if learner == "auto" else [learner]
    if learner != "auto" and weighted and not LEARNERS[learner].weights:
        why = ("inverse-propensity weights, needed since data.propensity is set" if propensity is not None else
               "importance weights, needed since the drift correction reweights the rows (or set drift.reweight: false)")
        raise ModelError(f"learner {learner} cannot take {why}; use one of "
                         f"{auto_candidates(weighted=True, outcome_type=outcome_type)} or 'auto'")
    sub = len(names) > 1 and n > selection_rows
    rows = _subsample_rows(arm, y, selection_rows, seed) if sub else np.arange(n)
    sel_folds = min(folds, SELECTION_FOLDS) if sub else folds
    final_folds = max(2, min(folds, int(round(folds * selection_rows / n)))) if sub else folds
    Xs, arm_s, y_s = (X.iloc[rows], arm[rows], y[rows]) if sub else (X, arm, y)
    w_s = None if weights is None else weights[rows]
    prop_s = None if propensity is None else propensity[rows]
    done = [0]
    total = [len(names) * sel_folds + (final_folds if sub else 0)]

    def tick(what, remaining):
        done[0] += 1
        total[0] = min(total[0], done[0] + remaining)
        if progress is not None:
            progress(what, done[0], total[0])

    t0 = time.perf_counter()
    def race_tick(what, remaining):
        tick(what, remaining + (final_folds if sub else 0))

    fitted, race = _race(names, Xs, arm_s, y_s, n_arms, arm_terms, sel_folds, calibrate, seed, outcome_type, w_s,
                         prop_s, race_tick, eliminate=race)
    secs = {nm: float(sum(race.fold_seconds[nm])) for nm in names}
    log.info("learners raced (%d folds, %d rows, %.1fs): %s kept", sel_folds, len(rows), time.perf_counter() - t0,
             list(fitted))
    alive = [nm for nm in names if nm in fitted]
    if len(alive) > 1:
        fitted["ensemble"] = Ensemble([fitted[nm] for nm in alive])
        alive = [*alive, "ensemble"]
    base = selection_baseline([m.oof_ for nm, m in fitted.items() if nm != "ensemble"], arm_s)
    losses = {nm: transformed_outcome_losses(m.oof_, arm_s, y_s, prop_s, base) for nm, m in fitted.items()}
    risk = {nm: float(v.sum()) for nm, v in losses.items()}
    ll = {nm: _log_loss(m.oof_, arm_s, y_s) for nm, m in fitted.items()}
    cal = {nm: {"gamma": m.calibration_.gamma.tolist(), "beta": m.calibration_.beta.tolist()}
           for nm, m in fitted.items() if m.calibration_ is not None}
    um = {nm: arm_metrics(m.oof_, arm_s, y_s, arm_names) for nm, m in fitted.items()}
    risk_se = {}
    if len(alive) > 1:  # the registry's order (most constrained first), the ensemble last
        chosen, reason, risk_se = one_se_choice(losses, alive)
    elif len(names) > 1:
        chosen, reason = alive[0], "the only learner left in the race"
    else:
        chosen, reason = names[0], "learner fixed by model.learner"
    report = SelectionReport(chosen=chosen, reason=reason, risk=risk, log_loss=ll, calibration=cal,
                             uplift_metrics=um, candidates=list(names) + (["ensemble"] if "ensemble" in fitted else []),
                             selection_rows=int(len(rows)), selection_folds=sel_folds, final_folds=final_folds,
                             seconds=secs, overlap=overlap, risk_se=risk_se, race=race.as_dict())
    if policy_check is not None and len(alive) > 1:
        policy_check(fitted, report, rows)
    if sub:
        t0 = time.perf_counter()
        members = [m.learner for m in fitted[report.chosen].members] if report.chosen == "ensemble" else [report.chosen]
        refit = []
        refits = [final_folds * len(members)]  # fits still planned
        for nm in members:
            m = CrossFitted(nm, n_arms, arm_terms, folds=final_folds, calibrate=calibrate, seed=seed,
                            outcome_type=outcome_type).start(n)
            for f, (tr, te) in enumerate(fold_splits(arm, y, final_folds, seed)):
                m.fit_fold(f, tr, te, X, arm, y, weights)
                refits[0] -= 1
                tick(nm, refits[0])
            refit.append(m.finish(arm, y))
        fitted[report.chosen] = Ensemble(refit) if report.chosen == "ensemble" else refit[0]
        report.seconds["final_fit"] = time.perf_counter() - t0
        log.info("learner %s cross-fitted on all %d rows (%d folds)", report.chosen, n, final_folds)
    report.qini_curves = qini_curves(fitted[report.chosen].oof_, arm, y, arm_names)
    return fitted, report
