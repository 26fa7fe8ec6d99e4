"""How well ANY forecaster could forecast a policy's totals from a past campaign: the efficiency bound.

A forecast of a policy's incremental conversions (or spend) on the candidates is an estimate, from the past
campaign's n users, of ``T = sum_j tau_pi(x_j)`` over the candidates ``x_j``. Among regular estimators that
assume nothing about how the outcome varies with the features and the arms, the smallest variance any can have
is the efficiency bound (Hahn 1998; for a population shifted by the known density ratio ``w = dQ/dP``, e.g.
Kallus & Uehara 2020):

    Var(T_hat) >= m^2 / n * E_Q[ w(x) * sum_a c_a^2 sigma_a^2(x) / e_a(x) ]

with ``m`` candidates, ``sigma_a^2(x)`` the variance of one user's outcome under arm ``a``, ``e_a(x)`` the
past campaign's probability of giving it and ``c`` the contrast (``+1`` for the policy's arm, ``-1`` for the
control; only the arm for spend, times the arm's cost per conversion). It is computed from the world's
truth with every advantage given to the forecaster (the features before they went missing, the true
propensities and density ratio), so it is a lower bound on the error of such a forecast made from the data.
A learner that pools the arms (one model of the level for all of them) can beat it where the pooling holds.

A base-rate change no feature shows (``drift.logit_shift``) is not in the past campaign at all: anything
estimated from it converges to the totals of a world without the change (``identified``), so it misses
the truth by at least ``identified - total`` (``bias``).

From the two, :meth:`ForecastBound.within` is the largest probability that a forecast lands within a
tolerance of the truth and :meth:`ForecastBound.coverage` the coverage of a calibrated interval: an upper
bound on what the benchmark's forecast targets can reach in that run, whatever the learner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from promo_opt.economics import compute_economics
from promo_opt.simulation.world import SimulatedSample, World

KEYS = ("incremental_conversions", "spend")


@dataclass(frozen=True)
class ForecastBound:
    """The true totals of a policy on the candidates, what the past campaign identifies of them and the
    smallest standard error an estimate of those from ``n_train`` past users can have."""

    total: dict[str, float]
    identified: dict[str, float]
    se: dict[str, float]
    n_train: int
    outside_support: float  # share of the policy's treated candidates where the past users have no density

    def bias(self, key: str) -> float:
        return self.identified[key] - self.total[key]

    def within(self, key: str, tol: float) -> float:
        """P(|forecast / true - 1| <= tol) for the best forecast: normal around ``identified`` with ``se``."""
        t, mu, se = self.total[key], self.identified[key], self.se[key]
        half = tol * abs(t)
        if se <= 0:
            return float(abs(mu - t) <= half)
        return float(norm.cdf((t + half - mu) / se) - norm.cdf((t - half - mu) / se))

    def coverage(self, key: str, level: float = 0.9) -> float:
        """Coverage of the truth by a calibrated ``level`` interval around the best forecast."""
        z = norm.ppf(0.5 + level / 2)
        se = self.se[key]
        if se <= 0:
            return float(self.bias(key) == 0)
        b = self.bias(key) / se
        return float(norm.cdf(z - b) - norm.cdf(-z - b))

    def at(self, n_train: int) -> "ForecastBound":
        """The same policy and candidates with ``n_train`` past users (the bound scales as 1 / sqrt(n))."""
        f = np.sqrt(self.n_train / n_train)
        return ForecastBound(self.total, self.identified, {k: v * f for k, v in self.se.items()}, n_train,
                             self.outside_support)

    def as_dict(self) -> dict:
        return {"n_train": self.n_train, "total": self.total, "identified": self.identified, "se": self.se,
                "relative_se": {k: self.se[k] / abs(self.total[k]) if self.total[k] else None for k in KEYS},
                "outside_support": self.outside_support}


def candidates_of(world: World, seed: int, n_candidates: int) -> SimulatedSample:
    """The candidates :meth:`World.write_campaign` draws for campaign ``seed``, in the same order."""
    return world.sample(n_candidates, seed=world.campaign_seeds(seed)[2], population="candidates")


def forecast_bound(world: World, seed: int, n_train: int, n_candidates: int, arm: np.ndarray,
                   ids: np.ndarray | None = None) -> ForecastBound:
    """The efficiency bound for forecasting the totals of ``arm`` ((m,) arm index per candidate of campaign
    ``seed``, 0 = control or not treated) from a past campaign of ``n_train`` users of ``world``. ``ids``: the
    candidates' ids in ``arm``'s order (e.g. a targeting list's), when it is not the order they were drawn in."""
    cand = candidates_of(world, seed, n_candidates)
    arm = np.asarray(arm, dtype=np.int64)
    if ids is not None:
        order = pd.Index(np.asarray(ids).astype(str)).get_indexer(cand.features["user_id"].astype(str))
        if (order < 0).any():
            raise ValueError(f"ids: {int((order < 0).sum())} candidate(s) of campaign {seed} are missing")
        arm = arm[order]
    if arm.shape != (len(cand.true_value),):
        raise ValueError(f"arm has shape {arm.shape}, expected ({len(cand.true_value)},)")
    spec = world.spec
    seen = World(spec.model_copy(update={"drift": spec.drift.model_copy(update={"logit_shift": 0.0})}))
    past = candidates_of(seen, seed, n_candidates)  # the same users, as the past campaign's outcome model sees them
    if not all(np.array_equal(past.latent[k], v) for k, v in cand.latent.items()):
        raise ValueError("the candidates drawn without the base-rate change are not the same users")

    rows, treated = np.arange(len(arm)), arm > 0

    def economics(p: np.ndarray):
        return compute_economics(p, cand.true_value, world.arms, spec.outcome_type)

    def totals(p: np.ndarray) -> dict[str, float]:
        t = economics(p).totals(arm)
        return {k: t[k] for k in KEYS}

    # the spend is linear in the expected outcome: its slope per user x arm, the cost of one more conversion
    per_conv = economics(np.ones_like(cand.true_p)).spend - economics(np.zeros_like(cand.true_p)).spend

    w = world.density_ratio(cand.latent)
    e = world.logging_propensity(cand)
    var = seen.outcome_variance(past)
    with np.errstate(divide="ignore", invalid="ignore"):
        v_arm = np.where(treated, var[rows, arm] / e[rows, arm], 0.0)
        v_conv = v_arm + np.where(treated, var[:, 0] / e[:, 0], 0.0)
        v_spend = np.where(treated, per_conv[rows, arm] ** 2, 0.0) * v_arm
    ok = np.isfinite(w)
    se = {k: float(np.sqrt(np.sum(w[ok] * v[ok]) * len(arm) / n_train)) for k, v in
          (("incremental_conversions", v_conv), ("spend", v_spend))}
    outside = float((~ok & treated).sum() / treated.sum()) if treated.any() else 0.0
    return ForecastBound(totals(cand.true_p), totals(past.true_p), se, int(n_train), outside)
