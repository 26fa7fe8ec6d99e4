"""Brute force: try every policy. The reference the exact solvers are tested against."""

from __future__ import annotations

import time

import numpy as np

from promo_opt.allocation.problem import Allocation, AllocationProblem, finish
from promo_opt.errors import InfeasibleError, PromoOptError

MAX_POLICIES = 2_000_000
_CHUNK = 1 << 16


def _feasible(problem: AllocationProblem, arms: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """(m,) mask of the policies ``arms`` (m, n_users) that ``problem.violations`` accepts.

    The tolerances mirror :meth:`AllocationProblem.violations` term by term.
    """
    idx = np.arange(problem.n_users)
    spend = problem.spend[idx, arms]  # (m, n)
    total_spend = spend.sum(axis=1)
    ok = np.ones(len(arms), dtype=bool)
    if problem.budget is not None:
        ok &= total_spend <= problem.budget + tol * max(1.0, abs(problem.budget))
    if problem.min_roi is not None:
        revenue = problem.revenue[idx, arms].sum(axis=1)
        ok &= revenue - problem.min_roi * total_spend >= -tol * np.maximum(1.0, revenue)
    for cap in problem.arm_caps:
        on = arms == cap.arm
        if cap.max_users is not None:
            ok &= on.sum(axis=1) <= cap.max_users
        if cap.max_spend is not None:
            ok &= (spend * on).sum(axis=1) <= cap.max_spend + tol * max(1.0, cap.max_spend)
    if problem.segment is not None:
        seg = np.asarray(problem.segment)
        for s, b in enumerate(problem.segment_budgets):
            ok &= spend[:, seg == s].sum(axis=1) <= b + tol * max(1.0, b)
    return ok


def solve_bruteforce(problem: AllocationProblem, *, reason: str = "brute force requested") -> Allocation:
    """Enumerate all ``n_arms ** n_users`` policies and return the best feasible one.

    Refuses (``PromoOptError``) above ``MAX_POLICIES`` policies. Ties go to the first policy in
    enumeration order (user 0's arm varies fastest). ``bound`` is the optimum itself.
    """
    t0 = time.perf_counter()
    n, k_arms = problem.gain.shape
    total = k_arms ** n
    if total > MAX_POLICIES:
        raise PromoOptError(
            f"brute force would try {k_arms}**{n} = {total:.3g} policies (limit {MAX_POLICIES:.0e}); "
            "use solve_cpsat or solve_mip"
        )
    idx = np.arange(n)
    powers = k_arms ** np.arange(n, dtype=np.int64)
    best_value, best_arm = -np.inf, None
    for start in range(0, total, _CHUNK):
        codes = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
        arms = (codes[:, None] // powers[None, :]) % k_arms  # (m, n)
        value = problem.gain[idx, arms].sum(axis=1)
        value[~_feasible(problem, arms)] = -np.inf
        j = int(np.argmax(value))
        if value[j] > best_value:
            best_value, best_arm = value[j], arms[j]
    if best_arm is None:
        raise InfeasibleError("no policy meets the constraints, not even control for everyone; "
                              "check for negative capacities")
    return finish(problem, best_arm, bound=float(best_value), n_fractional=0, solver="bruteforce",
                  solver_reason=reason, seconds=time.perf_counter() - t0, status="optimal")
