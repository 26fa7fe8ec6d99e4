"""Plan points under a binding ROI floor, warm-started from recorded multipliers (``FloorPath``).

The contract: every point equals a cold ``solve_dual`` at that budget (same policy: objective,
spend, users per arm), meets the budget and the floor, and inside the range where the floor
binds it is answered from one interval's free users, not by a cold solve.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from promo_opt.allocation.bruteforce import solve_bruteforce
from promo_opt.allocation.dual import solve_dual
from promo_opt.allocation.floor_path import FloorPath, solve_point
from promo_opt.allocation.frontier import plan
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.errors import InfeasibleError
from tests.test_frontier import realistic


def floor_problem(n: int, k: int, seed: int, factor: float) -> tuple[AllocationProblem, float]:
    """A problem whose floor binds at large budgets: ``factor`` x the ROI of spending all that pays."""
    g, c, r = realistic(n, k, seed)
    free = solve_dual(AllocationProblem(g, c, r))
    p = AllocationProblem(g, c, r, min_roi=factor * free.roi)
    floor_only = solve_dual(p)  # no budget: the floor-only optimum
    assert floor_only.multipliers["mu_roi"] > 0  # the floor binds
    return p, floor_only.spend


def assert_same_point(warm: dict, cold: dict, p: AllocationProblem, budget: float) -> None:
    assert warm["gain"] == pytest.approx(cold["gain"], rel=1e-9, abs=1e-12)
    for key in ("spend", "revenue", "conversions"):
        assert warm[key] == pytest.approx(cold[key], rel=1e-9, abs=1e-9), key
    np.testing.assert_array_equal(warm["counts"], cold["counts"])
    np.testing.assert_allclose(warm["spend_per_arm"], cold["spend_per_arm"], rtol=1e-9, atol=1e-9)
    assert warm["spend"] <= budget * (1 + 1e-12)
    assert warm["revenue"] >= p.min_roi * warm["spend"] - 1e-9 * max(1.0, warm["revenue"])


@pytest.mark.parametrize("n, k, seed, factor", [(4000, 5, 1, 1.1), (4000, 4, 2, 1.3), (6000, 3, 3, 1.2)])
def test_warm_points_equal_a_cold_solve_dual(n, k, seed, factor) -> None:
    p, spend_floor_only = floor_problem(n, k, seed, factor)
    fp = FloorPath(p, p.gain)
    first = fp.point(spend_floor_only)  # builds the grid
    assert fp.intervals and fp.cold_points == 0
    b0 = fp.intervals[0].budget  # where the budget-only path first breaks the floor
    assert 0 < b0 < spend_floor_only
    rng = np.random.default_rng(seed)
    # (not b0 itself: there the floor is tight with mu = 0 up to round-off, and the two solves may take
    # different optimal multipliers; the warm one then falls back to the cold one)
    inside = np.concatenate([[b0 + 1e-6 * (spend_floor_only - b0), spend_floor_only],
                             rng.uniform(b0, spend_floor_only, 10)])
    beyond = spend_floor_only * np.array([1.001, 1.5, 40.0])
    below = b0 * np.array([0.3, 0.97])
    for budget in np.concatenate([inside, beyond]):
        assert_same_point(fp.point(budget), solve_point(p, p.gain, budget), p, budget)
    assert fp.cold_points == 0  # inside and beyond the binding range: all warm
    assert first["gain"] == pytest.approx(solve_point(p, p.gain, spend_floor_only)["gain"], rel=1e-12)
    for budget in below:  # the floor does not bind there (frontier.plan never asks): a cold solve, same contract
        assert_same_point(fp.point(budget), solve_point(p, p.gain, budget), p, budget)
    assert fp.cold_points == len(below)


def test_grid_points_carry_the_exact_multipliers_of_their_budgets() -> None:
    p, _ = floor_problem(3000, 4, 7, 1.2)
    fp = FloorPath(p, p.gain)
    fp._ensure_built()
    for iv in fp.intervals[1::3]:
        res = solve_dual(AllocationProblem(p.gain, p.spend, p.revenue, budget=iv.budget, min_roi=p.min_roi))
        lam, mu = res.multipliers["lambda_budget"], res.multipliers["mu_roi"]
        lam_lo, lam_hi, mu_lo, mu_hi = iv.box
        assert lam_lo <= lam <= lam_hi and mu_lo <= mu <= mu_hi
    budgets = [iv.budget for iv in fp.intervals]
    assert budgets == sorted(budgets)  # lam falls and mu rises with the budget here (rule 5)
    assert max(iv.free.size for iv in fp.intervals) < p.n_users / 4  # a query solves few users


def test_beyond_the_floor_only_spend_the_point_is_computed_once() -> None:
    p, spend_floor_only = floor_problem(3000, 4, 8, 1.2)
    fp = FloorPath(p, p.gain)
    far = fp.point(1e6 * spend_floor_only)
    assert fp.point(3e6 * spend_floor_only) is far  # cached: no budget comparison is left
    assert far["marginal"] == 0.0
    assert_same_point(far, solve_point(p, p.gain, 3e6 * spend_floor_only), p, 3e6 * spend_floor_only)
    floor_only = solve_dual(p)
    assert far["gain"] == pytest.approx(floor_only.objective, rel=1e-12)


def test_multipliers_outside_the_interval_fall_back_to_a_cold_solve() -> None:
    """A wrong grid (as a non-monotone path would give) costs time, never exactness."""
    p, spend_floor_only = floor_problem(3000, 4, 9, 1.2)
    fp = FloorPath(p, p.gain)
    fp._ensure_built()
    mid = fp.intervals[len(fp.intervals) // 2]
    budget = 0.5 * (mid.budget + spend_floor_only)
    fp.intervals = [dataclasses.replace(iv, box=(0.0, 0.0, 0.0, 0.0)) for iv in fp.intervals]
    assert_same_point(fp.point(budget), solve_point(p, p.gain, budget), p, budget)
    assert fp.cold_points == 1


@pytest.mark.parametrize("seed", range(12))
def test_odd_random_problems_equal_a_cold_solve(seed: int) -> None:
    """Gains of any sign, revenue not proportional to gain, exact zeros: flat or non-monotone
    multiplier paths stop the grid early or send points to a cold solve, never to another policy."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 300)), int(rng.integers(2, 6))
    g = rng.normal(0.1, 1.0, (n, k))
    c = rng.uniform(0, 3, (n, k))
    c[rng.random((n, k)) < 0.1] = 0
    r = g * rng.lognormal(1, 0.5, (n, 1)) + rng.normal(0, 1, (n, k))
    g[:, 0] = c[:, 0] = r[:, 0] = 0
    free = solve_dual(AllocationProblem(g, c, r))
    p = AllocationProblem(g, c, r, min_roi=float(free.roi * rng.uniform(1.0, 1.5)))
    fp = FloorPath(p, g)
    for budget in rng.uniform(0, 1.3 * free.spend, 8):
        try:
            cold = solve_point(p, g, budget)
        except InfeasibleError:
            continue
        assert_same_point(fp.point(budget), cold, p, budget)


def test_tiny_problem_against_brute_force() -> None:
    g, c, r = realistic(9, 3, 3)
    free = solve_dual(AllocationProblem(g, c, r))
    p = AllocationProblem(g, c, r, min_roi=1.15 * free.roi)
    fp = FloorPath(p, g)
    fp._ensure_built()
    b0 = fp.intervals[0].budget
    max_gain = np.sort(np.abs(g).max(axis=1))[::-1]
    for budget in np.linspace(b0, 1.5 * solve_dual(p).spend, 9):
        warm = fp.point(budget)
        sub = AllocationProblem(g, c, r, budget=budget, min_roi=p.min_roi)
        brute, cold = solve_bruteforce(sub), solve_dual(sub)
        assert warm["gain"] == pytest.approx(cold.objective, rel=1e-9, abs=1e-12)
        assert warm["spend"] <= budget * (1 + 1e-12)
        assert warm["revenue"] >= p.min_roi * warm["spend"] - 1e-9
        assert warm["gain"] <= brute.objective + 1e-12  # no policy beats the optimum ...
        assert cold.bound >= brute.objective - 1e-12  # ... the LP bounds it ...
        # ... and the rounding loses at most the fractional users' gains
        assert warm["gain"] >= brute.objective - max_gain[:cold.n_fractional].sum() - 1e-12
    assert fp.cold_points == 0


def test_plan_with_many_rows_under_the_floor_records_the_multipliers_and_matches_cold_rows(caplog) -> None:
    p, spend_floor_only = floor_problem(4000, 5, 4, 1.15)
    budgets = np.linspace(0.0, 1.3 * spend_floor_only, 30)
    with caplog.at_level(logging.INFO, logger="promo_opt.allocation.floor_path"):
        df = plan(p, p.gain, budgets, arm_names=[f"a{j}" for j in range(5)])
    assert "floor path:" in caplog.text and "cold solve" not in caplog.text
    resolved = df[df["resolved"]]
    assert len(resolved) >= 8
    for row in resolved.itertuples():
        res = solve_dual(AllocationProblem(p.gain, p.spend, p.revenue, budget=row.budget, min_roi=p.min_roi))
        assert row.objective == pytest.approx(res.objective, rel=1e-9)
        assert row.spend == pytest.approx(res.spend, rel=1e-9)
        assert [getattr(row, f"users_a{j}") for j in range(5)] == np.bincount(res.arm, minlength=5).tolist()


def test_grid_points_whose_budgets_differ_in_the_last_bits_do_not_stop_the_grid(caplog) -> None:
    """A flat piece of the path: two grid points share one budget, summed in another order, so the later one
    came out an ulp smaller (9.757216593717782 after 9.75721659371779 here). That is no fall of the budget:
    the grid goes on (it used to stop there with a warning, leaving every later budget to a cold solve)."""
    p, spend_floor_only = floor_problem(50, 2, 0, 1.2)
    floor = FloorPath(p, p.gain)
    with caplog.at_level(logging.WARNING, logger="promo_opt.allocation.floor_path"):
        intervals = floor._ensure_built()
    assert "budget falls" not in caplog.text and len(intervals) >= floor.n_grid
    assert all(a.budget <= b.budget for a, b in zip(intervals, intervals[1:]))
    for budget in np.linspace(0.0, 1.3 * spend_floor_only, 41):
        try:
            cold = solve_point(p, p.gain, budget)
        except InfeasibleError:
            continue
        assert_same_point(floor.point(budget), cold, p, budget)
