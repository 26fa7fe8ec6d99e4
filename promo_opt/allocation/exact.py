"""Exact solvers for the allocation problem: LP relaxation (bound), CP-SAT, MIP (SCIP/CBC), PuLP.

All solvers take an :class:`AllocationProblem` and return an :class:`Allocation` whose policy
passes ``problem.violations`` (checked again by :func:`finish`). They share one model, built in
:func:`_build_model`:

* **Candidates.** A pair (user i, arm k >= 1) with ``gain <= 0`` that does not help the ROI floor
  (``revenue - min_roi * spend <= 0``, or no ROI floor) is never worth choosing: moving that user
  to control keeps every constraint (spend >= 0) and does not lower the objective. Such pairs
  are dropped; every solver works on the remaining pairs only, so results stay exact.
* **Rows.** Every side constraint is written ``sum coef * x <= rhs`` (the ROI floor as
  ``sum -(revenue - min_roi * spend) * x <= 0``). Rows that no policy can break (the sum of
  every user's largest coefficient fits under ``rhs``) are dropped; a negative capacity makes the
  problem infeasible (control-for-all spends 0) and raises :class:`InfeasibleError` up front.

Bounds. :func:`solve_lp_relaxation` solves the LP relaxation with GLOP and turns its duals
``y >= 0`` into a Lagrangian bound computed in NumPy,
``sum_i max(0, max_k gain_ik - y . coef_ik) + y . rhs``. That bound is valid for *any* ``y >= 0``
(weak duality), so it stays a rigorous upper bound even if GLOP's duals are slightly off;
with GLOP's optimal duals it equals the LP value.

CP-SAT precision (:func:`solve_cpsat`). CP-SAT needs integer coefficients. Each row (and the
objective) gets its own power-of-ten factor ``s`` so that its largest ``|coefficient|`` maps into
``[scale / 10, scale]`` (default ``scale = 1e7``; n * 1e7 fits int64 for any realistic n). Powers
of ten keep money with a few decimals exact. Rows are rounded *safely*: coefficients up (ceil),
capacity down (floor), so the ROI floor's ``revenue - min_roi * spend`` is rounded down. Before
rounding, values within ``1e-12`` relative of an integer snap to it (this only absorbs the float
noise of ``c * s``, e.g. ``0.07 * 1e6 = 70000.00000000001``). Hence a CP-SAT-feasible policy
meets every constraint up to ~1e-12 relative, far inside the 1e-9 of ``problem.violations``.
The price is conservatism: a policy whose slack on some row is below ``(n_treated + 1) / s``
(at most ``(n + 1) * 10 * max|coef| / scale`` in the row's units) may be cut off. The objective is
rounded to nearest, so CP-SAT's policy is within ``n * 10 * max|gain| / scale`` of the best
policy of the rounded model.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from promo_opt.allocation.problem import Allocation, AllocationProblem, finish, make_slacks
from promo_opt.errors import InfeasibleError, PromoOptError

log = logging.getLogger(__name__)

DEFAULT_SCALE = 1e7  # the largest |integer coefficient| of a CP-SAT row lies in [scale/10, scale]
LP_BOUND_MAX_PAIRS = 2_000_000  # above this many (user, arm) pairs CP-SAT skips the GLOP bound
_SNAP = 1e-12  # relative distance to an integer treated as float noise before safe rounding


# --------------------------------------------------------------------------------------------
# the shared model: candidate pairs and <= rows
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    """``sum_j coef[j] * x[pairs[j]] <= rhs`` over candidate pairs."""

    name: str  # "budget", "roi", "arm2_users", "arm2_spend", "segment0_budget"
    pairs: np.ndarray  # (m,) positions into the candidate pair arrays
    coef: np.ndarray  # (m,) float, nonzero
    rhs: float
    integral: bool  # coefficients and rhs are exact integers (user caps)


@dataclass(frozen=True)
class _Model:
    users: np.ndarray  # (P,) user of each candidate pair
    arms: np.ndarray  # (P,) arm (>= 1) of each candidate pair
    gain: np.ndarray  # (P,) objective coefficient
    rows: tuple[_Row, ...]
    row_coef: dict[str, np.ndarray]  # row name -> (n_users, n_arms) dense coefficients (all pairs)

    @property
    def n_pairs(self) -> int:
        return len(self.users)


_MULTIPLIER_NAME = {"budget": "lambda", "roi": "mu"}


def _row_matrices(problem: AllocationProblem) -> list[tuple[str, np.ndarray, float, bool]]:
    """Every side constraint as ``(name, coef (n, K), rhs, integral)`` in ``<=`` form."""
    n, k_arms = problem.gain.shape
    out = []
    if problem.budget is not None:
        out.append(("budget", problem.spend, float(problem.budget), False))
    if problem.min_roi is not None:
        # revenue - min_roi * spend is often 0 in decimal but ~1e-17 in float; such noise makes
        # simplex pivot on garbage (GLOP went ABNORMAL on 20k users), so snap it to exactly 0
        slack = problem.roi_slack_matrix
        noise = 1e-12 * (np.abs(problem.revenue) + problem.min_roi * problem.spend)
        out.append(("roi", np.where(np.abs(slack) <= noise, 0.0, -slack), 0.0, False))
    for cap in problem.arm_caps:
        only = np.zeros((n, k_arms))
        if cap.max_users is not None:
            users = only.copy()
            users[:, cap.arm] = 1.0
            out.append((f"arm{cap.arm}_users", users, float(cap.max_users), True))
        if cap.max_spend is not None:
            spend = only.copy()
            spend[:, cap.arm] = problem.spend[:, cap.arm]
            out.append((f"arm{cap.arm}_spend", spend, float(cap.max_spend), False))
    if problem.segment is not None:
        seg = np.asarray(problem.segment)
        for s, b in enumerate(problem.segment_budgets):
            coef = np.where((seg == s)[:, None], problem.spend, 0.0)
            out.append((f"segment{s}_budget", coef, float(b), False))
    for name, _, rhs, _ in out:
        if not np.isfinite(rhs):
            raise PromoOptError(f"{name} capacity is {rhs}; expected a finite number")
        if rhs < 0:
            raise InfeasibleError(
                f"{name} capacity is {rhs:g} < 0: no policy can meet it, not even control for "
                "everyone (which spends 0); give a capacity >= 0"
            )
    return out


def _build_model(problem: AllocationProblem) -> _Model:
    g = problem.gain
    useful = g[:, 1:] > 0
    if problem.min_roi is not None:
        useful |= problem.roi_slack_matrix[:, 1:] > 0
    users, arms = np.nonzero(useful)
    arms = arms + 1
    rows = []
    row_coef = {}
    for name, coef_m, rhs, integral in _row_matrices(problem):
        coef = coef_m[users, arms]
        nz = np.flatnonzero(coef != 0)
        # the most any policy can put on this row: every user's largest positive coefficient
        worst = np.zeros(problem.n_users)
        np.maximum.at(worst, users[nz], coef[nz])
        if worst.sum() <= rhs:
            continue  # no policy can break this row
        rows.append(_Row(name, nz, coef[nz], rhs, integral))
        row_coef[name] = coef_m
    return _Model(users=users, arms=arms, gain=g[users, arms], rows=tuple(rows), row_coef=row_coef)


def _arm_from_pairs(problem: AllocationProblem, model: _Model, chosen: np.ndarray) -> np.ndarray:
    """Integer policy (n_users,) from a boolean mask over candidate pairs."""
    arm = np.zeros(problem.n_users, dtype=np.int64)
    if np.bincount(model.users[chosen], minlength=problem.n_users).max(initial=0) > 1:
        raise AssertionError("solver gave a user two arms despite the at-most-one constraint")
    arm[model.users[chosen]] = model.arms[chosen]
    return arm


def _lagrangian_bound(problem: AllocationProblem, model: _Model, y: dict[str, float]) -> float:
    """``sum_i max(0, max_k gain_ik - sum_r y_r coef_rik) + sum_r y_r rhs_r``, valid for y >= 0."""
    reduced = problem.gain.copy()
    total = 0.0
    for row in model.rows:
        yr = y.get(row.name, 0.0)
        if yr > 0:
            reduced -= yr * model.row_coef[row.name]
            total += yr * row.rhs
    reduced[:, 0] = 0.0  # control: nothing chosen
    return float(reduced.max(axis=1).sum() + total)


# --------------------------------------------------------------------------------------------
# LP relaxation (GLOP) -> bound
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LpRelaxation:
    """The LP relaxation's solution and the rigorous bound derived from its duals."""

    value: float  # GLOP's objective value
    bound: float  # Lagrangian bound from GLOP's duals (>= true optimum, ~= value)
    x: np.ndarray  # (n_users, n_arms) fractional policy; column 0 = 1 - sum of the others
    multipliers: dict[str, float]  # dual of each binding row: "lambda" budget, "mu" roi, ...
    seconds: float


def lp_relaxation(problem: AllocationProblem) -> LpRelaxation:
    """Solve the LP relaxation with GLOP (``0 <= x_ik <= 1``, ``sum_k x_ik <= 1``)."""
    from ortools.linear_solver import pywraplp

    t0 = time.perf_counter()
    model = _build_model(problem)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        raise PromoOptError("OR-Tools has no GLOP linear solver in this build; reinstall ortools")
    inf = solver.infinity()
    # variables
    xs = [solver.NumVar(0.0, 1.0, "") for _ in range(model.n_pairs)]
    # constraints: at most one arm per user, then the side rows
    starts = np.searchsorted(model.users, np.arange(problem.n_users + 1))
    for i in np.flatnonzero(np.diff(starts) > 1):
        ct = solver.Constraint(-inf, 1.0)
        for j in range(starts[i], starts[i + 1]):
            ct.SetCoefficient(xs[j], 1.0)
    cts = []
    for row in model.rows:
        ct = solver.Constraint(-inf, row.rhs)
        for j, c in zip(row.pairs.tolist(), row.coef.tolist()):
            ct.SetCoefficient(xs[j], c)
        cts.append(ct)
    # objective
    obj = solver.Objective()
    for v, c in zip(xs, model.gain.tolist()):
        obj.SetCoefficient(v, c)
    obj.SetMaximization()
    # solve and report status
    status = solver.Solve()
    if status != pywraplp.Solver.OPTIMAL:
        raise PromoOptError(f"GLOP did not solve the LP relaxation to optimality (status {status})")
    x = np.zeros(problem.gain.shape)
    x[model.users, model.arms] = [v.solution_value() for v in xs]
    x[:, 0] = np.clip(1.0 - x[:, 1:].sum(axis=1), 0.0, 1.0)
    duals = {row.name: max(0.0, ct.dual_value()) for row, ct in zip(model.rows, cts)}
    bound = _lagrangian_bound(problem, model, duals)
    return LpRelaxation(
        value=obj.Value(), bound=bound, x=x,
        multipliers={_MULTIPLIER_NAME.get(k, k): v for k, v in duals.items()},
        seconds=time.perf_counter() - t0,
    )


def solve_lp_relaxation(problem: AllocationProblem) -> tuple[float, np.ndarray]:
    """``(bound, x)``: a rigorous upper bound from the LP relaxation and its fractional policy.

    ``bound`` is the Lagrangian bound of GLOP's duals (equal to the LP value up to GLOP's
    tolerances, but valid whatever those tolerances did); ``x`` is ``(n_users, n_arms)`` with
    ``x[:, 0] = 1 - x[:, 1:].sum(1)``.
    """
    lp = lp_relaxation(problem)
    return lp.bound, lp.x


# --------------------------------------------------------------------------------------------
# CP-SAT
# --------------------------------------------------------------------------------------------
def _pow10_factor(max_abs: float, scale: float) -> float:
    """Power of ten ``s`` with ``max_abs * s`` in ``[scale / 10, scale]``."""
    return 10.0 ** math.floor(math.log10(scale / max_abs))


def _safe_ceil(v: np.ndarray) -> np.ndarray:
    """Round up, except that values within float noise of an integer snap to it."""
    return np.ceil(v - _SNAP * np.abs(v)).astype(np.int64)


def _safe_floor(v: float) -> int:
    return int(math.floor(v + _SNAP * abs(v)))


def solve_cpsat(problem: AllocationProblem, time_limit: float | None = None, scale: float | None = None,
                *, num_workers: int = 2, random_seed: int = 0,
                reason: str = "exact CP-SAT solve requested", gap_limit: float | None = None) -> Allocation:
    """Solve with OR-Tools CP-SAT on safely rounded integer coefficients (see module docstring).

    ``status`` is "optimal" when CP-SAT proved the rounded model optimal, else "feasible".
    ``bound`` is the GLOP Lagrangian bound when there are at most ``LP_BOUND_MAX_PAIRS`` candidate
    pairs; above that, CP-SAT's own bound plus the objective-rounding allowance ``0.5 n / s``
    (a bound of the rounded model, which is slightly tighter than the original problem).
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    scale = DEFAULT_SCALE if scale is None else float(scale)
    if not 10.0 <= scale <= 1e12:
        raise PromoOptError(f"scale = {scale:g}; expected a number in [10, 1e12] (default 1e7)")
    m = _build_model(problem)
    if m.n_pairs == 0:  # no pair has positive gain or helps the ROI floor: control is optimal
        return finish(problem, np.zeros(problem.n_users, np.int64), bound=0.0, n_fractional=0,
                      solver="cpsat", solver_reason=reason, seconds=time.perf_counter() - t0,
                      status="optimal")
    # data: integer coefficients
    max_gain = float(np.abs(m.gain).max())
    s_obj = _pow10_factor(max_gain, scale) if max_gain > 0 else 1.0
    obj_int = np.rint(m.gain * s_obj).astype(np.int64)
    # variables
    model = cp_model.CpModel()
    xs = [model.NewBoolVar("") for _ in range(m.n_pairs)]
    # constraints
    starts = np.searchsorted(m.users, np.arange(problem.n_users + 1))
    for i in np.flatnonzero(np.diff(starts) > 1):
        model.AddAtMostOne(xs[starts[i]:starts[i + 1]])
    for row in m.rows:
        if row.integral:
            coef, rhs = row.coef.astype(np.int64), int(math.floor(row.rhs))
        else:
            s = _pow10_factor(float(np.abs(row.coef).max()), scale)
            coef, rhs = _safe_ceil(row.coef * s), _safe_floor(row.rhs * s)
        keep = coef != 0
        model.Add(cp_model.LinearExpr.WeightedSum([xs[j] for j in row.pairs[keep].tolist()],
                                                  coef[keep].tolist()) <= rhs)
    # objective
    model.Maximize(cp_model.LinearExpr.WeightedSum(xs, obj_int.tolist()))
    # solve
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = random_seed
    if gap_limit is not None:
        solver.parameters.relative_gap_limit = float(gap_limit)
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    status = solver.Solve(model)
    # report status; read a solution only when there is one
    if status == cp_model.INFEASIBLE:
        raise InfeasibleError("CP-SAT proved the rounded model infeasible; check the capacities "
                              "(control for everyone spends 0, so this is unexpected)")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise PromoOptError(
            f"CP-SAT stopped with status {solver.StatusName(status)} and no solution"
            + (f" within time_limit = {time_limit:g} s; raise time_limit" if time_limit is not None else "")
        )
    chosen = np.array([solver.BooleanValue(v) for v in xs], dtype=bool)
    arm = _arm_from_pairs(problem, m, chosen)
    bad = problem.violations(arm)
    if bad:  # the safe rounding makes this a bug, not a tolerance question
        raise AssertionError(f"CP-SAT policy breaks {'; '.join(bad)} despite safe rounding")
    multipliers = {}
    if m.n_pairs <= LP_BOUND_MAX_PAIRS:
        lp = lp_relaxation(problem)
        bound, multipliers = lp.bound, lp.multipliers
    else:
        bound = solver.BestObjectiveBound() / s_obj + 0.5 * problem.n_users / s_obj
    return finish(problem, arm, bound=bound, n_fractional=0, solver="cpsat", solver_reason=reason,
                  seconds=time.perf_counter() - t0, multipliers=multipliers,
                  status="optimal" if status == cp_model.OPTIMAL and gap_limit is None else "feasible")


# --------------------------------------------------------------------------------------------
# MIP: OR-Tools linear solver (SCIP / CBC) and PuLP (bundled CBC)
# --------------------------------------------------------------------------------------------
MIP_BACKENDS = ("SCIP", "CBC")  # both ship with the ortools 9.15 wheel (checked with CreateSolver)
PROOF_GAP = 1e-9  # the relative gap a MIP is searched to unless a gap_limit asks for less (the wrappers' default: 1e-4)
# Under a time limit the MIP is searched in rounds (solve_mip): the first of STALL_FIRST_ROUND seconds, each next one
# STALL_GROWTH times longer and started from the last incumbent, until a round proves optimality, finds nothing
# better than the one before it, or the time limit is spent.
STALL_FIRST_ROUND = 2.0
STALL_GROWTH = 4.0


def _repair(problem: AllocationProblem, arm: np.ndarray) -> tuple[np.ndarray, int]:
    """Move treated users to control until ``problem.violations`` is empty.

    A MIP solver accepts constraint violations up to its feasibility tolerance (~1e-9 after
    tightening). When that shows up as a violation, the treated user with the smallest gain per
    unit of the most violated row is moved to control. Returns the policy and how many moved.
    """
    arm = arm.copy()
    moved = 0
    rows = {name: coef for name, coef, _, _ in _row_matrices(problem)}
    idx = np.arange(problem.n_users)
    while True:
        if not problem.violations(arm):
            return arm, moved
        s = make_slacks(problem, arm)
        name = min((k for k in s if k in rows), key=lambda k: s[k])
        use = rows[name][idx, arm]
        cand = np.flatnonzero((arm > 0) & (use > 0))
        if cand.size == 0:
            raise AssertionError(f"cannot repair row {name}: no treated user uses it")
        ratio = problem.gain[cand, arm[cand]] / use[cand]
        arm[cand[np.argmin(ratio)]] = 0
        moved += 1


def _mip_reason(reason: str, moved: int) -> str:
    if moved:
        return f"{reason}; moved {moved} user(s) to control to fix solver-tolerance violations"
    return reason


def solve_mip(problem: AllocationProblem, backend: str = "SCIP", time_limit: float | None = None,
              *, reason: str = "exact MIP requested", gap_limit: float | None = None) -> Allocation:
    """Solve the MIP with OR-Tools' linear solver wrapper and ``backend`` in ``MIP_BACKENDS``.

    Relative MIP gap is set to ``PROOF_GAP`` (1e-9; the wrapper's default is 1e-4) and primal tolerance to 1e-9.
    Tolerance-level violations left by the solver are repaired (see :func:`_repair`); the count is
    in ``solver_reason`` and such a result is "feasible", not "optimal". ``bound`` is the smaller
    of the GLOP Lagrangian bound and the solver's best bound (+1e-9 relative for its gap).

    With a ``time_limit`` the search runs in rounds (``STALL_FIRST_ROUND`` seconds, then ``STALL_GROWTH`` times
    longer, each started from the last incumbent) and stops when a round proves optimality or finds nothing
    better than the round before: SCIP often has its final incumbent within a second and then spends any limit
    failing to prove a gap of a few users' worth (2,850 users x 3 promotions, two arm caps and three segment
    budgets: the same policy after 1 s as after 120 s, gap 1.4e-4, certified either way). Without a limit, one
    search to the end. ``gap_limit``: stop at that relative gap instead (the result is "feasible", with its
    certified gap), for questions that need a close answer fast rather than a proof (a budget curve's points).
    """
    from ortools.linear_solver import pywraplp

    t0 = time.perf_counter()
    backend = backend.upper()
    if backend not in MIP_BACKENDS:
        raise PromoOptError(f"backend = {backend!r}; expected one of {', '.join(MIP_BACKENDS)}")
    if pywraplp.Solver.CreateSolver(backend) is None:
        raise PromoOptError(f"this OR-Tools build has no {backend} solver; use backend='CBC' or 'SCIP'")
    m = _build_model(problem)
    name = f"mip-{backend.lower()}"
    if m.n_pairs == 0:
        return finish(problem, np.zeros(problem.n_users, np.int64), bound=0.0, n_fractional=0,
                      solver=name, solver_reason=reason, seconds=time.perf_counter() - t0,
                      status="optimal")
    status, stalled, solver, xs = _search(lambda: _mip_solver(backend, problem, m, gap_limit), time_limit, t0)
    if stalled:
        reason = f"{reason}; stopped when a {STALL_GROWTH:g}x longer search found no better policy"
    if status == pywraplp.Solver.INFEASIBLE:
        raise InfeasibleError(f"{backend} proved the problem infeasible; check the capacities")
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise PromoOptError(
            f"{backend} stopped with status {status} and no solution"
            + (f" within time_limit = {time_limit:g} s; raise time_limit" if time_limit is not None else "")
        )
    chosen = np.array([v.solution_value() > 0.5 for v in xs], dtype=bool)
    arm, moved = _repair(problem, _arm_from_pairs(problem, m, chosen))
    lp = lp_relaxation(problem)
    best = solver.Objective().BestBound()
    bound = min(lp.bound, best + 1e-9 * max(1.0, abs(best)))
    proved = status == pywraplp.Solver.OPTIMAL and moved == 0 and gap_limit is None
    return finish(problem, arm, bound=bound, n_fractional=0, solver=name,
                  solver_reason=_mip_reason(reason, moved), seconds=time.perf_counter() - t0,
                  status="optimal" if proved else "feasible", multipliers=lp.multipliers)


def _mip_solver(backend: str, problem: AllocationProblem, m, gap_limit: float | None = None):
    """A fresh OR-Tools solver holding the MIP of ``m`` (:func:`_build_model`), its variables, and the search
    parameters (relative gap ``gap_limit``, default ``PROOF_GAP``, and primal tolerance 1e-9). Fresh for every round
    of :func:`_search`: SCIP asked to solve a second time in the same solver failed ("No memory", status 4) on a
    2,850-user problem."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver(backend)
    inf = solver.infinity()
    xs = [solver.BoolVar("") for _ in range(m.n_pairs)]
    starts = np.searchsorted(m.users, np.arange(problem.n_users + 1))
    for i in np.flatnonzero(np.diff(starts) > 1):  # at most one arm per user
        ct = solver.Constraint(-inf, 1.0)
        for j in range(starts[i], starts[i + 1]):
            ct.SetCoefficient(xs[j], 1.0)
    for row in m.rows:
        ct = solver.Constraint(-inf, row.rhs)
        for j, c in zip(row.pairs.tolist(), row.coef.tolist()):
            ct.SetCoefficient(xs[j], c)
    obj = solver.Objective()
    for v, c in zip(xs, m.gain.tolist()):
        obj.SetCoefficient(v, c)
    obj.SetMaximization()
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, PROOF_GAP if gap_limit is None else gap_limit)
    params.SetDoubleParam(pywraplp.MPSolverParameters.PRIMAL_TOLERANCE, 1e-9)
    return solver, xs, params


def _search(build, time_limit: float | None, t0: float):
    """(status, stalled, solver, variables) of the rounds of :func:`solve_mip` within ``time_limit`` seconds from
    ``t0`` (one search to the end without a limit); ``build()`` gives a fresh (solver, variables, parameters).
    Each round starts from the last round's incumbent (a hint) and is at least ``STALL_FIRST_ROUND`` seconds and
    four times the time a build takes; ``stalled``: a round found nothing better than the one before it."""
    from ortools.linear_solver import pywraplp

    tb = time.perf_counter()
    solver, xs, params = build()
    if time_limit is None:
        return solver.Solve(params), False, solver, xs
    found = (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE)
    length = max(STALL_FIRST_ROUND, 4 * (time.perf_counter() - tb))
    best = hint = kept = None
    rounds = 0
    while True:
        left = time_limit - (time.perf_counter() - t0)
        last = left <= length * (1 + STALL_GROWTH)  # too little time for the round after this one: use it all
        if rounds:
            solver, xs, params = build()
            if hint is not None:
                solver.SetHint(xs, hint)
        rounds += 1
        solver.SetTimeLimit(max(1, int(1000 * (left if last else length))))
        status = solver.Solve(params)
        if status not in found:
            if best is not None:  # a round that ended without its hint: the last round's incumbent stands
                kept_status, kept_solver, kept_xs = kept
                return kept_status, False, kept_solver, kept_xs
            if not last and status == pywraplp.Solver.NOT_SOLVED:
                length *= STALL_GROWTH  # no incumbent yet: a longer round
                continue
            return status, False, solver, xs
        value = solver.Objective().Value()
        if status == pywraplp.Solver.OPTIMAL or last:
            return status, False, solver, xs
        if best is not None and value <= best + 1e-9 * max(1.0, abs(best)):
            return status, True, solver, xs
        best, hint, kept = value, [v.solution_value() for v in xs], (status, solver, xs)
        length *= STALL_GROWTH


def solve_pulp(problem: AllocationProblem, time_limit: float | None = None,
               *, reason: str = "independent PuLP/CBC cross-check requested",
               gap_limit: float | None = None) -> Allocation:
    """Solve the same MIP through PuLP and its bundled CBC (an independent cross-check).

    ``bound`` is the GLOP Lagrangian bound (PuLP does not expose CBC's best bound).
    """
    import pulp

    t0 = time.perf_counter()
    m = _build_model(problem)
    if m.n_pairs == 0:
        return finish(problem, np.zeros(problem.n_users, np.int64), bound=0.0, n_fractional=0,
                      solver="pulp-cbc", solver_reason=reason, seconds=time.perf_counter() - t0,
                      status="optimal")
    prob = pulp.LpProblem("allocation", pulp.LpMaximize)
    # variables
    xs = [prob.add_variable(f"x{j}", cat=pulp.LpBinary) for j in range(m.n_pairs)]
    # objective
    prob += pulp.LpAffineExpression(zip(xs, m.gain.tolist()))
    # constraints
    starts = np.searchsorted(m.users, np.arange(problem.n_users + 1))
    for i in np.flatnonzero(np.diff(starts) > 1):
        prob += pulp.lpSum(xs[starts[i]:starts[i + 1]]) <= 1, f"one_arm_{i}"
    for row in m.rows:
        expr = pulp.LpAffineExpression(zip([xs[j] for j in row.pairs.tolist()], row.coef.tolist()))
        prob += expr <= row.rhs, row.name
    # solve
    cmd = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=PROOF_GAP if gap_limit is None else gap_limit)
    prob.solve(cmd)
    status = pulp.LpStatus[prob.status]
    if status == "Infeasible":
        raise InfeasibleError("PuLP/CBC proved the problem infeasible; check the capacities")
    # with a time limit CBC can stop with a feasible but unproved solution (sol_status 2)
    has_solution = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    if status != "Optimal" or not has_solution:
        raise PromoOptError(f"PuLP/CBC stopped with status {status!r} and no usable solution"
                            + (f" within time_limit = {time_limit:g} s" if time_limit is not None else ""))
    chosen = np.array([(v.varValue or 0.0) > 0.5 for v in xs], dtype=bool)
    arm, moved = _repair(problem, _arm_from_pairs(problem, m, chosen))
    lp = lp_relaxation(problem)
    proved = prob.sol_status == pulp.LpSolutionOptimal and moved == 0 and gap_limit is None
    return finish(problem, arm, bound=lp.bound, n_fractional=0, solver="pulp-cbc",
                  solver_reason=_mip_reason(reason, moved), seconds=time.perf_counter() - t0,
                  status="optimal" if proved else "feasible", multipliers=lp.multipliers)
