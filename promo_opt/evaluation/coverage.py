"""Calibration of the off-policy checks: do the 95% intervals cover the truth 95% of the time?

In a simulated world every user's true conversion probability under every arm is known, so a
fixed policy's true totals over any drawn sample are exact. Each replication draws a fresh
randomized (or, in worlds with a logging policy, logged with known propensities) sample, runs
the past campaign on it, and evaluates the same policy by IPS, SNIPS and DR; the estimates are
compared with the sample's true totals.

The policy and the DR outcome model are fitted once, on a separate sample of the same world (so
the per-replication estimates are honest): the policy gives each user the arm that maximizes the
model's predicted gain minus ``lambda`` times its predicted spend, with ``lambda`` set so the
policy's predicted spend is ``budget_fraction`` of the most expensive arm for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.economics import compute_economics
from promo_opt.evaluation.ope import ESTIMATORS, QUANTITIES, evaluate_policy
from promo_opt.features import FeaturePreprocessor
from promo_opt.learners.lgbm import PooledLGBM
from promo_opt.learners.value import OrderValueModel
from promo_opt.simulation.world import World


@dataclass
class FixedPolicy:
    """A policy that is a function of the features only (fitted once, then frozen)."""

    world: World
    pre: FeaturePreprocessor
    uplift: PooledLGBM
    value: OrderValueModel
    lam: float
    objective: str

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        Z = self.pre.transform(X)
        return self.uplift.predict_proba(Z), self.value.predict(Z)

    def arms_for(self, p: np.ndarray, v: np.ndarray, lam: float | None = None) -> np.ndarray:
        econ = compute_economics(p, v, self.world.arms)
        score = econ.gain(self.objective) - (self.lam if lam is None else lam) * econ.spend
        return np.argmax(score, axis=1)  # control (column 0) scores 0

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        return self.arms_for(*self.predict(X))


def fit_fixed_policy(world: World, n: int = 20_000, seed: int = 1, budget_fraction: float = 0.3) -> FixedPolicy:
    s = world.sample(n, seed=seed, population="train")
    df = world.realize(s, seed=seed)
    X = df[world.feature_names]
    arm = df["arm"].map({a: k for k, a in enumerate(world.arm_names)}).to_numpy()
    y = df["converted"].to_numpy()
    pre = FeaturePreprocessor().fit(X)
    Z = pre.transform(X)
    terms = np.array([[a.discount, a.cost_per_conversion, a.cost_per_send] for a in world.arms])
    uplift = PooledLGBM(len(world.arms), terms, seed=seed).fit(Z, arm, y)
    value = OrderValueModel(seed=seed).fit(Z, df["order_value"].to_numpy(), y)
    pol = FixedPolicy(world, pre, uplift, value, 0.0, world.spec.campaign.objective)
    p, v = pol.predict(X)
    econ = compute_economics(p, v, world.arms)
    target = budget_fraction * econ.spend.max(axis=1).sum()
    lo, hi = 0.0, 1e6
    for _ in range(60):  # predicted spend falls as lambda grows
        mid = np.sqrt(lo * hi) if lo > 0 else (1e-6 if hi == 1e6 else hi / 2)
        rows = np.arange(len(v))
        spent = econ.spend[rows, pol.arms_for(p, v, mid)].sum()
        lo, hi = (mid, hi) if spent > target else (lo, mid)
    pol.lam = hi
    return pol


def coverage_study(world: World, reps: int = 200, n: int = 5000, n_boot: int = 500, seed: int = 0,
                   policy: FixedPolicy | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``reps`` replications; returns (per-replication rows, summary per estimator x quantity).

    Estimators: ``ips``, ``snips``, ``dr`` (outcome model: the fixed policy's model, fitted on a separate
    sample) and ``dr_means`` (outcome model: cross-fitted per-arm means of the replication's own rows).
    """
    policy = policy or fit_fixed_policy(world, seed=seed + 1)
    rows = []
    index = {a: k for k, a in enumerate(world.arm_names)}
    for r in range(reps):
        rs = 10_000 * (seed + 1) + r
        s = world.sample(n, seed=rs, population="train")
        df = world.realize(s, seed=rs)
        X = df[world.feature_names]
        p, v = policy.predict(X)
        pi = policy.arms_for(p, v)
        truth = compute_economics(s.true_p, s.true_value, world.arms).totals(pi)
        arm = df["arm"].map(index).to_numpy()
        prop = df["propensity"].to_numpy() if "propensity" in df.columns else None
        args = (pi, arm, df["converted"].to_numpy(), df["order_value"].to_numpy(), world.arms)
        with_model = evaluate_policy(*args, propensity=prop, mu=p, vhat=v, n_boot=n_boot, seed=rs)
        with_means = evaluate_policy(*args, propensity=prop, n_boot=n_boot, seed=rs)
        for est, res in [(e, with_model) for e in ESTIMATORS] + [("dr_means", with_means)]:
            key = "dr" if est == "dr_means" else est
            for q in QUANTITIES + ("roi",):
                iv = res[key][q]
                rows.append({"world": world.name, "rep": r, "estimator": est, "quantity": q, "truth": truth[q],
                             "estimate": iv.estimate, "ci_low": iv.ci_low, "ci_high": iv.ci_high,
                             "covered": iv.covers(truth[q])})
    per_rep = pd.DataFrame(rows)
    return per_rep, summarize(per_rep)


def summarize(per_rep: pd.DataFrame) -> pd.DataFrame:
    """Coverage, bias, RMSE (absolute and relative to the mean true value) and mean interval width."""
    def agg(g: pd.DataFrame) -> pd.Series:
        err = g["estimate"] - g["truth"]
        scale = abs(g["truth"].mean()) or np.nan
        return pd.Series({"reps": len(g), "true_mean": g["truth"].mean(), "coverage": g["covered"].mean(),
                          "bias": err.mean(), "rmse": float(np.sqrt((err ** 2).mean())),
                          "rel_bias": err.mean() / scale, "rel_rmse": float(np.sqrt((err ** 2).mean())) / scale,
                          "mean_ci_width": (g["ci_high"] - g["ci_low"]).mean()})

    return (per_rep.groupby(["world", "estimator", "quantity"], sort=False)[list(per_rep.columns)]
            .apply(agg).reset_index())
