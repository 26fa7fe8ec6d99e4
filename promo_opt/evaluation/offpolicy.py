"""Off-policy estimates of a targeting policy's totals on randomized (logged) data.

Doubly robust (AIPW) per-row contributions, for a policy ``pi`` (n,) of arm indices evaluated
on rows that received arm ``A`` with known probability ``e[A]``, outcome ``y`` and realized order
value ``v`` (0 when not converted), with an outcome model ``mu`` (n, K) of P(y=1 | x, arm)::

    conv_i   = mu[i, pi] - mu[i, 0] + 1[A=pi]/e_pi (y - mu[i, pi]) - 1[A=0]/e_0 (y - mu[i, 0])
    rev_i    = the same with y*v and mu*vhat
    spend_i  = cost(pi | mu) + 1[A=pi]/e_pi (realized cost - cost(pi | mu))

The sums estimate the policy's incremental conversions, incremental revenue and spend over the
rows' population; unbiased when the logging probabilities are right, whatever ``mu`` is (its
quality only sets the variance). Row contributions are returned so callers can form paired
differences between policies and their standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from promo_opt.config import ArmConfig


def sum_se(x: np.ndarray) -> float:
    """The standard error of the sum of independent row contributions ``x`` (e.g. a paired difference of two
    policies' contributions); infinite for fewer than two rows."""
    return float(np.sqrt(len(x)) * np.std(x)) if len(x) > 1 else float("inf")


@dataclass
class PolicyContributions:
    conversions: np.ndarray  # (n,)
    revenue: np.ndarray  # (n,)
    spend: np.ndarray  # (n,)

    def totals(self) -> dict[str, float]:
        return {"incremental_conversions": float(self.conversions.sum()),
                "incremental_revenue": float(self.revenue.sum()), "spend": float(self.spend.sum())}


def dr_contributions(policy: np.ndarray, arm: np.ndarray, y: np.ndarray, value: np.ndarray, propensity: np.ndarray,
                     mu: np.ndarray, vhat: np.ndarray, arms: Sequence[ArmConfig]) -> PolicyContributions:
    """Doubly robust row contributions (see module doc). ``propensity`` (n,) = P(logged arm)."""
    n = len(y)
    rows = np.arange(n)
    w_pi = (arm == policy) / propensity
    w_0 = (arm == 0) / propensity
    m_pi, m_0 = mu[rows, policy], mu[rows, 0]
    yv = y * value
    conv = m_pi - m_0 + w_pi * (y - m_pi) - w_0 * (y - m_0)
    rev = (m_pi - m_0) * vhat + w_pi * (yv - m_pi * vhat) - w_0 * (yv - m_0 * vhat)
    send = np.array([a.cost_per_send for a in arms])
    disc = np.array([a.discount for a in arms])
    per_conv = np.array([a.cost_per_conversion for a in arms])
    model_cost = send[policy] + m_pi * (disc[policy] * vhat + per_conv[policy])
    real_cost = send[policy] + y * (disc[policy] * value + per_conv[policy])
    treated = policy != 0
    spend = np.where(treated, model_cost + w_pi * (real_cost - model_cost), 0.0)
    return PolicyContributions(conversions=conv, revenue=rev, spend=spend)


def logged_propensity(arm: np.ndarray, n_arms: int, given: np.ndarray | None = None) -> np.ndarray:
    """P(logged arm) per row: the given column, else the observed arm shares (randomized data)."""
    if given is not None:
        return given
    share = np.bincount(arm, minlength=n_arms) / len(arm)
    return share[arm]
