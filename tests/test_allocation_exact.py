"""Exact solvers (CP-SAT, MIP via SCIP/CBC, PuLP/CBC), LP bound and brute force agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promo_opt.allocation.bruteforce import MAX_POLICIES, solve_bruteforce
from promo_opt.allocation.exact import (
    DEFAULT_SCALE, _repair, lp_relaxation, solve_cpsat, solve_lp_relaxation, solve_mip, solve_pulp,
)
from promo_opt.allocation.problem import AllocationProblem, ArmCap
from promo_opt.errors import InfeasibleError, PromoOptError

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
money = st.one_of(st.just(0.0), st.integers(0, 2000).map(lambda c: c / 100))  # 0..20 with cents


@st.composite
def tiny_problems(draw) -> AllocationProblem:
    n = draw(st.integers(1, 6))
    k = draw(st.integers(2, 4))
    cells = (n, k - 1)
    gain = np.array(draw(st.lists(st.integers(-500, 1000), min_size=n * (k - 1), max_size=n * (k - 1))),
                    dtype=float).reshape(cells) / 100
    gain += draw(st.sampled_from([0.0, 1e-3, np.pi / 10]))  # also non-decimal values
    spend = np.array(draw(st.lists(money, min_size=n * (k - 1), max_size=n * (k - 1)))).reshape(cells)
    spend *= draw(st.sampled_from([1.0, 1.0, 1 / 3]))  # also spend that is not whole cents
    revenue = np.array(draw(st.lists(money, min_size=n * (k - 1), max_size=n * (k - 1)))).reshape(cells)
    z = np.zeros((n, 1))
    gain, spend, revenue = (np.hstack([z, a]) for a in (gain, spend, revenue))
    total = float(spend.max(axis=1).sum())
    budget = draw(st.one_of(st.none(), st.just(0.0), st.just(1e9),
                            st.floats(0, 1).map(lambda f: round(f * total, 2))))
    min_roi = draw(st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.5])))
    caps: tuple[ArmCap, ...] = ()
    if draw(st.booleans()):
        arm = draw(st.integers(1, k - 1))
        max_users = draw(st.one_of(st.none(), st.integers(0, n)))
        max_spend = draw(st.one_of(st.none(), st.floats(0, 1).map(lambda f: round(f * total, 2))))
        caps = (ArmCap(arm, max_users=max_users, max_spend=max_spend),)
    segment = segment_budgets = None
    if draw(st.booleans()):
        segment = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
        segment_budgets = tuple(draw(st.lists(st.floats(0, 1).map(lambda f: round(f * total / 2, 2)),
                                              min_size=2, max_size=2)))
    return AllocationProblem(gain, spend, revenue, budget=budget, min_roi=min_roi, arm_caps=caps,
                             segment=segment, segment_budgets=segment_budgets)


def _rows(p: AllocationProblem) -> list[tuple[np.ndarray, float, bool]]:
    """Side constraints as ``(coef (n, K), rhs, integral)`` in ``<=`` form, written independently."""
    rows = []
    if p.budget is not None:
        rows.append((p.spend, p.budget, False))
    if p.min_roi is not None:
        rows.append((p.min_roi * p.spend - p.revenue, 0.0, False))
    for cap in p.arm_caps:
        on = np.zeros(p.gain.shape, bool)
        on[:, cap.arm] = True
        if cap.max_users is not None:
            rows.append((on.astype(float), cap.max_users, True))
        if cap.max_spend is not None:
            rows.append((np.where(on, p.spend, 0.0), cap.max_spend, False))
    if p.segment is not None:
        for s, b in enumerate(p.segment_budgets):
            rows.append((np.where((p.segment == s)[:, None], p.spend, 0.0), b, False))
    return rows


def best_with_margin(p: AllocationProblem, scale: float = DEFAULT_SCALE) -> float:
    """Best objective over policies whose slack on every money row is at least the CP-SAT
    rounding allowance ``(n + 1) * 10 * max|coef| / scale`` (user-count rows are exact), i.e. the
    policies that are certainly feasible in CP-SAT's rounded model."""
    n, k = p.gain.shape
    arms = (np.arange(k ** n)[:, None] // k ** np.arange(n)[None, :]) % k
    idx = np.arange(n)
    ok = np.ones(len(arms), bool)
    for coef, rhs, integral in _rows(p):
        margin = 0.0 if integral else (n + 1) * 10 * np.abs(coef).max() / scale
        used = coef[idx, arms]
        # a policy with no nonzero coefficient on the row meets its rounded form exactly
        ok &= (rhs - used.sum(axis=1) >= margin) | ~(used != 0).any(axis=1)
    return float(p.gain[idx, arms].sum(axis=1)[ok].max())  # control-for-all always qualifies


def random_problem(seed: int, n: int = 200, k: int = 5) -> AllocationProblem:
    """Cents for money and 4 decimals for gain, so CP-SAT's power-of-ten scaling is exact."""
    rng = np.random.default_rng(seed)
    gain = np.round(rng.normal(0.5, 1.0, (n, k)), 4)
    spend = np.round(rng.uniform(0, 10, (n, k)), 2)
    revenue = np.round(spend * rng.uniform(0.5, 3.0, (n, k)), 2)
    gain[:, 0] = spend[:, 0] = revenue[:, 0] = 0
    segment = rng.integers(0, 2, n)
    per_arm = float(spend.sum()) / k
    return AllocationProblem(
        gain, spend, revenue, budget=round(per_arm / 3, 2), min_roi=1.5,
        arm_caps=(ArmCap(1, max_users=n // 4), ArmCap(2, max_spend=round(per_arm / 10, 2))),
        segment=segment, segment_budgets=(round(per_arm / 5, 2), round(per_arm / 6, 2)),
    )


def close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


# --------------------------------------------------------------------------------------------
# property tests on tiny instances: every solver against brute force
# --------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_problems())
def test_exact_solvers_match_bruteforce(p: AllocationProblem) -> None:
    brute = solve_bruteforce(p)
    assert p.violations(brute.arm) == []
    n = p.n_users
    results = [solve_cpsat(p), solve_mip(p, "SCIP"), solve_mip(p, "CBC"), solve_pulp(p)]
    for a in results:
        assert p.violations(a.arm) == [], a.solver
        assert a.arm.shape == (n,)
        assert a.bound >= brute.objective - 1e-9, a.solver
    cpsat, scip, cbc, pulp_ = results
    # MIP solvers see the exact coefficients: same optimum as brute force.
    for a in (scip, cbc, pulp_):
        assert close(a.objective, brute.objective), (a.solver, a.objective, brute.objective)
    # CP-SAT sees safely rounded constraints (coefficients up, capacities down) and a rounded
    # objective. It can never beat brute force by more than the objective rounding, and it must
    # reach the best policy whose slack on every row covers the constraint rounding; in
    # knife-edge cases (slack below the rounding allowance) it may legitimately be lower.
    obj_tol = n * 10 * np.abs(p.gain).max() / DEFAULT_SCALE + 1e-9
    assert cpsat.status == "optimal"
    assert cpsat.objective <= brute.objective + obj_tol
    assert cpsat.objective >= best_with_margin(p) - obj_tol


@settings(max_examples=60, deadline=None)
@given(tiny_problems())
def test_lp_relaxation_bounds_the_optimum(p: AllocationProblem) -> None:
    brute = solve_bruteforce(p)
    bound, x = solve_lp_relaxation(p)
    assert bound >= brute.objective - 1e-9
    assert x.shape == p.gain.shape
    assert np.all(x >= -1e-9) and np.all(x.sum(axis=1) <= 1 + 1e-9)
    lp = lp_relaxation(p)
    # the Lagrangian bound from GLOP's duals equals the LP value (checks the dual signs)
    assert close(lp.bound, lp.value), (lp.bound, lp.value)


# --------------------------------------------------------------------------------------------
# cross-check on small random instances
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solvers_agree_on_random_instances(seed: int) -> None:
    p = random_problem(seed)
    results = [solve_cpsat(p, time_limit=20), solve_mip(p, "SCIP", time_limit=20),
               solve_mip(p, "CBC", time_limit=20), solve_pulp(p, time_limit=20)]
    ref = results[1].objective
    for a in results:
        assert a.status == "optimal", a.solver
        assert p.violations(a.arm) == [], a.solver
        assert close(a.objective, ref), (a.solver, a.objective, ref)
        assert a.bound >= ref - 1e-9 and 0 <= a.gap < 1e-2
        assert set(a.multipliers) >= {"lambda", "mu"}
    assert results[0].objective > 0


def test_a_gap_limit_stops_the_exact_solvers_short_of_a_proof_and_says_so() -> None:
    """``gap_limit``: every exact solver stops within that relative gap of its bound, reports "feasible" (not
    "optimal": nothing was proved) with the certified gap, and gets within the limit of the proved optimum."""
    p = random_problem(0, n=400)
    ref = solve_mip(p, "SCIP", time_limit=60)
    for a in (solve_cpsat(p, time_limit=20, gap_limit=0.02), solve_mip(p, "SCIP", time_limit=20, gap_limit=0.02),
              solve_pulp(p, time_limit=20, gap_limit=0.02)):
        assert a.status == "feasible" and p.violations(a.arm) == [], a.solver
        assert a.objective >= ref.objective * (1 - 0.02) - 1e-9 and a.objective <= ref.bound + 1e-9, a.solver
    assert ref.status == "optimal"  # the same search without the limit proves it


def test_cpsat_is_exact_on_cents_knife_edge() -> None:
    # budget equals the spend of the best pair exactly: powers-of-ten scaling keeps cents exact
    gain = np.array([[0, 3.0, 1.0], [0, 2.0, 0.5]])
    spend = np.array([[0, 0.07, 0.01], [0, 0.13, 0.02]])
    p = AllocationProblem(gain, spend, spend * 2, budget=0.07 + 0.13, min_roi=2.0)
    a = solve_cpsat(p)
    assert a.arm.tolist() == [1, 1] and a.objective == 5.0


# --------------------------------------------------------------------------------------------
# status handling, errors, repair
# --------------------------------------------------------------------------------------------
def test_negative_capacity_is_infeasible_for_every_solver() -> None:
    p = AllocationProblem(np.array([[0, 1.0]]), np.array([[0, 1.0]]), np.array([[0, 1.0]]),
                          arm_caps=(ArmCap(1, max_spend=-1.0),))
    for solve in (solve_cpsat, solve_mip, solve_pulp, solve_lp_relaxation):
        with pytest.raises(InfeasibleError, match="arm1_spend capacity is -1"):
            solve(p)
    with pytest.raises(InfeasibleError, match="no policy"):
        solve_bruteforce(p)


def test_cpsat_without_solution_raises_instead_of_reading_it() -> None:
    p = random_problem(3, n=3000, k=5)
    try:
        a = solve_cpsat(p, time_limit=1e-9)
    except PromoOptError as e:
        assert "status UNKNOWN" in str(e) and "time_limit" in str(e)
    else:  # CP-SAT may find a first solution in presolve; then it must be a real one
        assert a.status == "feasible" or a.status == "optimal"
        assert p.violations(a.arm) == []


def test_bruteforce_refuses_large_instances() -> None:
    n = int(np.ceil(np.log(MAX_POLICIES + 1) / np.log(4))) + 1
    p = AllocationProblem(np.zeros((n, 4)), np.zeros((n, 4)), np.zeros((n, 4)))
    with pytest.raises(PromoOptError, match="brute force would try 4\\*\\*"):
        solve_bruteforce(p)


def test_repair_moves_the_cheapest_gain_per_spend_user_to_control() -> None:
    gain = np.array([[0, 4.0], [0, 1.0], [0, 3.0]])
    spend = np.array([[0, 1.0], [0, 1.0], [0, 1.0]])
    p = AllocationProblem(gain, spend, spend, budget=3.0 - 1e-6)
    arm, moved = _repair(p, np.array([1, 1, 1]))
    assert moved == 1 and arm.tolist() == [1, 0, 1]


def test_unknown_mip_backend_is_refused() -> None:
    p = random_problem(0, n=5)
    with pytest.raises(PromoOptError, match="backend = 'GUROBI'"):
        solve_mip(p, "GUROBI")


def test_only_nonpositive_pairs_gives_control() -> None:
    p = AllocationProblem(np.array([[0, -1.0], [0, 0.0]]), np.ones((2, 2)) * [0, 1], np.zeros((2, 2)),
                          budget=5.0)
    for solve in (solve_cpsat, solve_mip, solve_pulp):
        a = solve(p)
        assert a.arm.tolist() == [0, 0] and a.objective == 0 and a.status == "optimal"


def test_cpsat_rounding_is_safe_at_knife_edge() -> None:
    # three users at 1/3 each overshoot a budget of 1 - 1e-7 by 1e-7 (> the 1e-9 tolerance);
    # rounding spend down would let all three in, rounding it up keeps two
    third = 1 / 3
    p = AllocationProblem(np.array([[0, 1.0]] * 3), np.array([[0, third]] * 3), np.zeros((3, 2)),
                          budget=1 - 1e-7)
    a = solve_cpsat(p)
    assert p.violations(a.arm) == [] and int((a.arm == 1).sum()) == 2


class _FakeVar:
    def __init__(self, value):
        self.value = value

    def solution_value(self):
        return self.value


class _FakeSolver:
    """One round of :func:`exact._search`: the status and objective a round ends with; records its limit and hint."""

    def __init__(self, status, value, log):
        self.status, self.value, self.log = status, value, log
        self.xs = [_FakeVar(float(value)), _FakeVar(0.0)]

    def SetTimeLimit(self, ms):
        self.log.append(("limit", ms))

    def SetHint(self, xs, values):
        self.log.append(("hint", list(values)))

    def Solve(self, params):
        self.log.append(("solve", self.status, self.value))
        return self.status

    def Objective(self):
        return self

    def Value(self):
        return self.value


def _rounds(outcomes, time_limit=120.0):
    """exact._search over fake rounds ending with ``outcomes`` [(status, objective)]: (its result, the log)."""
    import time

    from promo_opt.allocation import exact

    log, made = [], iter(outcomes)

    def build():
        status, value = next(made)
        s = _FakeSolver(status, value, log)
        return s, s.xs, None

    status, stalled, solver, xs = exact._search(build, time_limit, time.perf_counter())
    return (status, stalled, solver.value), log


def test_the_mip_search_stops_when_a_longer_round_finds_nothing_better():
    """SCIP can have its final incumbent within a second and spend any time limit failing to prove a gap of a few
    users' worth (a 2,850-user campaign with two arm caps and three segment budgets: the same policy after 1 s
    as after 120 s). The search runs in rounds, each STALL_GROWTH times longer than the last and started from its
    incumbent, and stops at the first round that finds nothing better, or proves optimality."""
    from ortools.linear_solver.pywraplp import Solver as S

    from promo_opt.allocation import exact

    (status, stalled, value), log = _rounds([(S.FEASIBLE, 10.0), (S.FEASIBLE, 10.0)])
    assert (status, stalled, value) == (S.FEASIBLE, True, 10.0)
    limits = [e[1] for e in log if e[0] == "limit"]
    assert len(limits) == 2 and limits[1] == pytest.approx(limits[0] * exact.STALL_GROWTH, rel=0.01)
    assert [e[1] for e in log if e[0] == "hint"] == [[10.0, 0.0]]  # the second round starts from the first's
    # a round that improves earns a longer one; the round whose successor would not fit takes all the time left
    (status, stalled, value), log = _rounds([(S.FEASIBLE, 10.0), (S.FEASIBLE, 12.0), (S.FEASIBLE, 12.0)])
    assert (status, stalled, value) == (S.FEASIBLE, False, 12.0)
    limits = [e[1] for e in log if e[0] == "limit"]
    assert limits[2] > 100_000 and [e[1] for e in log if e[0] == "hint"] == [[10.0, 0.0], [12.0, 0.0]]
    # a round that proves optimality ends the search, better or not
    (status, stalled, value), _ = _rounds([(S.FEASIBLE, 10.0), (S.OPTIMAL, 11.0)])
    assert (status, stalled, value) == (S.OPTIMAL, False, 11.0)
    # a round that ends without a solution (its hint not taken) keeps the last round's incumbent
    (status, stalled, value), _ = _rounds([(S.FEASIBLE, 10.0), (S.NOT_SOLVED, 0.0)])
    assert (status, stalled, value) == (S.FEASIBLE, False, 10.0)
    # no incumbent yet: a longer round, not a failure
    (status, stalled, value), log = _rounds([(S.NOT_SOLVED, 0.0), (S.OPTIMAL, 5.0)])
    assert (status, stalled, value) == (S.OPTIMAL, False, 5.0)
    # a short time limit: one round that uses all of it
    (status, stalled, value), log = _rounds([(S.FEASIBLE, 10.0)], time_limit=3.0)
    assert (status, stalled, value) == (S.FEASIBLE, False, 10.0)
    assert len([e for e in log if e[0] == "solve"]) == 1
