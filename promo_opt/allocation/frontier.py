"""What-if budget planning: the whole budget -> objective curve from one sort.

Along the greedy path of hull segments (sorted by marginal gain per unit of spend), the prefix
that fits a budget B, plus a fraction of the next segment, is the LP optimum for B; rounded down
it is the integer policy the dual allocator returns for B without an ROI floor. So every budget's
answer comes from one cumulative sum. Where a budget's path point breaks the ROI floor, that one
budget is re-solved with the two-constraint dual (reported in the ``resolved`` column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.allocation.dual import _choice, best_free_arm, hull_segments, solve_dual, solve_exact
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.errors import InfeasibleError


@dataclass
class FrontierPath:
    """Cumulative totals along the sorted segments (index j = after taking j segments)."""

    spend: np.ndarray
    gain: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray
    slope: np.ndarray  # marginal gain per unit spend of segment j (len = n_segments)
    seg_to: np.ndarray
    seg_from: np.ndarray
    start_counts: np.ndarray  # users per arm before any segment

    @property
    def max_useful_spend(self) -> float:
        return float(self.spend[-1])


def frontier_path(problem: AllocationProblem, conversions: np.ndarray, max_budget: float | None = None,
                  seed: int = 0) -> FrontierPath:
    """Build the path for ``problem`` (budget only); ``conversions`` (n, K) tracked alongside.

    With ``max_budget``, only users that can matter up to that budget are put on the path: the
    multiplier at ``max_budget`` is estimated on a subsample, and a user whose Lagrangian choice
    at 90% of it is still its starting arm has every hull slope below it, so it cannot enter
    before the budget runs out. The path is checked to reach ``max_budget`` through slopes above
    that threshold (else the threshold is lowered), so the prefix is exactly the full path's.
    """
    g, c, r = problem.gain, problem.spend, problem.revenue
    n = problem.n_users
    start = best_free_arm(g, c)
    rows = None
    if max_budget is not None and n > 200_000:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=200_000, replace=False))
        est = solve_exact(g[sample], c[sample], r[sample], max_budget * sample.size / n)
        base_spend = float(c[np.arange(n), start].sum())
        thr = 0.9 * est.lam  # a little below the estimate; checked below, lowered if short
        while thr > 0:
            rows = np.flatnonzero(_choice(g, c, r, thr, 0.0) != start)
            seg = hull_segments(g, c, r, rows=rows, start=start)
            if base_spend + float(seg.dc[seg.slope > thr].sum()) >= max_budget:
                break  # the path reaches max_budget through slopes above thr: exact prefix
            thr = thr * 0.5 if thr > 1e-12 else 0.0
        else:
            rows = None
    if rows is None:
        seg = hull_segments(g, c, r, start=start)
    slope = seg.slope
    order = np.argsort(-slope)
    all_rows = np.arange(n)
    u, to, frm = seg.user[order], seg.to[order], seg.frm[order]
    # along the path the hull's own increments are the gain and (a = revenue here) the revenue
    dconv = seg.dg[order] if conversions is g else conversions[u, to] - conversions[u, frm]
    st_all = start

    def cum(base, d):
        return np.concatenate([[base], base + np.cumsum(d)])

    return FrontierPath(
        spend=cum(float(c[all_rows, st_all].sum()), seg.dc[order]),
        gain=cum(float(g[all_rows, st_all].sum()), seg.dg[order]),
        conversions=cum(float(conversions[all_rows, st_all].sum()), dconv),
        revenue=cum(float(r[all_rows, st_all].sum()), seg.da[order]),
        slope=slope[order], seg_to=to, seg_from=frm,
        start_counts=np.bincount(st_all, minlength=problem.n_arms),
    )


def plan(problem: AllocationProblem, conversions: np.ndarray, budgets=None, n_points: int = 50,
         arm_names=None) -> pd.DataFrame:
    """The budget curve at ``budgets`` (default: ``n_points`` from 0 to where spending stops paying).

    Columns: budget, spend, incremental_conversions, incremental_revenue, objective, roi,
    marginal_gain_per_unit (the multiplier lambda at that budget), users_<arm>..., resolved.
    Integer policies (the LP prefix, fractional segment dropped), so every row is attainable.
    """
    top = None if budgets is None else float(np.max(budgets)) if len(budgets) else None
    path = frontier_path(problem, conversions, max_budget=top)
    if budgets is None:
        budgets = np.linspace(0.0, path.max_useful_spend, n_points)
    budgets = np.asarray(sorted(float(b) for b in budgets))
    if (budgets < 0).any():
        raise InfeasibleError(f"budgets must be >= 0; got {budgets[budgets < 0][:3].tolist()}")
    cut = np.searchsorted(path.spend, budgets, side="right") - 1  # segments taken = cut
    cut = np.clip(cut, 0, len(path.spend) - 1)
    K = problem.n_arms
    names = list(arm_names or problem.arm_names or [f"arm{k}" for k in range(K)])
    # users per arm at each cut: start counts + (arrivals - departures) over the prefix
    counts = np.zeros((len(budgets), K), dtype=np.int64)
    prev, acc = 0, path.start_counts.astype(np.int64).copy()
    for i, j in enumerate(cut):
        if j > prev:
            acc = acc + np.bincount(path.seg_to[prev:j], minlength=K) - np.bincount(path.seg_from[prev:j], minlength=K)
            prev = j
        counts[i] = acc
    marginal = np.zeros(len(budgets))
    inside = cut < len(path.slope)  # the next segment's slope is the budget's multiplier
    marginal[inside] = path.slope[cut[inside]]
    df = pd.DataFrame({
        "budget": budgets,
        "spend": path.spend[cut],
        "incremental_conversions": path.conversions[cut],
        "incremental_revenue": path.revenue[cut],
        "objective": path.gain[cut],
        "marginal_gain_per_unit": marginal,
    })
    for k, name in enumerate(names):
        df[f"users_{name}"] = counts[:, k]
    df["resolved"] = False
    if problem.min_roi is not None:
        roi_ok = df["incremental_revenue"] >= problem.min_roi * df["spend"] - 1e-9 * df["spend"].abs()
        for i in np.flatnonzero(~roi_ok.to_numpy()):
            sub = AllocationProblem(problem.gain, problem.spend, problem.revenue, budget=float(budgets[i]),
                                    min_roi=problem.min_roi)
            res = solve_dual(sub, reason="plan point re-solved under the ROI floor")
            rows = np.arange(problem.n_users)
            df.loc[i, ["spend", "incremental_conversions", "incremental_revenue", "objective"]] = [
                res.spend, float(conversions[rows, res.arm].sum()), res.revenue, res.objective]
            df.loc[i, "marginal_gain_per_unit"] = res.multipliers.get("lambda_budget", 0.0)
            df.loc[i, [f"users_{n}" for n in names]] = np.bincount(res.arm, minlength=K)
            df.loc[i, "resolved"] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        df.insert(5, "roi", np.where(df["spend"] > 0, df["incremental_revenue"] / df["spend"], np.nan))
    return df
