"""The fast exact path: the LP relaxation of the multiple-choice knapsack solved by its dual.

Notation (shapes ``(n_users, n_arms)``, control at column 0 with zeros)::

    g = gain, c = spend, a = revenue - min_roi * spend     (ROI constraint: sum a >= 0)

Lagrangian dual of the LP relaxation, with multipliers lam >= 0 (budget) and mu >= 0 (ROI)::

    D(lam, mu) = sum_i max_k (g + mu * a - lam * c)[i, k] + lam * budget

Any (lam, mu) gives an upper bound D >= LP optimum >= integer optimum (weak duality); that is
the certificate every result carries, computed by one pass over all users.

One constraint (budget; mu fixed): each user's useful arms are the vertices of the upper
concave hull of its (spend, gain) points. Sorting all hull segments by slope (marginal gain
per unit of spend) and taking them greedily solves the LP exactly (Sinha & Zoltners 1979), with
at most one fractional segment; the slope where the budget runs out is lam. The same sort gives
the optimal policy for every budget: the frontier.

Two constraints: for fixed mu the 1-D problem with gains g + mu * a has LP value V(mu), and
min_mu V(mu) is the LP optimum (strong duality). V is convex; its slope is the ROI slack of the
1-D solution, which is non-decreasing in mu, so mu* is found by bisection on the slack's sign.

Large instances: the multipliers are estimated on a random subsample; users whose Lagrangian
choice is the same at the four corners of a box around them are fixed (each arm's region in
(lam, mu) space is convex, so the choice is the same in the whole box), and only the few users
left free are solved exactly. If the exact multipliers of that reduced problem fall inside the
box, the KKT conditions hold for everyone and the combined solution is optimal; otherwise the
box is widened and the step repeated.

Rounding with an ROI floor (:func:`round_at`): the integer policy is a function of the LP
optimum alone, not of how its multipliers were found. Every engine (direct, reduced, Spark, and
the plan's warm path in :mod:`promo_opt.allocation.floor_path`) first finds the exact (lam*, mu*),
then splits the users at a narrow canonical box around them (relative half-width
:func:`rounding_width`, a function of the number of users only) and rounds the exact LP of the
users left free. The same multipliers give the same free users, hence the same policy,
whichever engine or box found them; before, the direct and the reduced paths rounded different
sets of users and could differ by a fractional user's gain.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numba
import numpy as np

from promo_opt.allocation.problem import Allocation, AllocationProblem, finish
from promo_opt.errors import InfeasibleError

log = logging.getLogger(__name__)

DIRECT_LIMIT = 400_000  # users solved without the subsample/box reduction
ROUNDING_USERS = 2_000  # the rounding box's relative half-width is this over the number of users
BOX_EPS = 1e-12  # absolute widening of the rounding box (multipliers that are 0 up to round-off)
_FILL_SCAN = 50_000  # segments scanned after the LP cut to spend leftover budget


# --------------------------------------------------------------------------------------------
# Hull segments for one knapsack constraint
# --------------------------------------------------------------------------------------------
@dataclass
class Segments:
    """Upper-hull segments of every user, in generation order (a user's segments in path order).

    ``start`` (n,) is each user's starting arm (best zero-cost arm); segment j moves user
    ``user[j]`` to arm ``to[j]`` adding ``dc[j]`` spend, ``dg[j]`` gain and ``da[j]`` ROI slack.
    """

    start: np.ndarray
    user: np.ndarray
    frm: np.ndarray
    to: np.ndarray
    dc: np.ndarray
    dg: np.ndarray
    da: np.ndarray
    slope: np.ndarray  # dg / dc: marginal gain per unit of spend (dc > 0 always)


@numba.njit(cache=True, nogil=True)
def _hull_kernel(g, c, a, rows, start, thr, user, frm, to, dc, dg, da, slope):  # pragma: no cover - compiled
    """Per user in ``rows``: walk the upper concave hull from ``start``; write segments user-major.

    Among arms of equal slope the farthest is taken (collinear points merge), so each user's
    slopes strictly decrease and any sort by slope keeps its segments in path order.
    """
    K = g.shape[1]
    m = 0
    for i in rows:
        cur = start[i]
        first = True
        while True:
            best, best_dg, best_dc = -1, 0.0, 1.0
            c0, g0 = c[i, cur], g[i, cur]
            for k in range(K):
                d_c = c[i, k] - c0
                d_g = g[i, k] - g0
                if d_c > 0.0 and d_g > 0.0:
                    # d_g / d_c vs best_dg / best_dc without dividing (both spends positive)
                    lhs, rhs = d_g * best_dc, best_dg * d_c
                    if best < 0 or lhs > rhs or (lhs == rhs and d_c > best_dc):
                        best, best_dg, best_dc = k, d_g, d_c
            if best < 0:
                break
            best_slope = best_dg / best_dc
            if first and best_slope <= thr:
                break  # the user's steepest segment is not above thr: leave it out entirely
            first = False
            user[m] = i
            frm[m] = cur
            to[m] = best
            dc[m] = c[i, best] - c[i, cur]
            dg[m] = g[i, best] - g[i, cur]
            da[m] = a[i, best] - a[i, cur]
            slope[m] = best_slope
            m += 1
            cur = best
    return m


def best_free_arm(g: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each user's best zero-spend arm (the control, unless a free arm gains): where paths start."""
    free_gain = (c[:, 1:] <= 0) & (g[:, 1:] > 0)
    if not free_gain.any():
        return np.zeros(len(g), dtype=np.int64)
    return np.where(c <= 0, g, -np.inf).argmax(axis=1)


def hull_segments(g: np.ndarray, c: np.ndarray, a: np.ndarray, rows: np.ndarray | None = None,
                  start: np.ndarray | None = None, above: float = -np.inf) -> Segments:
    """Concave-hull path of each user from its best zero-cost arm through arms of more spend.

    Only segments with positive gain and positive spend are kept: with lam >= 0 a segment of
    non-positive gain is never worth taking. Segments come user by user, in path order, with
    strictly decreasing slopes. ``rows`` restricts the paths to those users (ids stay global);
    users whose steepest segment is not above ``above`` get no segments.
    One compiled pass, O(n K^2).
    """
    n, K = g.shape
    if start is None:
        start = best_free_arm(g, c)
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    cap = rows.size * max(K - 1, 0)
    arm_t = np.int16 if K < 2**15 else np.int64  # small arm codes: less memory traffic in sorts/gathers
    user = np.empty(cap, dtype=np.int64)
    frm = np.empty(cap, dtype=arm_t)
    to = np.empty(cap, dtype=arm_t)
    dc, dg, da, slope = np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap)
    m = _hull_kernel(np.ascontiguousarray(g), np.ascontiguousarray(c), np.ascontiguousarray(a), rows,
                     start.astype(np.int64), float(above), user, frm, to, dc, dg, da, slope) if rows.size else 0
    return Segments(start=start, user=user[:m], frm=frm[:m], to=to[:m], dc=dc[:m], dg=dg[:m], da=da[:m],
                    slope=slope[:m])


@dataclass
class LP1D:
    """Exact LP solution of one knapsack: sorted segments, how many are taken, the fraction."""

    seg: Segments
    order: np.ndarray  # segment indices by decreasing slope
    n_full: int  # order[:n_full] taken fully
    frac: float  # share of order[n_full] taken (0 when none)
    lam: float  # budget multiplier (slope at the cut; 0 when the budget does not bind)
    value: float  # LP objective in the (possibly mu-shifted) gains of the segments

    def totals(self, field: np.ndarray) -> float:
        """LP total of a segment field (dc, dg or da), start vertices excluded."""
        idx = self.order[: self.n_full]
        t = float(field[idx].sum())
        if self.frac > 0:
            t += self.frac * float(field[self.order[self.n_full]])
        return t


def solve_lp_1d(seg: Segments, base_value: float, base_spend: float, budget: float) -> LP1D:
    """Greedy LP over segments sorted by slope; exact for the multiple-choice knapsack LP."""
    slope = seg.slope
    room = budget - base_spend
    if float(seg.dc.sum()) <= room:  # the budget does not bind: take every segment, no sort needed
        order = np.arange(seg.dc.size)
        return LP1D(seg=seg, order=order, n_full=order.size, frac=0.0, lam=0.0,
                    value=base_value + float(seg.dg.sum()))
    order = np.argsort(-slope)  # a user's slopes strictly decrease: any order keeps its path order
    cum = np.cumsum(seg.dc[order])
    n_full = int(np.searchsorted(cum, room, side="right"))
    frac, lam = 0.0, 0.0
    if n_full < order.size:
        j = order[n_full]
        used = cum[n_full - 1] if n_full else 0.0
        frac = float(np.clip((room - used) / seg.dc[j], 0.0, 1.0)) if seg.dc[j] > 0 else 0.0
        lam = float(slope[j])
    value = base_value + float(seg.dg[order[:n_full]].sum()) + (frac * float(seg.dg[order[n_full]]) if frac else 0.0)
    return LP1D(seg=seg, order=order, n_full=n_full, frac=frac, lam=lam, value=value)


# --------------------------------------------------------------------------------------------
# Exact solve of a (small or reduced) problem: bisection on mu over exact 1-D solves
# --------------------------------------------------------------------------------------------
@dataclass
class _Exact:
    arm: np.ndarray  # integer feasible policy
    lam: float
    mu: float
    bound: float  # LP upper bound (dual value) in true gains
    n_fractional: int


def _solve_at_mu(g, c, a, mu, budget):
    gm = g + mu * a if mu else g
    seg = hull_segments(gm, c, a)
    n = g.shape[0]
    st = seg.start
    rows = np.arange(n)
    base_v = float(gm[rows, st].sum())
    base_c = float(c[rows, st].sum())
    lp = solve_lp_1d(seg, base_v, base_c, budget)
    base_a = float(a[rows, st].sum())
    slack = base_a + lp.totals(seg.da)
    return lp, slack


def _integer_from_lp(lp: LP1D, g, c, a, budget, need_a, mu):
    """Round the LP down, restore the ROI side if rounding broke it, then spend what is left."""
    seg = lp.seg
    n = g.shape[0]
    rows = np.arange(n)
    arm = seg.start.copy()
    taken = lp.order[: lp.n_full]
    # segments of a user are taken as a prefix of its path, so the last one taken wins
    arm[seg.user[taken]] = seg.to[taken]
    n_frac = int(lp.frac > 0)
    spend = float(c[rows, arm].sum())
    slack = float(a[rows, arm].sum()) - need_a
    if slack < 0:
        # drop users that hurt the ROI side the least gain per unit of ROI restored
        hurt = a[rows, arm] < 0
        cand = np.flatnonzero(hurt)
        ratio = g[cand, arm[cand]] / -a[cand, arm[cand]]
        cand = cand[np.argsort(ratio, kind="stable")]
        restored = np.cumsum(-a[cand, arm[cand]])
        k = int(np.searchsorted(restored, -slack, side="left")) + 1
        drop = cand[:k]
        arm[drop] = 0
        n_frac += drop.size
        spend = float(c[rows, arm].sum())
        slack = float(a[rows, arm].sum()) - need_a
    # fill: keep walking the sorted segments, taking a user's next segment while it fits
    left = budget - spend
    if lp.n_full < lp.order.size and left > 0:
        nxt = lp.order[lp.n_full: lp.n_full + _FILL_SCAN]
        nxt = nxt[(seg.dc[nxt] <= left) & (seg.da[nxt] >= -max(slack, 0.0))]
        for j in nxt:
            u = seg.user[j]
            if arm[u] != seg.frm[j] or seg.dc[j] > left or seg.da[j] < -slack:
                continue
            if g[u, seg.to[j]] <= g[u, arm[u]]:
                continue  # a step that only helps an already-met ROI floor is not worth its real gain
            arm[u] = seg.to[j]
            left -= seg.dc[j]
            slack += seg.da[j]
            if left <= 0:
                break
    return arm, n_frac


def solve_exact(g, c, a, budget: float, need_a: float = 0.0, roi: bool = False, max_iter: int = 100,
                mu_tol: float = 1e-12, mu_bracket: tuple[float, float] | None = None) -> _Exact:
    """Exact LP (and rounded integer policy) of ``max g s.t. c <= budget, a >= need_a``.

    ``budget`` may be ``inf``. Without ``roi`` the ROI side is ignored (mu = 0). The bisection on
    mu stops at a relative width of ``mu_tol`` (a looser one suffices to estimate multipliers).
    ``mu_bracket``: where mu probably lies (a warm start: fewer 1-D solves; the search still
    leaves it if it is wrong). The multipliers do not depend on it; the rounded policy may.
    """
    lp0, slack0 = _solve_at_mu(g, c, a, 0.0, budget)
    if not roi or slack0 >= need_a:
        arm, nf = _integer_from_lp(lp0, g, c, a, budget, need_a if roi else -np.inf, 0.0)
        return _Exact(arm=arm, lam=lp0.lam, mu=0.0, bound=lp0.value, n_fractional=nf)
    # bracket mu: grow until the ROI side is met
    mu_lo, mu_hi = 0.0, 1.0
    lp_lo, s_lo = lp0, slack0
    lp_hi = None
    if mu_bracket is not None and mu_bracket[1] > 0:
        lo, mu_hi = mu_bracket
        if 0.0 < lo < mu_hi:
            lp_b, s_b = _solve_at_mu(g, c, a, lo, budget)
            if s_b < need_a:  # still short of the floor: mu* is above the bracket's low end
                mu_lo, lp_lo, s_lo = lo, lp_b, s_b
            else:
                mu_hi, lp_hi, s_hi = lo, lp_b, s_b
    if lp_hi is None:
        lp_hi, s_hi = _solve_at_mu(g, c, a, mu_hi, budget)
    bound = lp0.value  # V(0) >= LP optimum
    for _ in range(80):
        if s_hi >= need_a:
            break
        bound = min(bound, lp_hi.value - mu_hi * need_a)
        mu_lo, lp_lo, s_lo = mu_hi, lp_hi, s_hi
        mu_hi *= 4.0
        lp_hi, s_hi = _solve_at_mu(g, c, a, mu_hi, budget)
    if s_hi < need_a:
        raise InfeasibleError("the ROI floor cannot be met by any policy")
    bound = min(bound, lp_hi.value - mu_hi * need_a)
    # V(mu) = LP value - mu * need_a is convex piecewise linear with slope (slack - need_a). Cutting
    # planes: intersect the supporting lines at both ends of the bracket; if V there lies on the
    # lines, that is the minimizer (a kink). Otherwise the new point splits the bracket. This
    # needs a few solves where plain bisection needs ~40; bisection steps guard against stalls.
    mu_star, lam_star = mu_hi, lp_hi.lam
    for it in range(max_iter):
        if mu_hi - mu_lo <= mu_tol * max(1.0, mu_hi):
            break
        v_lo, v_hi = lp_lo.value - mu_lo * need_a, lp_hi.value - mu_hi * need_a
        d_lo, d_hi = s_lo - need_a, s_hi - need_a  # d_lo < 0 <= d_hi
        mid = (v_lo - v_hi + mu_hi * d_hi - mu_lo * d_lo) / (d_hi - d_lo) if d_hi > d_lo else np.nan
        cut = not (it % 4 == 3 or not (mu_lo < mid < mu_hi))
        if not cut:
            mid = 0.5 * (mu_lo + mu_hi)
        line = v_lo + (mid - mu_lo) * d_lo  # = the other line too, at the intersection
        lp_m, s_m = _solve_at_mu(g, c, a, mid, budget)
        v_m = lp_m.value - mid * need_a
        bound = min(bound, v_m)
        # at the lines' intersection V >= both lines, so V == line there means V's minimum
        if cut and v_m <= line + 1e-12 * max(1.0, abs(line)):
            mu_star, lam_star = mid, lp_m.lam  # both bracket ends are optimal at mid: done
            break
        if s_m >= need_a:
            mu_hi, lp_hi, s_hi = mid, lp_m, s_m
            mu_star, lam_star = mu_hi, lp_hi.lam
        else:
            mu_lo, lp_lo, s_lo = mid, lp_m, s_m
    # The LP optimum mixes the solutions on both sides of mu*: users whose choice differs
    # between them (and the cut segments) are the fractional ones. Round both sides to a
    # feasible integer policy and keep the better one.
    rows = np.arange(g.shape[0])
    arm_hi, nf_hi = _integer_from_lp(lp_hi, g, c, a, budget, need_a, mu_hi)
    arm_lo, nf_lo = _integer_from_lp(lp_lo, g, c, a, budget, need_a, mu_lo)
    n_mixed = int((arm_hi != arm_lo).sum())
    best_arm, best_val = arm_hi, float(g[rows, arm_hi].sum())
    for cand in (arm_lo,):
        feas = float(c[rows, cand].sum()) <= budget * (1 + 1e-12) and float(a[rows, cand].sum()) >= need_a
        if feas and float(g[rows, cand].sum()) > best_val:
            best_arm, best_val = cand, float(g[rows, cand].sum())
    if need_a <= 0 and best_val < 0:
        best_arm = np.zeros_like(best_arm)  # treating nobody is feasible and better
    return _Exact(arm=best_arm, lam=lam_star, mu=mu_star, bound=bound, n_fractional=max(nf_hi, nf_lo) + n_mixed)


# --------------------------------------------------------------------------------------------
# Public entry: direct for small problems, subsample + box reduction for large ones
# --------------------------------------------------------------------------------------------
def dual_value(problem: AllocationProblem, lam: float, mu: float, chunk: int = 1_000_000) -> float:
    """D(lam, mu): an upper bound on the objective of every feasible policy (one chunked pass)."""
    g, c, r = problem.gain, problem.spend, problem.revenue
    R = problem.min_roi or 0.0
    n, K = g.shape
    total = 0.0
    buf = np.empty((min(chunk, n), K))
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        m = buf[: min(chunk, n - s)]
        np.multiply(c[sl], -(lam + mu * R), out=m)
        m += g[sl]
        if mu:
            m += mu * r[sl]
        total += float(m.max(axis=1).sum())
    return total + lam * (problem.budget if problem.budget is not None else 0.0)


def _corner_choices(g, c, r, corners, min_roi: float = 0.0, chunk: int = 1_000_000):
    """Lagrangian choices at the first corner, and whether every other corner agrees with it.

    One pass over the data for all corners (each chunk of g, c, r is read once).
    Returns ``(ref, same)``: ``ref`` (n,) the choices at ``corners[0]``, ``same`` (n,) bool.
    """
    n, K = g.shape
    ref = np.empty(n, dtype=np.int64)
    same = np.ones(n, dtype=bool)
    buf = np.empty((min(chunk, n), K))
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        m = buf[: min(chunk, n - s)]
        for j, (lam, mu) in enumerate(corners):
            np.multiply(c[sl], -(lam + mu * min_roi), out=m)
            m += g[sl]
            if mu:
                m += mu * r[sl]
            choice = m.argmax(axis=1)
            if j == 0:
                ref[sl] = choice
            else:
                same[sl] &= choice == ref[sl]
    return ref, same


def solve_dual(problem: AllocationProblem, *, reason: str = "budget/ROI only: the dual decomposes",
               direct_limit: int = DIRECT_LIMIT, seed: int = 0) -> Allocation:
    """Solve budget + ROI exactly (LP-optimal up to the rounded fractional users)."""
    t0 = time.perf_counter()
    if problem.has_side_constraints:
        raise ValueError("solve_dual handles budget and ROI only; use an exact solver for caps/segments")
    g, c = problem.gain, problem.spend
    roi = problem.min_roi is not None
    budget = problem.budget if problem.budget is not None else np.inf
    n = problem.n_users
    if n <= direct_limit:
        a = problem.roi_slack_matrix if roi else problem.revenue  # unused without a floor: no copy
        ex = solve_exact(g, c, a, budget, 0.0, roi)
        arm, lam, mu, nf = ex.arm, ex.lam, ex.mu, ex.n_fractional
        bound = min(ex.bound, dual_value(problem, lam, mu))
        how = "direct"
        if roi:
            rounded = round_at(ArrayAccess(problem), budget, lam, mu)
            if rounded is not None:
                arm, nf = rounded
    else:
        arm, lam, mu, nf, how = _solve_reduced(problem, budget, roi, seed)
        bound = dual_value(problem, lam, mu)
    seconds = time.perf_counter() - t0
    log.info("dual solve (%s): lam=%.6g mu=%.6g in %.2fs", how, lam, mu, seconds)
    return finish(problem, arm, bound=bound, n_fractional=nf, solver="dual", solver_reason=reason,
                  seconds=seconds, multipliers={"lambda_budget": lam, "mu_roi": mu})


class ArrayAccess:
    """The reduced solve's view of the users when the arrays are in memory.

    :func:`reduced_solve` touches the data only through ``n``, ``rows``, ``split`` and
    ``solve_all``; the Spark engine (:mod:`promo_opt.spark.allocate`) implements the same four as
    distributed passes, so both engines run this one algorithm and return the same policy.
    """

    def __init__(self, problem: AllocationProblem):
        self.problem = problem
        self.g, self.c, self.r = problem.gain, problem.spend, problem.revenue
        self.R = problem.min_roi or 0.0
        self.n = problem.n_users

    def rows(self, idx):
        """(g, c, a) of the users ``idx`` (sorted), ``a`` the ROI slack."""
        return self.g[idx], self.c[idx], self.r[idx] - self.R * self.c[idx]

    def split(self, corners):
        """Fix the users whose Lagrangian choice agrees at every corner.

        Returns ``(fixed_spend, fixed_revenue, free, (g, c, a) of free, policy)`` where
        ``policy(free_arm)`` is the whole policy: the corner choice, ``free_arm`` for the free users.
        """
        ref, same = _corner_choices(self.g, self.c, self.r, corners, self.R)
        free = np.flatnonzero(~same)
        fixed = np.flatnonzero(same)
        fc = float(self.c[fixed, ref[fixed]].sum())
        fr = float(self.r[fixed, ref[fixed]].sum())

        def policy(free_arm):
            arm = ref.copy()
            arm[free] = free_arm
            return arm

        return fc, fr, free, self.rows(free), policy

    def solve_all(self, budget, roi):
        return solve_exact(self.g, self.c, self.problem.roi_slack_matrix, budget, 0.0, roi)


def _solve_reduced(problem, budget, roi, seed):
    return reduced_solve(ArrayAccess(problem), budget, roi, seed)


def reduced_solve(access, budget, roi, seed=0):
    """Subsample multipliers, fix users outside a box around them, solve the free users exactly.

    ``access`` is an :class:`ArrayAccess` or an object with the same four members. Returns
    ``(policy, lam, mu, n_fractional, how)``; ``policy`` is ``split``'s (or an arm array).
    """
    R = access.R
    n = access.n
    rng = np.random.default_rng(seed)
    m = max(100_000, int(np.sqrt(n) * 100))
    sample = np.sort(rng.choice(n, size=min(m, n), replace=False))
    scale = sample.size / n
    est = solve_exact(*access.rows(sample), budget * scale, 0.0, roi, mu_tol=1e-6)
    log.info("reduced solve: multipliers from %d sampled users: lam=%.6g mu=%.6g", sample.size, est.lam, est.mu)
    width = 0.03
    lam_lo, lam_hi = max(0.0, est.lam * (1 - width) - 1e-12), est.lam * (1 + width) + 1e-12
    if roi:
        mu_lo = max(0.0, est.mu * (1 - width))
        mu_hi = est.mu * (1 + width) if est.mu > 0 else width * (1.0 + est.lam)
    else:
        mu_lo = mu_hi = 0.0
    for attempt in range(6):
        fc, fr, free, free_rows, policy = access.split(box_corners(lam_lo, lam_hi, mu_lo, mu_hi))
        fa = fr - R * fc if roi else 0.0
        ex = None
        if fc <= budget:
            try:
                ex = solve_exact(*free_rows, budget - fc, -fa, roi)
            except InfeasibleError:
                ex = None
        log.info("box %d: lam in [%.6g, %.6g], mu in [%.6g, %.6g]: %d free users; exact lam=%s mu=%s",
                 attempt + 1, lam_lo, lam_hi, mu_lo, mu_hi, free.size,
                 f"{ex.lam:.6g}" if ex else "-", f"{ex.mu:.6g}" if ex else "-")
        if ex is not None and lam_lo <= ex.lam <= lam_hi and (not roi or mu_lo <= ex.mu <= mu_hi):
            how = f"reduced: {free.size} free users of {n} (box {attempt + 1})"
            rounded = round_at(access, budget, ex.lam, ex.mu) if roi else None
            if rounded is not None:
                return rounded[0], ex.lam, ex.mu, rounded[1], how
            return policy(ex.arm), ex.lam, ex.mu, ex.n_fractional, how
        log.debug("box %d did not close (free=%d)", attempt + 1, free.size)
        if ex is not None and attempt == 0:
            # the reduced problem saw every user: its multipliers are a better centre than the
            # subsample's; try a box of the same relative width around them first
            lam_lo, lam_hi = max(0.0, ex.lam * (1 - width) - 1e-12), ex.lam * (1 + width) + 1e-12
            if roi:
                mu_lo = max(0.0, ex.mu * (1 - width))
                mu_hi = ex.mu * (1 + width) if ex.mu > 0 else width * (1.0 + ex.lam)
            continue
        # widen around the same centre, and stretch towards where the reduced problem points
        lam_w, mu_w = 2 * (lam_hi - lam_lo) + 1e-12, 2 * (mu_hi - mu_lo) + (1e-12 if roi else 0.0)
        lam_lo, lam_hi = max(0.0, lam_lo - lam_w), lam_hi + lam_w
        if roi:
            mu_lo, mu_hi = max(0.0, mu_lo - mu_w), mu_hi + mu_w
        if ex is not None:
            lam_lo, lam_hi = min(lam_lo, ex.lam), max(lam_hi, ex.lam)
            if roi:
                mu_lo, mu_hi = min(mu_lo, ex.mu), max(mu_hi, ex.mu)
    # the box never closed (degenerate data): solve everything directly
    log.warning("reduced solve: the box never closed; solving all %d users directly", n)
    ex = access.solve_all(budget, roi)
    rounded = round_at(access, budget, ex.lam, ex.mu) if roi else None
    if rounded is not None:
        return rounded[0], ex.lam, ex.mu, rounded[1], "direct (reduction did not close)"
    return ex.arm, ex.lam, ex.mu, ex.n_fractional, "direct (reduction did not close)"


class OutsideBox(Exception):
    """An access that holds only some users' data was asked to split at corners it cannot answer."""


def rounding_width(n_users: int) -> float:
    """Relative half-width of the rounding box: ``ROUNDING_USERS / n``, within [1e-3, 0.05].

    Wide enough that the rounding has spare users to spend leftover budget on (at 200k users:
    mean gap 4.8e-7 at 1e-2, 6.0e-7 at 1e-3, 4.3e-7 rounding every user), narrow enough that
    few users are solved twice. Depends on the size only, so every engine uses the same box.
    """
    return float(min(0.05, max(1e-3, ROUNDING_USERS / max(n_users, 1))))


def canonical_box(lam: float, mu: float, width: float) -> tuple[float, float, float, float]:
    """``(lam_lo, lam_hi, mu_lo, mu_hi)``: ``lam, mu`` times ``1 -/+ width``, widened by ``BOX_EPS``.

    The absolute ``BOX_EPS`` makes a multiplier that is 0 in one engine and 1e-15 in another (a
    constraint binding with a zero multiplier, up to round-off) give the same box.
    """
    return (max(0.0, lam * (1 - width) - BOX_EPS), lam * (1 + width) + BOX_EPS,
            max(0.0, mu * (1 - width) - BOX_EPS), mu * (1 + width) + BOX_EPS)


def box_corners(lam_lo: float, lam_hi: float, mu_lo: float, mu_hi: float) -> list[tuple[float, float]]:
    """The corners ``split`` evaluates (two when the mu side is a point)."""
    corners = [(lam_lo, mu_lo), (lam_hi, mu_lo)]
    if mu_hi != mu_lo:
        corners += [(lam_lo, mu_hi), (lam_hi, mu_hi)]
    return corners


def round_at(access, budget: float, lam: float, mu: float, widths=(1, 4, 16)):
    """The integer policy of the LP optimum with multipliers ``(lam, mu)`` (budget + ROI floor).

    ``lam, mu`` must be the exact multipliers (from any engine). Users whose Lagrangian choice is
    the same at every corner of the box ``canonical_box(lam, mu, rounding_width(n) * w)`` keep it;
    the others are solved exactly and rounded by :func:`solve_exact`. Accepted when the free
    users' multipliers fall inside the box (KKT for everyone) and the combined policy meets the
    budget and the floor; else the next, wider box. Returns ``(policy, n_fractional)`` (``policy``
    is ``split``'s) or ``None`` when no box worked (the caller keeps its own rounding).
    A deterministic function of ``(lam, mu)`` and the data: engines that find the same
    multipliers return the same policy. May raise :class:`OutsideBox` (from ``access.split``).
    """
    R = access.R
    width = rounding_width(access.n)
    for w in widths:
        lam_lo, lam_hi, mu_lo, mu_hi = canonical_box(lam, mu, width * w)
        fc, fr, free, (gf, cf, af), policy = access.split(box_corners(lam_lo, lam_hi, mu_lo, mu_hi))
        fa = fr - R * fc
        if fc > budget:
            continue
        if len(free) == 0:  # nobody is tied at (lam, mu): the corner choices are the LP optimum
            if fa >= 0:
                return policy(np.zeros(0, dtype=np.int64)), 0
            continue
        try:
            ex = solve_exact(gf, cf, af, budget - fc, -fa, True)
        except InfeasibleError:
            continue
        if not (lam_lo <= ex.lam <= lam_hi and mu_lo <= ex.mu <= mu_hi):
            continue
        rows = np.arange(len(free))
        spend = fc + float(cf[rows, ex.arm].sum())
        slack = fa + float(af[rows, ex.arm].sum())
        if spend <= budget * (1 + 1e-12) and slack >= -1e-9 * max(1.0, abs(fr)):
            return policy(ex.arm), ex.n_fractional
    log.debug("round_at: no canonical box closed at lam=%.6g mu=%.6g", lam, mu)
    return None
