"""The service's cached frontier answers every budget exactly as the binned path does."""

from __future__ import annotations

import numpy as np
import pytest

from promo_opt.allocation.frontier import frontier_path, plan
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.allocation.sorted_path import SortedFrontier
from tests.test_frontier import realistic


@pytest.mark.parametrize("n, k, step", [(3000, 5, 64), (40_000, 4, 1024), (500, 3, 7)])
def test_sorted_points_equal_binned_points(n, k, step) -> None:
    g, c, r = realistic(n, k, seed=n)
    g[::17] = np.round(g[::17], 3)  # some tied slopes: the stable order must agree too
    path = frontier_path(AllocationProblem(g, c, r), g)
    fast = SortedFrontier.from_path(path, step=step)
    top = path.max_useful_spend
    budgets = np.concatenate([[0.0, top * 2], np.random.default_rng(1).uniform(0, top, 40)])
    ref, got = path.points(budgets), fast.points(budgets)
    assert fast.max_useful_spend == pytest.approx(top, rel=1e-12)
    for f in ("spend", "gain", "conversions", "revenue", "marginal"):
        np.testing.assert_allclose(got[f], ref[f], rtol=1e-9, atol=1e-9, err_msg=f)
    np.testing.assert_array_equal(got["counts"], ref["counts"])
    assert (got["counts"].sum(axis=1) == n).all()


def test_plan_with_a_prebuilt_path_equals_plan() -> None:
    g, c, r = realistic(2000, 4, seed=5)
    p = AllocationProblem(g, c, r, min_roi=1.2)
    budgets = [0.0, 50.0, 400.0, 5000.0]
    a = plan(p, g, budgets)
    b = plan(p, g, budgets, path=SortedFrontier.from_path(frontier_path(p, g)))
    np.testing.assert_allclose(b.select_dtypes("number").to_numpy(), a.select_dtypes("number").to_numpy(), rtol=1e-9)
    assert (a["resolved"] == b["resolved"]).all()


def test_curve_equals_plan_columns_without_roi_floor() -> None:
    g, c, r = realistic(3000, 4, seed=9)
    p = AllocationProblem(g, c, r)
    path = frontier_path(p, g)
    budgets = [700.0, 0.0, 123.4, path.max_useful_spend * 1.1]
    ref = plan(p, g, budgets, arm_names=["a", "b", "c", "d"])
    got = SortedFrontier.from_path(path).curve(budgets, ["a", "b", "c", "d"])
    assert list(got) == [col for col in ref.columns if col != "resolved"]
    for col, v in got.items():
        np.testing.assert_allclose(v, ref[col].to_numpy(dtype=float), rtol=1e-9, atol=1e-12, err_msg=col)


@pytest.mark.parametrize("n, k, step, min_roi", [(3000, 5, 64, None), (500, 3, 7, None), (2000, 4, 1024, 1.2)])
def test_spend_per_arm_equals_the_prefix_replayed_user_by_user(n, k, step, min_roi) -> None:
    """Spend per arm at a budget = the greedy prefix's moves applied to every user's arm, then summed
    (replayed here from the hull segments themselves); with an ROI floor, re-solved points carry the
    solver's own allocation."""
    from promo_opt.allocation.dual import best_free_arm, hull_segments
    from promo_opt.service.plans import CachedFrontier, answer

    g, c, r = realistic(n, k, seed=n + k)
    if min_roi is not None:  # a floor above the ROI of spending everything useful: binds at large budgets
        top = SortedFrontier.from_path(frontier_path(AllocationProblem(g, c, r), g))
        pt = top.points(np.array([top.max_useful_spend]))
        min_roi = float(pt["revenue"][0] / pt["spend"][0]) * min_roi
    p = AllocationProblem(g, c, r, min_roi=min_roi)
    fast = SortedFrontier.from_path(frontier_path(p, g), step=step)
    start = best_free_arm(g, c)
    seg = hull_segments(g, c, r, start=start)
    order = np.argsort(-seg.slope, kind="stable")
    budgets = np.sort(np.random.default_rng(3).uniform(0, fast.max_useful_spend * 1.05, 12))
    if min_roi is None:
        got = fast.points(budgets, spend_per_arm=True)["spend_per_arm"]
        for b, row in zip(budgets, got):
            arm = start.copy()
            total = float(c[np.arange(n), arm].sum())
            for j in order:  # the longest prefix whose spend fits
                if total + seg.dc[j] > b:
                    break
                total += seg.dc[j]
                arm[seg.user[j]] = seg.to[j]
            np.testing.assert_allclose(row, np.bincount(arm, weights=c[np.arange(n), arm], minlength=k),
                                       rtol=1e-9, atol=1e-9)
    arms = [f"a{i}" for i in range(k)]

    class Cfg:
        arm_names = arms

    cols = answer(Cfg, CachedFrontier(problem=p, conversions=g, frontier=fast), budgets.tolist(), 10)
    per_arm = np.array([cols[f"spend_{a}"] for a in arms]).T
    np.testing.assert_allclose(per_arm.sum(axis=1), cols["spend"], rtol=1e-9, atol=1e-9)
    if min_roi is not None:
        assert any(cols["resolved"])  # the floor binds somewhere: those rows come from the solver


def test_answer_under_a_floor_resolves_from_the_cached_floor_path() -> None:
    """Rows breaking the floor come from the entry's FloorPath (built by the first one), equal to cold solves."""
    from promo_opt.allocation.floor_path import FloorPath, solve_point
    from promo_opt.service.plans import CachedFrontier, answer

    g, c, r = realistic(3000, 4, seed=21)
    top = SortedFrontier.from_path(frontier_path(AllocationProblem(g, c, r), g))
    pt = top.points(np.array([top.max_useful_spend]))
    p = AllocationProblem(g, c, r, min_roi=1.2 * float(pt["revenue"][0] / pt["spend"][0]))
    cached = CachedFrontier(problem=p, conversions=g, frontier=SortedFrontier.from_path(frontier_path(p, g)),
                            floor=FloorPath(p, g))
    arms = ["a", "b", "c", "d"]

    class Cfg:
        arm_names = arms

    budgets = np.linspace(0.0, 1.05 * top.max_useful_spend, 16)
    cols = answer(Cfg, cached, budgets.tolist(), 10)
    assert cached.floor.intervals and cached.floor.cold_points == 0
    resolved = np.flatnonzero(cols["resolved"])
    assert resolved.size >= 3
    for i in resolved:
        cold = solve_point(p, g, cols["budget"][i])
        assert cols["objective"][i] == pytest.approx(cold["gain"], rel=1e-9)
        assert [cols[f"users_{a}"][i] for a in arms] == cold["counts"].tolist()
        np.testing.assert_allclose([cols[f"spend_{a}"][i] for a in arms], cold["spend_per_arm"], rtol=1e-9)
