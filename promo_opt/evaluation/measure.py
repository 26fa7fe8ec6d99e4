"""Measuring a campaign afterwards: the targeting list's users vs its random holdout, and sample size.

``targets.csv`` marks a random ``holdout`` of the candidates that got no promotion whatever the
policy would have chosen; every other user got the policy's arm (control included). So the
policy's realized effect over the non-holdout users ``G`` is identified by the holdout ``H``::

    incremental_conversions = sum_G y - |G| * mean_H y
    incremental_revenue     = sum_G y*v - |G| * mean_H y*v
    spend                   = sum_G realized cost of the arm given (send cost + on conversion, discount x value + voucher)

with Poisson-bootstrap percentile intervals, compared with what ``targets.csv`` expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.errors import DataError
from promo_opt.evaluation.ope import Interval, expected_totals, poisson_bootstrap, policy_from_targets


@dataclass
class Measurement:
    realized: dict[str, Interval]  # incremental_conversions, incremental_revenue, spend, roi
    expected: dict[str, float] | None
    n_policy: int
    n_holdout: int
    conversion_rate: dict[str, float]  # policy group, holdout, and per arm given

    def as_dict(self) -> dict:
        d = {"realized": {k: v.as_dict() for k, v in self.realized.items()},
             "n_policy_group": self.n_policy, "n_holdout": self.n_holdout,
             "conversion_rate": self.conversion_rate}
        if self.expected is not None:
            d["expected"] = self.expected
            d["expected_within_interval"] = {k: self.realized[k].covers(self.expected[k]) for k in self.expected
                                             if k in self.realized and np.isfinite(self.expected[k])}
            d["realized_vs_expected"] = {k: (self.realized[k].estimate / self.expected[k] if self.expected[k] else None)
                                         for k in self.expected if k in self.realized}
        return d


def _holdout_flags(targets: pd.DataFrame, what: str) -> pd.Series:
    if "holdout" not in targets.columns:
        raise DataError(f"{what}: missing column 'holdout' (as written by 'promo-opt allocate'); measuring needs it")
    h = targets["holdout"]
    if h.dtype != bool:
        text = h.astype("string").str.lower()
        mapping = {"true": True, "false": False, "1": True, "0": False}
        bad = sorted(set(text.dropna()) - set(mapping))
        if bad or text.isna().any():
            raise DataError(f"{what}: column 'holdout' must be true/false; found {bad[:5] or ['<empty>']}")
        h = text.map(mapping).astype(bool)
    return h


def measure(config: CampaignConfig, targets: pd.DataFrame, outcomes: pd.DataFrame, *,
            outcomes_path="outcomes", n_boot: int = 2000, seed: int | None = None) -> Measurement:
    """Realized effect of a targeting list (see module doc). ``outcomes``: the config's id, outcome and value columns."""
    d = config.data
    need = [d.id, d.outcome] + ([d.value] if d.value else [])
    missing = [c for c in need if c not in outcomes.columns]
    if missing:
        raise DataError(f"outcomes {outcomes_path}: missing column(s) {missing}; present: {list(outcomes.columns)[:20]}")
    if outcomes[d.id].duplicated().any():
        raise DataError(f"outcomes {outcomes_path}: column '{d.id}' (data.id) repeats ids, e.g. "
                        f"{outcomes.loc[outcomes[d.id].duplicated(), d.id].head(3).tolist()}")
    ids = outcomes[d.id].to_numpy()
    arm = policy_from_targets(config, targets, ids, what="targets")
    flags = _holdout_flags(targets, "targets")
    hold_by_id = pd.Series(flags.to_numpy(), index=targets[d.id].astype("string").to_numpy())
    hold = hold_by_id.loc[pd.Series(ids).astype("string").to_numpy()].to_numpy()
    raw_y = outcomes[d.outcome]
    raw_y = raw_y.astype(int) if raw_y.dtype == bool else raw_y
    y = pd.to_numeric(raw_y, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isin(y, [0.0, 1.0]).all():
        raise DataError(f"outcomes {outcomes_path}: column '{d.outcome}' (data.outcome) must be binary 0/1")
    if d.value:
        v = pd.to_numeric(outcomes[d.value], errors="coerce").to_numpy(dtype=np.float64)
        conv = y == 1
        if not np.isfinite(v[conv]).all() or (v[conv] < 0).any():
            raise DataError(f"outcomes {outcomes_path}: column '{d.value}' (data.value) must be a number >= 0 "
                            "for converted rows")
        v = np.where(conv, v, 0.0)
    else:
        v = np.ones(len(y))
    if hold.sum() == 0:
        raise DataError("targets: no row has holdout = true, so there is nothing to measure against; "
                        "allocate with holdout.fraction > 0")
    if (~hold).sum() == 0:
        raise DataError("targets: every row is in the holdout; there is no treated group to measure")
    if (arm[hold] != 0).any():
        raise DataError(f"targets: {int((arm[hold] != 0).sum())} holdout row(s) name a promotion arm; the holdout must "
                        f"get the control arm '{config.arm_names[0]}'")
    arms = config.ordered_arms
    send = np.array([a.cost_per_send for a in arms])
    disc = np.array([a.discount for a in arms])
    per_conv = np.array([a.cost_per_conversion for a in arms])
    g = (~hold).astype(np.float64)
    h = hold.astype(np.float64)
    cost = g * np.where(arm != 0, send[arm] + y * (disc[arm] * v + per_conv[arm]), 0.0)
    yv = y * v
    cols = np.column_stack([g, g * y, g * yv, h, h * y, h * yv, cost])

    def statistic(S):
        with np.errstate(divide="ignore", invalid="ignore"):
            ng, gy, gv, nh, hy, hv, c = (S[:, j] for j in range(7))
            conv = gy - ng * hy / nh
            rev = gv - ng * hv / nh
            return {"incremental_conversions": conv, "incremental_revenue": rev, "spend": c,
                    "roi": np.where(c > 0, rev / c, np.nan)}

    realized = poisson_bootstrap(cols, statistic, n_boot=n_boot, seed=config.seed if seed is None else seed)
    rates = {"policy_group": float(y[~hold].mean()), "holdout": float(y[hold].mean())}
    for k, name in enumerate(config.arm_names):
        on = (~hold) & (arm == k)
        if on.any():
            rates[f"given {name}"] = float(y[on].mean())
    key = targets[d.id].astype("string").isin(set(pd.Series(ids).astype("string")))
    rows = (key & ~flags).to_numpy()
    return Measurement(realized=realized, expected=expected_totals(config, targets, rows),
                       n_policy=int((~hold).sum()), n_holdout=int(hold.sum()), conversion_rate=rates)


@dataclass
class SampleSize:
    holdout_fraction: float | None  # None: not reachable with these users
    holdout_users: int | None
    n_users: int
    base_rate: float
    uplift: float
    power: float
    alpha: float
    best_power: float  # power at the most favourable split (the most any holdout fraction can give)
    best_fraction: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _power(f, n, p0, p1, uplift, alpha):
    """Power of the two-sided test of two independent proportions (statsmodels: pooled variance under the null)."""
    from statsmodels.stats.proportion import power_proportions_2indep

    res = power_proportions_2indep(uplift, p0, nobs1=(1 - f) * n, ratio=f / (1 - f), alpha=alpha)
    return float(res.power)


def holdout_fraction_needed(n_users: int, base_rate: float, uplift: float, power: float = 0.8,
                            alpha: float = 0.05) -> SampleSize:
    """Smallest holdout fraction whose two-sided z-test of the conversion rates, policy group
    (``base_rate + uplift``) vs holdout (``base_rate``), has the given power (statsmodels' power function)."""
    from scipy.optimize import brentq

    if n_users < 2:
        raise DataError(f"n_users must be at least 2, got {n_users}")
    if not 0 < base_rate < 1 or not 0 < base_rate + uplift < 1 or uplift == 0:
        raise DataError(f"need 0 < base_rate < 1, uplift != 0 and 0 < base_rate + uplift < 1; "
                        f"got base_rate {base_rate}, uplift {uplift}")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise DataError(f"power and alpha must be in (0, 1); got {power}, {alpha}")
    p0, p1 = base_rate, base_rate + uplift
    v0, v1 = p0 * (1 - p0), p1 * (1 - p1)
    best = float(np.sqrt(v0) / (np.sqrt(v0) + np.sqrt(v1)))  # minimizes the variance of the difference
    best_power = float(_power(best, n_users, p0, p1, uplift, alpha))
    frac = None
    if best_power >= power:
        lo = 1.0 / n_users
        if _power(lo, n_users, p0, p1, uplift, alpha) >= power:
            frac = lo
        else:
            frac = float(brentq(lambda f: _power(f, n_users, p0, p1, uplift, alpha) - power, lo, best, xtol=1e-10))
    return SampleSize(holdout_fraction=frac, holdout_users=None if frac is None else int(np.ceil(frac * n_users)),
                      n_users=n_users, base_rate=base_rate, uplift=uplift, power=power, alpha=alpha,
                      best_power=best_power, best_fraction=best)
