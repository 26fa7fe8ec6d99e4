"""The allocation problem and its certified result.

Shapes: every matrix is ``(n_users, n_arms)`` with the control arm at column 0. Column 0 is
"no promotion": it must have zero gain, zero spend and zero revenue (everything is measured
relative to control), so choosing it is the same as choosing nothing.

Problem (a multiple-choice knapsack with global linear side constraints)::

    maximize    sum_i gain[i, arm_i]
    subject to  sum_i spend[i, arm_i]                       <= budget          (if budget)
                sum_i revenue[i, arm_i] - min_roi * spend   >= 0               (if min_roi)
                #users or spend on arm k                    <= cap_k           (arm caps)
                spend of users in segment s                 <= budget_s        (segment budgets)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from promo_opt.errors import PromoOptError


@dataclass(frozen=True)
class ArmCap:
    """At most ``max_users`` users and/or at most ``max_spend`` expected spend on one arm."""

    arm: int
    max_users: int | None = None
    max_spend: float | None = None


@dataclass(frozen=True)
class AllocationProblem:
    gain: np.ndarray
    spend: np.ndarray
    revenue: np.ndarray
    budget: float | None = None
    min_roi: float | None = None
    arm_caps: tuple[ArmCap, ...] = ()
    segment: np.ndarray | None = None  # (n_users,) integer codes 0..S-1
    segment_budgets: tuple[float, ...] | None = None  # budget of segment code s
    arm_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        g, c, r = (np.asarray(a, dtype=np.float64) for a in (self.gain, self.spend, self.revenue))
        object.__setattr__(self, "gain", g)
        object.__setattr__(self, "spend", c)
        object.__setattr__(self, "revenue", r)
        if g.ndim != 2 or g.shape[1] < 1:
            raise PromoOptError(f"gain must be a (n_users, n_arms) matrix, got shape {g.shape}")
        for name, a in (("spend", c), ("revenue", r)):
            if a.shape != g.shape:
                raise PromoOptError(f"{name} has shape {a.shape}, expected {g.shape} like gain")
        for name, a in (("gain", g), ("spend", c), ("revenue", r)):
            bad = ~np.isfinite(a)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                raise PromoOptError(
                    f"{name}[{i}, {k}] is {a[i, k]}: scores must be finite numbers "
                    f"({int(bad.sum())} non-finite values in {name})"
                )
        if (c < 0).any():
            i, k = np.argwhere(c < 0)[0]
            raise PromoOptError(f"spend[{i}, {k}] = {c[i, k]} is negative; spend must be >= 0")
        for name, a in (("gain", g), ("spend", c), ("revenue", r)):
            if a.shape[0] and np.any(a[:, 0] != 0):
                raise PromoOptError(f"{name}[:, 0] must be 0: column 0 is the control arm")
        if self.budget is not None and not (np.isfinite(self.budget) and self.budget >= 0):
            raise PromoOptError(f"budget = {self.budget}; expected a finite number >= 0")
        if self.min_roi is not None and not (np.isfinite(self.min_roi) and self.min_roi >= 0):
            raise PromoOptError(f"min_roi = {self.min_roi}; expected a finite number >= 0")
        for cap in self.arm_caps:
            if not 1 <= cap.arm < g.shape[1]:
                raise PromoOptError(f"arm cap on arm {cap.arm}: expected an arm index in 1..{g.shape[1] - 1}")
        if (self.segment is None) != (self.segment_budgets is None):
            raise PromoOptError("segment and segment_budgets go together: give both or neither")
        if self.segment is not None:
            seg = np.asarray(self.segment)
            if seg.shape != (g.shape[0],):
                raise PromoOptError(f"segment has shape {seg.shape}, expected ({g.shape[0]},)")
            if seg.size and (seg.min() < 0 or seg.max() >= len(self.segment_budgets)):
                raise PromoOptError("segment codes must index segment_budgets")

    @property
    def n_users(self) -> int:
        return self.gain.shape[0]

    @property
    def n_arms(self) -> int:
        return self.gain.shape[1]

    @property
    def roi_slack_matrix(self) -> np.ndarray:
        """``revenue - min_roi * spend``: the ROI constraint reads ``sum >= 0``."""
        return self.revenue - (self.min_roi or 0.0) * self.spend

    @property
    def has_side_constraints(self) -> bool:
        return bool(self.arm_caps) or self.segment is not None

    def evaluate(self, arm: np.ndarray) -> dict[str, float]:
        """Totals of an integer policy ``arm`` (n_users,) of arm indices."""
        idx = np.arange(self.n_users)
        return {
            "objective": float(self.gain[idx, arm].sum()),
            "spend": float(self.spend[idx, arm].sum()),
            "revenue": float(self.revenue[idx, arm].sum()),
        }

    def violations(self, arm: np.ndarray, tol: float = 1e-9, totals: dict[str, float] | None = None) -> list[str]:
        """Human-readable list of the hard constraints ``arm`` breaks (empty when feasible)."""
        t = totals or self.evaluate(arm)
        out = []
        scale = max(1.0, abs(self.budget or 0.0))
        if self.budget is not None and t["spend"] > self.budget + tol * scale:
            out.append(f"spend {t['spend']:.6g} > budget {self.budget:.6g}")
        if self.min_roi is not None and t["revenue"] - self.min_roi * t["spend"] < -tol * max(1.0, t["revenue"]):
            out.append(f"revenue {t['revenue']:.6g} < min_roi {self.min_roi} x spend {t['spend']:.6g}")
        idx = np.arange(self.n_users)
        for cap in self.arm_caps:
            on = arm == cap.arm
            if cap.max_users is not None and on.sum() > cap.max_users:
                out.append(f"arm {cap.arm}: {int(on.sum())} users > cap {cap.max_users}")
            if cap.max_spend is not None and self.spend[idx[on], cap.arm].sum() > cap.max_spend + tol * max(1.0, cap.max_spend):
                out.append(f"arm {cap.arm}: spend above cap {cap.max_spend}")
        if self.segment is not None:
            seg_spend = np.bincount(self.segment, weights=self.spend[idx, arm], minlength=len(self.segment_budgets))
            for s, (x, b) in enumerate(zip(seg_spend, self.segment_budgets)):
                if x > b + tol * max(1.0, b):
                    out.append(f"segment {s}: spend {x:.6g} > budget {b:.6g}")
        return out


@dataclass
class Allocation:
    """A feasible integer policy with the numbers that certify it.

    ``bound`` is an upper bound on the best objective any policy can reach (the LP relaxation's
    value or a dual bound), so ``gap = (bound - objective) / max(|bound|, tiny)`` says how far
    from optimal the policy can at most be.
    """

    arm: np.ndarray  # (n_users,) chosen arm index, 0 = control
    objective: float
    bound: float
    gap: float
    spend: float
    revenue: float
    slacks: dict[str, float]
    n_fractional: int  # users the LP split between two arms, rounded to a feasible arm
    solver: str
    solver_reason: str
    seconds: float
    status: str = "optimal"  # "optimal" (gap certified small) or "feasible"
    multipliers: dict[str, float] = field(default_factory=dict)  # lambda (budget), mu (roi), ...

    @property
    def roi(self) -> float:
        return self.revenue / self.spend if self.spend > 0 else float("nan")


def relative_gap(objective: float, bound: float) -> float:
    """``(bound - objective) / |bound|``, 0 when both are 0; never negative beyond round-off."""
    if bound == objective:
        return 0.0
    denom = max(abs(bound), 1e-12)
    return max(0.0, (bound - objective) / denom)


def make_slacks(problem: AllocationProblem, arm: np.ndarray, totals: dict[str, float] | None = None) -> dict[str, float]:
    t = totals or problem.evaluate(arm)
    s: dict[str, float] = {}
    if problem.budget is not None:
        s["budget"] = float(problem.budget - t["spend"])
    if problem.min_roi is not None:
        s["roi"] = float(t["revenue"] - problem.min_roi * t["spend"])
    idx = np.arange(problem.n_users)
    for cap in problem.arm_caps:
        on = arm == cap.arm
        if cap.max_users is not None:
            s[f"arm{cap.arm}_users"] = float(cap.max_users - on.sum())
        if cap.max_spend is not None:
            s[f"arm{cap.arm}_spend"] = float(cap.max_spend - problem.spend[idx[on], cap.arm].sum())
    if problem.segment is not None:
        seg_spend = np.bincount(problem.segment, weights=problem.spend[idx, arm], minlength=len(problem.segment_budgets))
        for sgm, (x, b) in enumerate(zip(seg_spend, problem.segment_budgets)):
            s[f"segment{sgm}_budget"] = float(b - x)
    return s


def finish(problem: AllocationProblem, arm: np.ndarray, *, bound: float, n_fractional: int,
           solver: str, solver_reason: str, seconds: float, status: str | None = None,
           multipliers: dict[str, float] | None = None) -> Allocation:
    """Build the certified result of a feasible integer policy; refuses an infeasible one."""
    arm = np.asarray(arm, dtype=np.int64)
    t = problem.evaluate(arm)  # once: the checks and the slacks reuse it
    bad = problem.violations(arm, tol=1e-7, totals=t)
    if bad:
        raise AssertionError(f"{solver} produced an infeasible policy: {'; '.join(bad)}")
    bound = max(bound, t["objective"])
    gap = relative_gap(t["objective"], bound)
    return Allocation(
        arm=arm, objective=t["objective"], bound=bound, gap=gap, spend=t["spend"],
        revenue=t["revenue"], slacks=make_slacks(problem, arm, totals=t), n_fractional=n_fractional,
        solver=solver, solver_reason=solver_reason, seconds=seconds,
        status=status or ("optimal" if gap <= 1e-6 else "feasible"), multipliers=multipliers or {},
    )
