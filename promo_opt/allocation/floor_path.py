"""Plan points under a binding ROI floor, warm-started from multipliers recorded once per floor.

Notation of :mod:`promo_opt.allocation.dual` (``a = revenue - min_roi * spend``)::

    V(B) = max sum g   s.t.   sum c <= B,   sum a >= 0        (LP relaxation; the plan's problem)

Without a floor every budget is a prefix of one sorted path (:mod:`~promo_opt.allocation.frontier`).
With one, the optimum at B is the Lagrangian choice at its multipliers ``(lam(B), mu(B))`` plus
a few fractional users. What this module uses, checked on paper:

1. ``lam(B) = V'(B)`` is non-increasing: V is concave (an LP's value in its right-hand side).
2. Below ``B_0``, where the budget-only LP path first breaks the floor, ``mu = 0`` and the path
   itself answers (``frontier.plan`` re-solves only points that break the floor).
3. At and above ``S_F``, the spend of the floor-only optimum (budget = inf, multipliers
   ``(0, mu_F)``), that optimum is feasible, hence optimal: ``(lam, mu) = (0, mu_F)``. Once B also
   exceeds what the users left free could ever spend, no budget comparison is left in the solve
   and the answer is the same for every larger B: it is computed once and cached.
4. A KKT point needs no bisection when mu is given: on the budget-only path of the shifted gains
   ``g + mu * a`` (sorted hull segments), cut where the ROI slack crosses 0. At that budget
   ``B(mu)`` the 1-D LP is optimal for the Lagrangian, the floor is tight (complementary
   slackness) and the cut slope is lam. So the grid is taken in mu, ``mu_k = mu_F * k / G``
   (``k = 0`` gives ``B_0``), each point's budget and lam exact on all users.
5. ``mu(B)`` is not monotone in general (the path's late segments may have a better ROI than its
   early ones). Typically it rises from 0 at ``B_0`` to ``mu_F`` at ``S_F`` while lam falls, and
   the multipliers of every B between grid points k and k+1 lie in the box
   ``[lam_{k+1}, lam_k] x [mu_k, mu_{k+1}]``. Nothing relies on it for exactness: it is checked.

Build (once per scored set and floor): the floor-only optimum (one cold solve), lam at each
``mu_k`` estimated on a subsample (only to place windows), then per first-level interval one pass
over the users (:func:`~promo_opt.allocation.dual._corner_choices` at the corners of a box in
(lam, mu)): users whose Lagrangian choice is the same at all four corners keep it in the whole
box (each arm's region in (lam, mu) space is convex), so their totals are summed once; the others
are the interval's free users, on whom the exact end point ``(B_{k+1}, lam_{k+1})`` is found by
rule 4. Each interval is then halved at an exact mid point, on its own free users only, until it
has at most ``free_target`` of them.

Query at B (interval k with ``B_k <= B < B_{k+1}``): the exact two-constraint LP of the free users
with the budget and floor left by the fixed ones (:func:`~promo_opt.allocation.dual.solve_exact`).
If its multipliers fall inside the box, the KKT conditions hold for everyone: it is the LP
optimum. It is then rounded by :func:`~promo_opt.allocation.dual.round_at`, the rounding every
engine of ``solve_dual`` uses, inside the box (boxes are padded by 1.1 x the rounding width), so
the policy is the one a cold ``solve_dual`` returns. Multipliers outside the box (non-monotone
path), or a rounding box that does not fit: the neighbouring interval, then a cold ``solve_dual``.
O(free users of one interval) per point instead of several passes over every user.

Where the optimal multipliers are not unique (a budget exactly at ``B_0``, where the floor is
tight with mu = 0 up to round-off; flat pieces of tiny problems) the warm and the cold solve may
pick different optimal multipliers and so round different users: both are the LP optimum
rounded, but the policies can differ. Such budgets are a set of measure zero for real scores.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from promo_opt.allocation.dual import (
    BOX_EPS,
    OutsideBox,
    _corner_choices,
    box_corners,
    hull_segments,
    round_at,
    rounding_width,
    solve_dual,
    solve_exact,
)
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.errors import InfeasibleError

log = logging.getLogger(__name__)

SAMPLE = 50_000  # users of the subsample that places the windows of the exact grid points
FREE_TARGET = 3_000  # intervals are halved until they have at most this many free users
# two grid points' budgets this close (relative) are equal: the sums behind them differ in the last bits only
BUDGET_ROUNDOFF = 1e-9


def solve_point(problem: AllocationProblem, conversions: np.ndarray, budget: float) -> dict:
    """A plan point by a cold ``solve_dual`` at ``budget`` under ``problem.min_roi`` (totals only).

    Keys: spend, conversions, revenue, gain, marginal (lambda), counts (K,), spend_per_arm (K,).
    """
    K = problem.n_arms
    sub = AllocationProblem(problem.gain, problem.spend, problem.revenue, budget=budget, min_roi=problem.min_roi)
    res = solve_dual(sub, reason="plan point re-solved under the ROI floor")
    rows = np.arange(problem.n_users)
    return {"spend": res.spend, "conversions": float(conversions[rows, res.arm].sum()),
            "revenue": res.revenue, "gain": res.objective, "marginal": res.multipliers.get("lambda_budget", 0.0),
            "counts": np.bincount(res.arm, minlength=K),
            "spend_per_arm": np.bincount(res.arm, weights=problem.spend[rows, res.arm], minlength=K)}


@dataclass
class Interval:
    """Budgets from ``budget`` to the next interval's: their multipliers lie in ``box`` (if monotone).

    ``free`` (sorted user ids): users whose Lagrangian choice varies over the box; ``fixed``: totals
    of the others at their (constant) choice: spend, revenue, gain, conversions (floats),
    counts and spend_per_arm ((K,) arrays).
    """

    budget: float
    box: tuple[float, float, float, float]  # lam_lo, lam_hi, mu_lo, mu_hi
    free: np.ndarray
    fixed: dict
    constant_from: float = np.inf  # budgets at or above it all get the same answer (last interval)


class _IntervalAccess:
    """``round_at``'s view of one interval: splits only its free users, refuses corners outside its box."""

    def __init__(self, interval: Interval, g, c, r, R: float, n_users: int):
        self.interval, self.g, self.c, self.r, self.R = interval, g, c, r, R
        self.n = n_users  # the problem's: round_at's box width depends on it

    def split(self, corners):
        lam_lo, lam_hi, mu_lo, mu_hi = self.interval.box
        if any(not (lam_lo <= lam <= lam_hi and mu_lo <= mu <= mu_hi) for lam, mu in corners):
            raise OutsideBox(f"corners {corners} leave the interval's box {self.interval.box}")
        ref, same = _corner_choices(self.g, self.c, self.r, corners, self.R)
        free, fixed = np.flatnonzero(~same), np.flatnonzero(same)
        fc = self.interval.fixed["spend"] + float(self.c[fixed, ref[fixed]].sum())
        fr = self.interval.fixed["revenue"] + float(self.r[fixed, ref[fixed]].sum())

        def policy(free_arm):  # arms of the interval's free users (local order)
            arm = ref.copy()
            arm[free] = free_arm
            return arm

        return fc, fr, free, (self.g[free], self.c[free], self.r[free] - self.R * self.c[free]), policy


def _crossing(g, c, a, mu: float, fixed_spend: float, fixed_a: float, lam_lo: float, lam_hi: float):
    """Rule 4 on these users: where the path of ``g + mu * a`` first loses its ROI slack, cut slope in the window.

    The other users add ``fixed_spend`` and ``fixed_a`` (their choice is constant in the window).
    Returns ``("ok", budget, lam)``, ``("above", ...)`` when the slack is already negative at
    ``lam_hi`` (the crossing has a larger lam) or ``("below", ...)`` when none is found down to ``lam_lo``.
    """
    seg = hull_segments(g + mu * a if mu else g, c, a)
    rows = np.arange(len(g))
    base_c = fixed_spend + float(c[rows, seg.start].sum())
    base_a = fixed_a + float(a[rows, seg.start].sum())
    order = np.argsort(-seg.slope, kind="stable")
    slope, dc, da = seg.slope[order], seg.dc[order], seg.da[order]
    slack = base_a + np.concatenate([[0.0], np.cumsum(da)])  # slack after the first t segments
    spend = base_c + np.concatenate([[0.0], np.cumsum(dc)])
    t_top = int(np.sum(slope > lam_hi))  # taken at lam_hi
    t_bot = int(np.sum(slope >= lam_lo))  # taken at lam_lo
    if slack[t_top] < 0:
        return "above", np.nan, np.nan
    neg = np.flatnonzero(slack[t_top + 1: t_bot + 1] < 0)
    if not neg.size:
        return "below", np.nan, np.nan
    t = t_top + int(neg[0])
    frac = slack[t] / -da[t]  # slack[t] >= 0 > slack[t + 1]: da[t] < 0
    return "ok", float(spend[t] + frac * dc[t]), float(slope[t])


class FloorPath:
    """Plan points under ``problem.min_roi`` at any budget: :meth:`point` (same dict as :func:`solve_point`).

    Built lazily on the first :meth:`point` (thread-safe), so holding one costs nothing until a
    budget breaks the floor: ``n_grid`` passes over the users (one per first-level interval in
    mu), then each interval halved on its own free users until it has at most ``free_target``.
    ``cold_points`` counts the points that fell back to a cold solve.
    """

    def __init__(self, problem: AllocationProblem, conversions: np.ndarray, n_grid: int = 8,
                 free_target: int = FREE_TARGET, seed: int = 0):
        if problem.min_roi is None:
            raise ValueError("FloorPath needs a problem with min_roi")
        self.problem, self.conversions = problem, conversions
        self.n_grid, self.free_target, self.seed = int(n_grid), int(free_target), seed
        self.pad = 1.1 * rounding_width(problem.n_users)  # room in every box for the rounding box (and round-off)
        self.intervals: list[Interval] | None = None
        self.cold_points = 0
        self.build_seconds = 0.0
        self._constant: dict | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- build
    def _ensure_built(self) -> list[Interval]:
        if self.intervals is None:
            with self._lock:
                if self.intervals is None:
                    t0 = time.perf_counter()
                    self.intervals = self._build()
                    self.build_seconds = time.perf_counter() - t0
                    sizes = [iv.free.size for iv in self.intervals] or [0]
                    log.info("floor path: %d intervals (free users: median %d, max %d) built in %.2fs",
                             len(self.intervals), int(np.median(sizes)), max(sizes), self.build_seconds)
        return self.intervals

    def _totals(self, rows, ref, same) -> tuple[dict, np.ndarray]:
        """Totals of the users ``rows[same]`` at their choice ``ref[same]``, and the others' ids."""
        p = self.problem
        fixed = rows[same]
        arm = ref[same]
        spend = p.spend[fixed, arm]
        K = p.n_arms
        totals = {"spend": float(spend.sum()), "revenue": float(p.revenue[fixed, arm].sum()),
                  "gain": float(p.gain[fixed, arm].sum()), "conversions": float(self.conversions[fixed, arm].sum()),
                  "counts": np.bincount(arm, minlength=K), "spend_per_arm": np.bincount(arm, weights=spend, minlength=K)}
        return totals, rows[~same]

    def _split(self, rows, box):
        """Users ``rows`` (sorted ids) split at ``box``: (totals of the fixed ones, ids of the free ones)."""
        p = self.problem
        ref, same = _corner_choices(p.gain[rows], p.spend[rows], p.revenue[rows], box_corners(*box), p.min_roi)
        return self._totals(rows, ref, same)

    def _split_all(self, box):
        """Every user split at ``box``: one chunked pass over the data."""
        p = self.problem
        ref, same = _corner_choices(p.gain, p.spend, p.revenue, box_corners(*box), p.min_roi)
        return self._totals(np.arange(p.n_users), ref, same)

    def _box(self, lam_lo: float, lam_hi: float, mu_lo: float, mu_hi: float) -> tuple[float, float, float, float]:
        """The box of the multipliers ``[lam_lo, lam_hi] x [mu_lo, mu_hi]`` padded to hold any rounding box
        (:func:`~promo_opt.allocation.dual.canonical_box`) centred in it."""
        eps = 2 * BOX_EPS
        return (max(0.0, lam_lo * (1 - self.pad) - eps), lam_hi * (1 + self.pad) + eps,
                max(0.0, mu_lo * (1 - self.pad) - eps), mu_hi * (1 + self.pad) + eps)

    def _rows(self, ids):
        p = self.problem
        g, c, r = p.gain[ids], p.spend[ids], p.revenue[ids]
        return g, c, r - p.min_roi * c

    def _merge(self, fixed: dict, more: dict) -> dict:
        return {k: fixed[k] + more[k] for k in fixed}

    def _estimate_lams(self, mus) -> np.ndarray:
        """lam at each mu on a subsample (rule 4, whole window): only to place the exact solves' windows."""
        n = self.problem.n_users
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n, size=min(SAMPLE, n), replace=False))
        g, c, a = self._rows(sample)
        out = np.full(len(mus), np.nan)
        for k, mu in enumerate(mus):
            status, _, lam = _crossing(g, c, a, mu, 0.0, 0.0, 0.0, np.inf)
            if status == "ok":
                out[k] = lam
        return out

    def _build(self) -> list[Interval]:
        p = self.problem
        R = p.min_roi
        floor_only = solve_dual(AllocationProblem(p.gain, p.spend, p.revenue, min_roi=R),
                                reason="floor-only optimum of a plan under the ROI floor")
        mu_f = floor_only.multipliers["mu_roi"]
        if mu_f <= 0:
            log.info("floor path: the floor does not bind at any budget's end (mu_F = 0): no grid")
            return []
        G = max(self.n_grid, 1)
        mus = mu_f * np.arange(G) / G
        est = self._estimate_lams(mus)
        if not np.isfinite(est[0]):
            log.info("floor path: the subsample's budget-only path never breaks the floor: no grid")
            return []
        est = np.fmin.accumulate(np.where(np.isfinite(est), est, 0.0))  # lam falls with mu (rule 1/5)
        intervals: list[Interval] = []
        lam_prev = None  # exact lam at mus[k]
        budget_prev = None
        for k in range(G):
            mu_lo, mu_hi = mus[k], (mus[k + 1] if k + 1 < G else mu_f)
            last = k + 1 == G
            # window in lam covering this interval's left end (known, or estimated for k = 0) and its right end
            top = lam_prev if lam_prev is not None else est[0] * 1.25
            bottom = 0.0 if last else max(0.0, est[k + 1] - 0.5 * (top - est[k + 1]) - 0.05 * top)
            for attempt in range(6):
                box = self._box(bottom, top, mu_lo, mu_hi)
                fixed, free = self._split_all(box)
                fa = fixed["revenue"] - R * fixed["spend"]
                g, c, a = self._rows(free)
                status = "ok"
                if lam_prev is None:  # the left end (mu = 0): B_0 and lam_0
                    status, b0, lam0 = _crossing(g, c, a, mu_lo, fixed["spend"], fa, bottom, top)
                    if status == "above":
                        top *= 1.5
                        continue
                    if status == "ok":
                        budget_prev, lam_prev, top = b0, lam0, lam0
                if status == "ok" and not last:
                    status, b1, lam1 = _crossing(g, c, a, mu_hi, fixed["spend"], fa, bottom, top)
                if status == "below":
                    bottom = max(0.0, bottom - 2 * (top - bottom) - 0.05 * top)
                    continue
                if status == "above":  # lam rises with mu here: not the monotone case this grid serves
                    log.warning("floor path: lam rises with mu at mu=%.6g; grid stops at %d intervals", mu_hi, k)
                    return intervals
                break
            else:
                log.warning("floor path: no window closed at mu=%.6g; grid stops at %d intervals", mu_hi, k)
                return intervals
            lam_end = 0.0 if last else lam1
            if not last and budget_prev - b1 <= BUDGET_ROUNDOFF * max(abs(budget_prev), 1.0):
                b1 = max(b1, budget_prev)  # equal up to round-off (a flat piece): an empty interval, not a fall
            if not last and b1 < budget_prev:
                log.warning("floor path: budget falls as mu rises (%.6g < %.6g); grid stops at %d intervals",
                            b1, budget_prev, k)
                return intervals
            right = (np.inf if last else b1, lam_end, mu_hi)
            intervals += self._refine(fixed, free, (budget_prev, lam_prev, mu_lo), right, last)
            if not last:
                budget_prev, lam_prev = b1, lam1
        return intervals

    def _refine(self, fixed: dict, free: np.ndarray, left, right, last: bool, depth: int = 0) -> list[Interval]:
        """Intervals between the exact grid points ``left`` and ``right`` (``(budget, lam, mu)`` each).

        ``free``: users that may vary over a box containing both; the others' totals are ``fixed``.
        Halves the mu range at an exact mid point (rule 4 on ``free`` alone) until an interval has
        at most ``free_target`` free users.
        """
        (b_lo, lam_lo, mu_lo), (b_hi, lam_hi, mu_hi) = left, right
        box = self._box(min(lam_lo, lam_hi), max(lam_lo, lam_hi), mu_lo, mu_hi)
        more, free = self._split(free, box)
        fixed = self._merge(fixed, more)
        if free.size > self.free_target and depth < 12:
            mu_mid = 0.5 * (mu_lo + mu_hi)
            g, c, a = self._rows(free)
            fa = fixed["revenue"] - self.problem.min_roi * fixed["spend"]
            status, b, lam = _crossing(g, c, a, mu_mid, fixed["spend"], fa, min(lam_lo, lam_hi), max(lam_lo, lam_hi))
            if status == "ok" and b_lo < b < b_hi:
                mid = (b, lam, mu_mid)
                return (self._refine(fixed, free, left, mid, False, depth + 1)
                        + self._refine(fixed, free, mid, right, last, depth + 1))
        iv = Interval(budget=b_lo, box=box, free=free, fixed=fixed)
        if last:
            iv.constant_from = fixed["spend"] + float(self.problem.spend[free].max(axis=1).sum())
        return [iv]

    # ---------------------------------------------------------------- query
    def point(self, budget: float) -> dict:
        """The plan point at ``budget`` under the floor: the policy a cold ``solve_dual`` returns."""
        intervals = self._ensure_built()
        starts = np.array([iv.budget for iv in intervals])
        k = int(np.searchsorted(starts, budget, side="right")) - 1
        tried = set()
        while 0 <= k < len(intervals) and k not in tried:
            tried.add(k)
            out = self._solve_in(intervals[k], budget)
            if isinstance(out, dict):
                return out
            k += out  # +1 / -1: the multipliers point to a neighbour; 0: give up
            if out == 0:
                break
        self.cold_points += 1
        log.info("floor path: budget %.6g answered by a cold solve", budget)
        return solve_point(self.problem, self.conversions, budget)

    def _solve_in(self, iv: Interval, budget: float):
        if budget >= iv.constant_from and self._constant is not None:
            return self._constant
        p = self.problem
        R = p.min_roi
        if budget < iv.fixed["spend"]:
            return -1
        g, c, r = p.gain[iv.free], p.spend[iv.free], p.revenue[iv.free]
        fa = iv.fixed["revenue"] - R * iv.fixed["spend"]
        try:
            ex = solve_exact(g, c, r - R * c, budget - iv.fixed["spend"], -fa, True, mu_bracket=iv.box[2:])
        except InfeasibleError:
            return 0
        lam_lo, lam_hi, mu_lo, mu_hi = iv.box
        if not (lam_lo <= ex.lam <= lam_hi and mu_lo <= ex.mu <= mu_hi):
            return 1 if (ex.mu > mu_hi or ex.lam < lam_lo) else -1
        try:
            rounded = round_at(_IntervalAccess(iv, g, c, r, R, p.n_users), budget, ex.lam, ex.mu)
        except OutsideBox:
            return 0
        if rounded is None:
            return 0
        arm = rounded[0]
        rows = np.arange(iv.free.size)
        spend = c[rows, arm]
        K = p.n_arms
        f = iv.fixed
        out = {"spend": f["spend"] + float(spend.sum()), "revenue": f["revenue"] + float(r[rows, arm].sum()),
               "gain": f["gain"] + float(g[rows, arm].sum()),
               "conversions": f["conversions"] + float(self.conversions[iv.free[rows], arm].sum()),
               "marginal": ex.lam, "counts": f["counts"] + np.bincount(arm, minlength=K),
               "spend_per_arm": f["spend_per_arm"] + np.bincount(arm, weights=spend, minlength=K)}
        if budget >= iv.constant_from:
            self._constant = out
        return out
