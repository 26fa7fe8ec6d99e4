"""The allocator: choose at most one arm per user under a budget, an ROI floor and caps.

``allocate`` is the one entry point the CLI, the service and notebooks call; it picks the solver
(``solver="auto"``) and returns a certified :class:`Allocation`.
"""

from __future__ import annotations

import numpy as np

from promo_opt.allocation.dual import solve_dual
from promo_opt.allocation.problem import Allocation, AllocationProblem, ArmCap
from promo_opt.errors import InfeasibleError, PromoOptError, UnreachableFloor

EXACT_AUTO_LIMIT = 2_000_000  # user x arm cells above which side constraints are refused in auto
EXACT_TIME_LIMIT = 120.0  # seconds for an exact solve chosen by auto; the result reports its gap


def choose_solver(problem: AllocationProblem, solver: str = "auto") -> tuple[str, str]:
    """(solver, reason). Budget/ROI only -> the dual path; caps or segment budgets -> SCIP (MIP).

    SCIP rather than CP-SAT for side constraints: on these knapsacks with real-valued
    coefficients SCIP proves optimality in about a second at 300 users, where CP-SAT (integer-
    scaled coefficients) still had a 0.5% gap after 20 s.
    """
    if solver != "auto":
        return solver, f"solver '{solver}' requested in the config"
    if not problem.has_side_constraints:
        return "dual", "budget/ROI only: the Lagrangian dual decomposes per user (exact LP, certified gap)"
    cells = problem.n_users * (problem.n_arms - 1)
    if cells > EXACT_AUTO_LIMIT:
        raise PromoOptError(
            f"arm caps or segment budgets on {problem.n_users} users x {problem.n_arms} arms "
            f"({cells} decision variables) exceed the exact solver's limit of {EXACT_AUTO_LIMIT}; "
            "drop the caps/segments or split the campaign"
        )
    return "mip", "arm caps or segment budgets: the dual does not decompose; exact MIP (SCIP)"


def allocate(gains, costs, *, budget: float | None = None, min_roi: float | None = None,
             revenue=None, arm_caps: tuple[ArmCap, ...] = (), segment=None, segment_budgets=None,
             solver: str = "auto", time_limit: float | None = None) -> Allocation:
    """Notebook-friendly entry on arrays (or DataFrames): ``(n_users, n_arms)``, control at column 0.

    ``revenue`` (incremental revenue per user x arm) is needed only with ``min_roi``.
    """
    gains = np.asarray(gains, dtype=np.float64)
    if revenue is None:
        if min_roi is not None:
            raise PromoOptError("min_roi needs revenue: pass revenue=(n_users, n_arms) incremental revenue")
        revenue = np.zeros_like(gains)
    problem = AllocationProblem(gain=gains, spend=np.asarray(costs, dtype=np.float64),
                                revenue=np.asarray(revenue, dtype=np.float64), budget=budget,
                                min_roi=min_roi, arm_caps=tuple(arm_caps), segment=segment,
                                segment_budgets=None if segment_budgets is None else tuple(segment_budgets))
    return solve(problem, solver=solver, time_limit=time_limit)


def solve(problem: AllocationProblem, solver: str = "auto", time_limit: float | None = None,
          gap_limit: float | None = None) -> Allocation:
    """The allocation of ``problem`` by ``solver`` (:func:`choose_solver`). ``gap_limit``: the exact solvers stop at
    that relative gap instead of proving optimality (a "feasible" result with its certified gap; the dual path,
    exact as an LP and certified by its bound, has no search to stop)."""
    if problem.min_roi is not None and problem.n_users:
        best = best_attainable_roi(problem)
        if problem.min_roi > best:
            raise unreachable_floor(problem.min_roi, best)
    name, reason = choose_solver(problem, solver)
    if time_limit is None and solver == "auto":
        time_limit = EXACT_TIME_LIMIT
    if name == "dual":
        if problem.has_side_constraints:
            raise PromoOptError("solver 'dual' handles budget and min_roi only; use 'auto' or 'cpsat' for caps/segments")
        return solve_dual(problem, reason=reason)
    from promo_opt.allocation import exact

    if name == "cpsat":
        return exact.solve_cpsat(problem, time_limit=time_limit, reason=reason, gap_limit=gap_limit)
    if name == "mip":
        return exact.solve_mip(problem, time_limit=time_limit, reason=reason, gap_limit=gap_limit)
    if name == "pulp":
        return exact.solve_pulp(problem, time_limit=time_limit, reason=reason, gap_limit=gap_limit)
    raise PromoOptError(f"unknown solver {name!r}; expected auto, dual, cpsat, mip or pulp")


def unreachable_floor(min_roi: float, best: float) -> UnreachableFloor:
    """The refusal of an ROI floor above ``best``, the best ROI any user x arm reaches, saying what would help:
    a lower floor where some promotion returns something; where none does (``best`` <= 0: the model expects no
    incremental revenue from any promotion for anyone), no floor helps, and the message says so."""
    what = (f"min_roi {min_roi:g} is above the best ROI any user x arm reaches ({best:.4g}): no policy that treats "
            "anyone can meet it")
    if best > 0:
        return UnreachableFloor(f"{what}; lower constraints.min_roi", min_roi, best)
    return UnreachableFloor(f"{what}, and no lower floor helps: the model expects no promotion to add revenue for any "
                           "user (the past campaign shows no positive effect: too few users for the effect's size, or "
                           "promotions that do not work); check data.outcome and data.arm, or learn from a larger "
                           "randomized campaign", min_roi, best)


def best_attainable_roi(problem: AllocationProblem) -> float:
    """Highest ROI any single user x arm reaches: a policy's ROI (a ratio of sums) is at most this."""
    c, r = problem.spend[:, 1:], problem.revenue[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(c > 0, r / np.where(c > 0, c, 1.0), np.where(r > 0, np.inf, -np.inf))
    return float(ratio.max()) if ratio.size else float("nan")


__all__ = ["Allocation", "AllocationProblem", "ArmCap", "InfeasibleError", "allocate", "best_attainable_roi",
           "choose_solver", "solve", "unreachable_floor"]
