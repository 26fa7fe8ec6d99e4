"""The budget curve (``frontier.plan``): one sort gives every budget's rounded LP policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promo_opt.allocation.dual import solve_dual
from promo_opt.allocation.frontier import frontier_path, plan
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.errors import InfeasibleError

N = 2000
ARMS = ("control", "d5", "d10", "d20", "d30")


def realistic(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conversions gain, spend, revenue) with p0 ~ beta, lifts growing with the discount."""
    rng = np.random.default_rng(seed)
    p0 = rng.beta(2, 20, n)
    value = rng.lognormal(4, 0.5, n)
    discount = np.array([0, 0.05, 0.1, 0.2, 0.3, 0.4])[:k]
    base_lift = np.array([0, 0.15, 0.3, 0.5, 0.7, 0.8])[:k]
    lift = base_lift * np.exp(rng.normal(0, 0.6, (n, k))) - 0.1 * (rng.random((n, 1)) < 0.15)
    lift[:, 0] = 0
    p = np.clip(p0[:, None] * (1 + lift), 0, 1)
    gain = p - p0[:, None]
    return gain, p * discount * value[:, None], gain * value[:, None]


@pytest.fixture(scope="module")
def world():
    g, c, r = realistic(N, len(ARMS), 3)
    p = AllocationProblem(g, c, r, arm_names=ARMS)
    top = frontier_path(p, g).max_useful_spend
    budgets = np.array([0.0, 0.02, 0.1, 0.25, 0.5, 0.75, 0.99, 1.3]) * top
    return p, budgets


def check_rows(df, p: AllocationProblem, budgets: np.ndarray) -> None:
    users = df[[f"users_{a}" for a in ARMS]].to_numpy()
    assert (users.sum(axis=1) == p.n_users).all()
    assert (users >= 0).all()
    assert (df["spend"] <= df["budget"] + 1e-9 * np.maximum(1.0, df["budget"])).all()
    np.testing.assert_array_equal(df["budget"], np.sort(budgets))


def test_plan_rows_match_solve_dual_within_rounding(world) -> None:
    p, budgets = world
    df = plan(p, p.gain, budgets)
    assert len(df) == len(budgets)
    check_rows(df, p, budgets)
    assert not df["resolved"].any()  # no ROI floor: nothing re-solved
    # objective = incremental conversions here (gain is the conversions matrix)
    np.testing.assert_allclose(df["objective"], df["incremental_conversions"], rtol=1e-12)
    max_gain = float(np.abs(p.gain).max())
    for row in df.itertuples():
        res = solve_dual(AllocationProblem(p.gain, p.spend, p.revenue, budget=row.budget))
        # the plan keeps the LP prefix; solve_dual also spends the leftover budget
        assert res.objective >= row.objective - 1e-9
        assert row.objective <= res.bound + 1e-9 and res.objective <= res.bound + 1e-9
        # both are the rounded-down LP: at most one fractional segment below the bound
        assert res.bound - row.objective <= max_gain + 1e-9
        # the row's marginal gain per unit is the budget multiplier of the same LP
        assert row.marginal_gain_per_unit == pytest.approx(res.multipliers["lambda_budget"], rel=1e-12)


def test_plan_objective_is_non_decreasing_in_budget(world) -> None:
    p, _ = world
    df = plan(p, p.gain, n_points=60)
    assert len(df) == 60
    obj = df["objective"].to_numpy()
    assert (np.diff(obj) >= 0).all()  # exactly: prefix sums of positive gains
    assert (np.diff(df["spend"].to_numpy()) >= 0).all()
    assert (np.diff(df["marginal_gain_per_unit"].to_numpy()) <= 0).all()  # diminishing returns
    assert obj[0] == 0.0 and df["spend"].iloc[0] == 0.0
    # the last point spends everything useful: every user on its best arm
    assert obj[-1] == pytest.approx(np.maximum(p.gain.max(axis=1), 0).sum(), rel=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.lists(st.floats(0, 1.2), min_size=1, max_size=10))
def test_plan_is_monotone_and_feasible_on_random_instances(seed: int, fractions: list[float]) -> None:
    rng = np.random.default_rng(seed)
    n, k = 40, 4
    g = rng.normal(0.1, 1.0, (n, k))
    c = rng.uniform(0, 3, (n, k))
    c[rng.random((n, k)) < 0.15] = 0
    g[:, 0] = c[:, 0] = 0
    p = AllocationProblem(g, c, np.zeros_like(g))
    top = frontier_path(p, g).max_useful_spend
    df = plan(p, g, [f * top for f in fractions], arm_names=[f"a{j}" for j in range(k)])
    assert (np.diff(df["objective"].to_numpy()) >= 0).all()
    assert (df[[f"users_a{j}" for j in range(k)]].sum(axis=1) == n).all()
    assert (df["spend"] <= df["budget"] + 1e-9).all()
    for row in df.itertuples():
        res = solve_dual(AllocationProblem(g, c, np.zeros_like(g), budget=row.budget))
        assert res.objective >= row.objective - 1e-9
        assert row.objective <= res.bound + 1e-9


def test_plan_with_binding_roi_floor_resolves_rows_that_break_it(world) -> None:
    p, budgets = world
    free = solve_dual(AllocationProblem(p.gain, p.spend, p.revenue))
    min_roi = 1.2 * free.roi
    pr = AllocationProblem(p.gain, p.spend, p.revenue, min_roi=min_roi, arm_names=ARMS)
    df = plan(pr, pr.gain, budgets)
    check_rows(df, pr, budgets)
    resolved = df["resolved"].to_numpy()
    assert resolved.any() and not resolved.all()  # the floor binds at high budgets only
    assert resolved[-1] and not resolved[1]
    rows = df[resolved]
    assert (rows["incremental_revenue"] >= min_roi * rows["spend"] - 1e-9 * rows["spend"]).all()
    assert (df["incremental_revenue"] >= min_roi * df["spend"] - 1e-9 * df["spend"]).all()
    # a re-solved row is the dual solution at that budget, ROI column consistent
    for row in df[resolved].itertuples():
        res = solve_dual(AllocationProblem(pr.gain, pr.spend, pr.revenue, budget=row.budget, min_roi=min_roi))
        assert row.objective == pytest.approx(res.objective, rel=1e-12)
        assert row.roi == pytest.approx(res.revenue / res.spend, rel=1e-12)
    # with the floor, no row beats the same budget without it
    unconstrained = plan(p, p.gain, budgets)
    assert (df["objective"].to_numpy() <= unconstrained["objective"].to_numpy() + 1e-9).all()


def test_plan_refuses_negative_budgets(world) -> None:
    p, _ = world
    with pytest.raises(InfeasibleError, match=r"budgets must be >= 0"):
        plan(p, p.gain, [-1.0, 10.0])


@pytest.mark.parametrize("ties", [False, True])
def test_binned_points_equal_the_full_sort(ties: bool) -> None:
    """Enough segments for the quantile-bin path (m > 4 x bins): every budget's totals and arm counts
    equal those of the plain stable sort of every hull segment, ties between users included."""
    from promo_opt.allocation.dual import hull_segments
    from promo_opt.allocation.frontier import plan

    rng = np.random.default_rng(5)
    n, K = 30_000, 4
    p0 = rng.beta(2, 20, n)[:, None]
    p = np.clip(p0 + rng.normal(0.01, 0.02, (n, 1)) * np.array([0, 1, 1.8, 2.5]), 0, 1)
    val = rng.lognormal(4, 0.5, (n, 1))
    if ties:  # blocks of identical users: many equal slopes, across bin edges too
        p, val = np.repeat(p[: n // 10], 10, axis=0), np.repeat(val[: n // 10], 10, axis=0)
    spend = p * np.array([0, 0.05, 0.1, 0.2]) * val
    gain = p - p[:, [0]]
    rev = gain * val
    prob = AllocationProblem(gain, spend, rev)
    budgets = np.linspace(0, spend.max(axis=1).sum() * 0.8, 37)
    df = plan(prob, gain, budgets=budgets)
    seg = hull_segments(gain, spend, rev)
    assert seg.dc.size > 4 * 2048
    o = np.argsort(-seg.slope, kind="stable")
    cs = np.concatenate([[0.0], np.cumsum(seg.dc[o])])
    cg = np.concatenate([[0.0], np.cumsum(seg.dg[o])])
    cut = np.searchsorted(cs, budgets, side="right") - 1
    np.testing.assert_allclose(df["objective"], cg[cut], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(df["spend"], cs[cut], rtol=1e-9, atol=1e-9)
    for k in range(K):
        moved = np.array([np.sum(seg.to[o[:j]] == k) - np.sum(seg.frm[o[:j]] == k) for j in cut])
        assert (df[f"users_arm{k}"] == (n if k == 0 else 0) + moved).all()
