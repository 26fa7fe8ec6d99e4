"""The funnel: drop-off between ordered 0/1 actions, and which attributes change it.

``drivers.funnel`` lists actions in order (``entered_room``, ``switched_room``, ``add_to_cart``).
For each step, among the users who took the previous action: how many took this one (the step's
conversion) and how many dropped off. For each attribute (every other variable that is not a
funnel action, and with tiers one of an earlier tier than the first step; a number is split at its median) the step conversion per level and the difference
of the highest-converting level against the lowest with a 95% interval (Welch). This is a
descriptive table -- where users are lost and who is lost -- not an interventional effect: the
drivers table carries the effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promo_opt.errors import ConfigError, DataError
from promo_opt.graph.data import DriversData
from promo_opt.observational.result import Z95


def funnel_table(data: DriversData, steps: list[str], tier: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per step; attributes are the variables of tiers before the first step's (all others without tiers)."""
    if not steps:
        return pd.DataFrame()
    absent = [s for s in steps if s not in data.variables]
    if absent:
        raise ConfigError(f"drivers.funnel names {absent}, which are not variables; variables: {data.variables[:30]}")
    bad = [s for s in steps if data.kinds[s] != "binary"]
    if bad:
        raise DataError(f"drivers.funnel: {bad} must be 0/1 actions (took the step or not)")
    f = data.frame
    attrs = [v for v in data.variables if v not in steps and v != data.outcome]
    if tier and steps[0] in tier:  # who the users are, not what happened to them later
        attrs = [v for v in attrs if v in tier and tier[v] < tier[steps[0]]]
    groups = {}
    for a in attrs:
        x = f[a]
        if data.kinds[a] == "continuous":
            med = float(x.median())
            groups[a] = np.where(x > med, f"> {med:.4g}", f"<= {med:.4g}")
        else:
            groups[a] = x.astype(str).to_numpy()
    rows = []
    reached = np.ones(len(f), dtype=bool)
    for i, s in enumerate(steps):
        took = f[s].to_numpy() == 1
        base = reached
        n, k = int(base.sum()), int((base & took).sum())
        row = {"step": s, "from": steps[i - 1] if i else "(all users)", "users_before": n, "users_step": k,
               "conversion": k / n if n else np.nan, "drop_off": n - k}
        best = None
        for a in attrs:
            rates = {}
            for level in np.unique(groups[a]):
                m = base & (groups[a] == level)
                if m.sum() >= 20:
                    rates[level] = (float(took[m].mean()), int(m.sum()))
            if len(rates) < 2:
                continue
            hi = max(rates, key=lambda lv: rates[lv][0])
            lo = min(rates, key=lambda lv: rates[lv][0])
            (p1, n1), (p0, n0) = rates[hi], rates[lo]
            diff = p1 - p0
            se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
            if best is None or abs(diff) > abs(best[1]):
                best = (f"{a}: {hi} vs {lo}", diff, diff - Z95 * se, diff + Z95 * se)
        if best is not None:
            row.update(biggest_gap=best[0], gap=best[1], gap_ci_low=best[2], gap_ci_high=best[3])
        rows.append(row)
        reached = base & took
    return pd.DataFrame(rows)
