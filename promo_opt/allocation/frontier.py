"""What-if budget planning: the whole budget -> objective curve from one sort.

Along the greedy path of hull segments (sorted by marginal gain per unit of spend), the prefix
that fits a budget B, plus a fraction of the next segment, is the LP optimum for B; rounded down
it is the integer policy the dual allocator returns for B without an ROI floor. So every budget's
answer comes from one cumulative sum. Where a budget's path point breaks the ROI floor, that one
budget is re-solved with the two-constraint dual (reported in the ``resolved`` column): by a cold
``solve_dual``, or, when many points need it, warm-started from the floor's multipliers recorded
once (:class:`~promo_opt.allocation.floor_path.FloorPath`); both return the same policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numba
import numpy as np
import pandas as pd

from promo_opt.allocation.dual import best_free_arm, hull_segments, solve_exact
from promo_opt.allocation.floor_path import FloorPath, solve_point
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.errors import InfeasibleError


@numba.njit(cache=True, nogil=True)
def _bin_pass(edges, lut, kmin, scale, key, dc, dg, dconv, da, to, frm, b, sums, moves):  # pragma: no cover
    """One pass: each segment's bin (= searchsorted(edges, key, 'right')) and the per-bin sums.

    ``lut[cell]`` is the bin of the left end of a uniform grid cell over the keys, so the bin is
    found in O(1): start from the cell's bin and step over the (rare) edges inside the cell.
    """
    ne = edges.size
    last = lut.size - 1
    for i in range(key.size):
        k = key[i]
        cell = int((k - kmin) * scale)
        cell = 0 if cell < 0 else (last if cell > last else cell)
        lo = lut[cell]
        while lo > 0 and edges[lo - 1] > k:  # guards against round-off in the cell index
            lo -= 1
        while lo < ne and edges[lo] <= k:
            lo += 1
        b[i] = lo
        sums[lo, 0] += dc[i]
        sums[lo, 1] += dg[i]
        sums[lo, 2] += dconv[i]
        sums[lo, 3] += da[i]
        moves[lo, to[i]] += 1
        moves[lo, frm[i]] -= 1


@dataclass
class FrontierPath:
    """Every hull segment that can matter, unsorted, and the totals before any segment.

    ``points(budgets)`` returns the greedy path's totals at each budget. It needs the segments in
    order of decreasing slope only up to each budget's cut, so instead of sorting everything it
    buckets the slopes into quantile bins (per-bin sums in O(m)), locates each budget's bin from
    the cumulative bin sums, and sorts just that bin: exactly the prefix of the full sort.
    """

    base: dict[str, float]  # spend, gain, conversions, revenue with every user at its start arm
    start_counts: np.ndarray  # (K,) users per arm before any segment
    key: np.ndarray  # (m,) -slope: ascending key = decreasing marginal gain per unit of spend
    dc: np.ndarray
    dg: np.ndarray
    dconv: np.ndarray
    da: np.ndarray  # revenue increments
    to: np.ndarray
    frm: np.ndarray
    # per-arm spend (optional; ``SortedFrontier`` reports spend per arm from them): the spend of each
    # segment's user on the arm it moves to / from, and the spend per arm before any segment (K,)
    spend_to: np.ndarray | None = None
    spend_frm: np.ndarray | None = None
    start_spend: np.ndarray | None = None

    @property
    def max_useful_spend(self) -> float:
        return self.base["spend"] + float(self.dc.sum())

    def points(self, budgets: np.ndarray, n_bins: int = 2048, seed: int = 0) -> dict[str, np.ndarray]:
        K = self.start_counts.size
        m = self.key.size
        fields = {"spend": self.dc, "gain": self.dg, "conversions": self.dconv, "revenue": self.da}
        if m == 0:  # one empty bin: every budget stays at the start arms
            empty = {"key": self.key, "to": self.to, "frm": self.frm, **fields}
            return cut_points(budgets, self.base, self.start_counts, np.zeros((1, 4)), np.zeros((1, K), np.int64),
                              lambda j: empty, lambda j: None)
        if m > 4 * n_bins:
            sample = self.key[np.random.default_rng(seed).choice(m, size=min(m, 100_000), replace=False)]
            edges = np.unique(np.quantile(sample, np.linspace(0, 1, n_bins + 1)[1:-1]))
        else:
            edges = np.zeros(0)
        nb = edges.size + 1
        b = np.empty(m, dtype=np.int16 if nb < 2**15 else np.int64)
        sums = np.zeros((nb, 4))
        moves = np.zeros((nb, K), dtype=np.int64)
        kmin, kmax = float(self.key.min()), float(self.key.max())
        cells = 1 << 16
        scale = (cells - 1) / (kmax - kmin) if kmax > kmin else 0.0
        grid = kmin + np.arange(cells) / scale if scale else np.full(cells, kmin)
        lut = np.searchsorted(edges, grid, side="right")  # bin of each cell's left end: a starting guess
        _bin_pass(edges, lut, kmin, scale, self.key, self.dc, self.dg, self.dconv, self.da, self.to, self.frm,
                  b, sums, moves)
        grp = np.argsort(b, kind="stable")  # radix sort of small ints: O(m)
        offs = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=nb))])

        def members(j):
            idx = grp[offs[j]:offs[j + 1]]
            idx = idx[np.argsort(self.key[idx], kind="stable")]
            return {"key": self.key[idx], "to": self.to[idx], "frm": self.frm[idx],
                    **{f: v[idx] for f, v in fields.items()}}

        def next_best(j):
            nxt = np.flatnonzero(offs[j + 1:-1] < offs[j + 2:])
            if not nxt.size:
                return None
            k = j + 1 + nxt[0]
            return float(self.key[grp[offs[k]:offs[k + 1]]].min())

        return cut_points(budgets, self.base, self.start_counts, sums, moves, members, next_best)


FIELDS = ("spend", "gain", "conversions", "revenue")


def cut_points(budgets, base: dict[str, float], start_counts: np.ndarray, sums: np.ndarray, moves: np.ndarray,
               members, next_best) -> dict[str, np.ndarray]:
    """The greedy path's totals at each budget, from segments bucketed into bins of ascending key.

    ``sums`` (nb, 4): per-bin sums of FIELDS' increments; ``moves`` (nb, K): per-bin net users
    entering each arm; ``members(j)``: bin j's segments sorted by key, as arrays ``key``, FIELDS,
    ``to``, ``frm``; ``next_best(j)``: the least key of the first non-empty bin after j (or None).
    Bins before a budget's bin are taken whole; that bin is cut exactly. Shared by the single-
    machine path and the Spark planner (which collects only the cut bins' members).
    """
    K = start_counts.size
    nb = sums.shape[0]
    out = {f: np.full(len(budgets), base[f]) for f in FIELDS}
    out["marginal"] = np.zeros(len(budgets))
    out["counts"] = np.tile(np.asarray(start_counts, dtype=np.int64), (len(budgets), 1))
    cum = {f: np.concatenate([[0.0], np.cumsum(sums[:, j])]) for j, f in enumerate(FIELDS)}
    cum_counts = np.vstack([np.zeros(K, dtype=np.int64), np.cumsum(moves, axis=0)])
    for i, budget in enumerate(budgets):
        room = budget - base["spend"]
        j = int(np.searchsorted(cum["spend"], room, side="right")) - 1  # bins 0..j-1 fully taken
        j = min(max(j, 0), nb)
        for f in FIELDS:
            out[f][i] += cum[f][j]
        out["counts"][i] += cum_counts[j]
        if j == nb:
            continue  # every segment fits
        seg = members(j)
        t = int(np.searchsorted(np.cumsum(seg["spend"]), room - cum["spend"][j], side="right"))
        for f in FIELDS:
            out[f][i] += float(seg[f][:t].sum())
        out["counts"][i] += np.bincount(seg["to"][:t], minlength=K) - np.bincount(seg["frm"][:t], minlength=K)
        if t < len(seg["key"]):
            out["marginal"][i] = -float(seg["key"][t])
        else:  # the next segment is the best of the next non-empty bin
            nk = next_best(j)
            if nk is not None:
                out["marginal"][i] = -nk
    return out


def frontier_path(problem: AllocationProblem, conversions: np.ndarray, max_budget: float | None = None,
                  seed: int = 0) -> FrontierPath:
    """Build the path for ``problem`` (budget only); ``conversions`` (n, K) tracked alongside.

    With ``max_budget``, only users that can matter up to that budget are put on the path: the
    multiplier at ``max_budget`` is estimated on a subsample, and a user whose Lagrangian choice
    at 90% of it is still its starting arm has every hull slope below it, so it cannot enter
    before the budget runs out. The path is checked to reach ``max_budget`` through slopes above
    that threshold (else the threshold is lowered), so the prefix is exactly the full path's.
    """
    g, c, r = problem.gain, problem.spend, problem.revenue
    n = problem.n_users
    start = best_free_arm(g, c)
    if max_budget is not None and n > 200_000:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=200_000, replace=False))
        est = solve_exact(g[sample], c[sample], r[sample], max_budget * sample.size / n)
        base_spend = float(c[np.arange(n), start].sum()) if start.any() else 0.0
        thr = 0.9 * est.lam  # a little below the estimate; checked below, lowered if short
        done = False
        while thr > 0:
            seg = hull_segments(g, c, r, start=start, above=thr)  # users with a segment above thr
            if base_spend + float(seg.dc[seg.slope > thr].sum()) >= max_budget:
                done = True  # the path reaches max_budget through slopes above thr: exact prefix
                break
            thr = thr * 0.5 if thr > 1e-12 else 0.0
        if not done:
            seg = hull_segments(g, c, r, start=start)
    else:
        seg = hull_segments(g, c, r, start=start)
    if conversions is g:  # along the path the hull's own increments are the gain ...
        dconv = seg.dg
    else:
        dconv = conversions[seg.user, seg.to] - conversions[seg.user, seg.frm]

    def base(mat):  # totals of everyone at their starting arm (0 when every path starts at control)
        return float(mat[np.arange(n), start].sum()) if start.any() else 0.0

    return FrontierPath(
        base={"spend": base(c), "gain": base(g), "conversions": base(conversions), "revenue": base(r)},
        start_counts=np.bincount(start, minlength=problem.n_arms), key=-seg.slope,
        dc=seg.dc, dg=seg.dg, dconv=dconv, da=seg.da, to=seg.to, frm=seg.frm,  # ... and da the revenue
        spend_to=c[seg.user, seg.to], spend_frm=c[seg.user, seg.frm],
        start_spend=np.bincount(start, weights=c[np.arange(n), start], minlength=problem.n_arms),
    )


FLOOR_PATH_MIN_POINTS = 8  # re-solved points from which plan() records the floor's multipliers first


def breaks_floor(revenue: np.ndarray, spend: np.ndarray, min_roi: float) -> np.ndarray:
    """Which path points break the ROI floor (and are re-solved), with a relative 1e-9 tolerance."""
    return ~(revenue >= min_roi * spend - 1e-9 * np.abs(spend))


def plan(problem: AllocationProblem, conversions: np.ndarray, budgets=None, n_points: int = 50,
         arm_names=None, path=None, floor: FloorPath | None = None) -> pd.DataFrame:
    """The budget curve at ``budgets`` (default: ``n_points`` from 0 to where spending stops paying).

    Columns: budget, spend, incremental_conversions, incremental_revenue, objective, roi,
    marginal_gain_per_unit (the multiplier lambda at that budget), users_<arm>..., resolved.
    Integer policies (the LP prefix, fractional segment dropped), so every row is attainable.
    Rows breaking ``problem.min_roi`` are re-solved: by ``floor.point`` (e.g. a ``FloorPath``
    cached by the service), else cold, or through a ``FloorPath`` built here when at least
    ``FLOOR_PATH_MIN_POINTS`` rows need it. The rows are the same either way.
    """
    top = None if budgets is None else float(np.max(budgets)) if len(budgets) else None
    if path is None:  # a prebuilt full path (e.g. SortedFrontier, cached by the service) skips this
        path = frontier_path(problem, conversions, max_budget=top)
    if budgets is None:
        budgets = np.linspace(0.0, path.max_useful_spend, n_points)
    budgets = np.asarray(sorted(float(b) for b in budgets))
    if (budgets < 0).any():
        raise InfeasibleError(f"budgets must be >= 0; got {budgets[budgets < 0][:3].tolist()}")
    K = problem.n_arms
    names = list(arm_names or problem.arm_names or [f"arm{k}" for k in range(K)])
    pts = path.points(budgets)
    if problem.min_roi is not None and floor is None:
        if breaks_floor(pts["revenue"], pts["spend"], problem.min_roi).sum() >= FLOOR_PATH_MIN_POINTS:
            floor = FloorPath(problem, conversions)
    resolve = floor.point if floor is not None else partial(solve_point, problem, conversions)
    return curve_frame(budgets, pts, names, problem.min_roi, resolve)


def curve_frame(budgets: np.ndarray, pts: dict[str, np.ndarray], names: list[str], min_roi: float | None,
                resolve) -> pd.DataFrame:
    """The plan table from path points (``spend, gain, conversions, revenue, marginal`` (m,), ``counts`` (m, K)).

    Points breaking the ROI floor are replaced by ``resolve(budget)`` (same keys, one budget), the
    two-constraint solve of whichever engine built the points; those rows are marked ``resolved``.
    """
    # resolved rows are written into copies of the arrays, then one DataFrame is built (per-row
    # .loc assignments cost milliseconds each: a hot path for the service's slider)
    fields = {"spend": "spend", "incremental_conversions": "conversions", "incremental_revenue": "revenue",
              "objective": "gain", "marginal_gain_per_unit": "marginal"}
    cols = {col: np.array(pts[key], dtype=np.float64) for col, key in fields.items()}
    counts = np.array(pts["counts"], dtype=np.int64)
    per_arm = np.array(pts["spend_per_arm"], dtype=np.float64) if "spend_per_arm" in pts else None
    resolved = np.zeros(len(budgets), dtype=bool)
    if min_roi is not None:
        for i in np.flatnonzero(breaks_floor(cols["incremental_revenue"], cols["spend"], min_roi)):
            r = resolve(float(budgets[i]))
            for col, key in fields.items():
                cols[col][i] = r[key]
            counts[i] = r["counts"]
            if per_arm is not None:
                per_arm[i] = r["spend_per_arm"] if "spend_per_arm" in r else np.nan
            resolved[i] = True
    df = pd.DataFrame({"budget": budgets, **cols})
    for k, name in enumerate(names):
        df[f"users_{name}"] = counts[:, k]
    if per_arm is not None:  # when the path knows them (SortedFrontier)
        for k, name in enumerate(names):
            df[f"spend_{name}"] = per_arm[:, k]
    df["resolved"] = resolved
    with np.errstate(divide="ignore", invalid="ignore"):
        df.insert(5, "roi", np.where(df["spend"] > 0, df["incremental_revenue"] / df["spend"], np.nan))
    return df
