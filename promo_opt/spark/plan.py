"""Distributed what-if planning: the budget curve of :func:`promo_opt.pipeline.plan` on Spark.

The single-machine frontier (:mod:`promo_opt.allocation.frontier`) takes every user's hull
segments (``hull_segments`` from its ``best_free_arm``) greedily by slope; a budget's policy is the
prefix that fits. Here the segments never leave the executors in bulk:

1. per partition: the totals at the starting arms and a sample of segment slopes;
2. the driver cuts the sampled slopes into quantile bins; per partition: per-bin sums of spend,
   gain, conversions, revenue, arm moves and the best slope of each bin;
3. the driver locates each budget's bin from the cumulative bin sums; only the segments of those
   few bins are collected, sorted (slope, then user: the single machine's order) and cut exactly.

Budgets whose point breaks the ROI floor are re-solved with the distributed dual, as the local
planner re-solves them with ``solve_dual``. Few users: collected and planned by the core itself.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd

from promo_opt import pipeline
from promo_opt.allocation.dual import DIRECT_LIMIT, best_free_arm, hull_segments
from promo_opt.allocation.frontier import FIELDS, curve_frame, cut_points
from promo_opt.config import CampaignConfig
from promo_opt.errors import InfeasibleError
from promo_opt.spark.allocate import (TREAT, IndexedScores, PassLog, _local, best_roi_distributed, check_exact_size,
                                      collect_scores, index_scores, solve_distributed)
from promo_opt.spark.session import user_errors

log = logging.getLogger(__name__)

def _segments(pdf, config, min_roi, cost_weight: float = 1.0):
    """The batch's hull segments (users as global treatable positions) and its start-arm totals."""
    t, p, econ = _local(pdf, config, min_roi, cost_weight)
    conv = econ.subset(pdf[TREAT].to_numpy() >= 0).incremental_conversions
    g, c, r = p.gain, p.spend, p.revenue
    start = best_free_arm(g, c)
    seg = hull_segments(g, c, r, start=start)
    rows = np.arange(t.size)
    base = (c[rows, start].sum(), g[rows, start].sum(), conv[rows, start].sum(), r[rows, start].sum())
    dconv = conv[seg.user, seg.to] - conv[seg.user, seg.frm]
    return t, seg, dconv, base, np.bincount(start, minlength=g.shape[1])


def plan(spark, config: CampaignConfig, scores, budgets=None, *, min_roi: float | None = None, n_points: int = 50,
         direct_limit: int | None = None, partitions: int | None = None, n_bins: int = 4096,
         correction: dict | None = None) -> tuple[pd.DataFrame, list]:
    """The budget curve (same columns and rows as :func:`promo_opt.pipeline.plan`, the floor and each budget
    held on the forecast of the model's ``correction`` as there) and the pass log. Under arm caps or segment
    budgets: :func:`promo_opt.pipeline.capped_plan` on the collected scores (the core's exact allocation at each
    budget), within the exact solver's size as Spark's allocation is."""
    side = pipeline._side_constraints(config)
    asked = config.constraints.min_roi if min_roi is None else min_roi
    direct_limit = DIRECT_LIMIT if direct_limit is None else direct_limit
    plog = PassLog()
    idx = index_scores(spark, config, scores, plog, partitions or config.spark.partitions)
    try:
        if side or idx.n_treat <= direct_limit:  # the core's plan on the collected scores (caps: capped_plan)
            if side:
                check_exact_size(config, idx.n_treat)
            t0 = time.perf_counter()
            pdf = collect_scores(idx)
            plog.add("collect on the driver", time.perf_counter() - t0, users=int(len(pdf)))
            t0 = time.perf_counter()
            curve = pipeline.plan(config, pdf, budgets, min_roi=asked, n_points=n_points, correction=correction)
            plog.add("plan on the driver", time.perf_counter() - t0, users=int(len(pdf)))
            return curve, plog.passes
        floor = pipeline.held_floor(config, asked, correction)
        weight = pipeline.allocation_cost_weight(config.objective, correction)
        if floor is not None and idx.n_treat:  # refused as the core refuses it (pipeline.plan_problem)
            best = best_roi_distributed(spark, config, idx, floor, weight)
            if floor > best:
                raise pipeline.floor_out_of_reach(config, asked, pipeline.allocation_floor(asked, correction),
                                                  floor, best)
        curve = pipeline.on_held_budgets(budgets, correction, lambda b: _plan_distributed(
            spark, config, idx, b, floor, n_points, n_bins, weight))
    finally:
        idx.df.unpersist()
    return pipeline.with_curve_forecast(curve, correction, config.objective, idx.n_treat), plog.passes


def _plan_distributed(spark, config, idx: IndexedScores, budgets, min_roi, n_points, n_bins,
                      cost_weight: float = 1.0) -> pd.DataFrame:
    K = len(config.arm_names)
    names = list(config.arm_names)
    q = min(1.0, 200_000 / max(1, idx.n_treat * (K - 1)))

    # pass 1: start-arm totals, total useful spend, a sample of slopes
    def stats(it):
        base, counts, dc_sum, m, sample = np.zeros(4), np.zeros(K, dtype=np.int64), 0.0, 0, []
        for pdf in it:
            t, seg, _, b, cnt = _segments(pdf, config, min_roi, cost_weight)
            base += b
            counts += cnt
            dc_sum += float(seg.dc.sum())
            m += seg.dc.size
            if seg.dc.size and t.size:
                rng = np.random.default_rng([int(t[0]), 17])
                sample.append(-seg.slope[rng.random(seg.dc.size) < q])
        keys = np.concatenate(sample) if sample else np.zeros(0)
        yield pd.DataFrame({"base": [base.tolist()], "counts": [counts.tolist()], "dc": [dc_sum], "m": [m],
                            "keys": [keys.tolist()]})

    t0 = time.perf_counter()
    with user_errors():
        st = idx.df.mapInPandas(stats, "base array<double>, counts array<long>, dc double, m long, "
                                       "keys array<double>").toPandas()
    base = {f: math.fsum(np.vstack(st["base"])[:, j]) for j, f in enumerate(FIELDS)}
    start_counts = np.vstack(st["counts"]).sum(axis=0).astype(np.int64)
    m = int(st["m"].sum())
    max_useful = base["spend"] + math.fsum(st["dc"])
    keys = np.concatenate([np.asarray(k, dtype=np.float64) for k in st["keys"]])
    idx.log.add("hull segments: totals, slope sample", time.perf_counter() - t0, segments=m, sampled=int(keys.size))

    if budgets is None:
        budgets = np.linspace(0.0, max_useful, n_points)
    budgets = np.asarray(sorted(float(b) for b in budgets))
    if (budgets < 0).any():
        raise InfeasibleError(f"budgets must be >= 0; got {budgets[budgets < 0][:3].tolist()}")
    edges = np.unique(np.quantile(keys, np.linspace(0, 1, n_bins + 1)[1:-1])) if keys.size > 4 * n_bins else np.zeros(0)
    nb = edges.size + 1
    bc = spark.sparkContext.broadcast(edges)

    # pass 2: per-bin sums, arm moves and best slope
    def bins(it):
        e = bc.value
        sums, moves, best = np.zeros((nb, 4)), np.zeros((nb, K), dtype=np.int64), np.full(nb, np.inf)
        for pdf in it:
            _, seg, dconv, _, _ = _segments(pdf, config, min_roi, cost_weight)
            key = -seg.slope
            b = np.searchsorted(e, key, side="right")
            for j, v in enumerate((seg.dc, seg.dg, dconv, seg.da)):
                sums[:, j] += np.bincount(b, weights=v, minlength=nb)
            moves += np.bincount(b * K + seg.to, minlength=nb * K).reshape(nb, K)
            moves -= np.bincount(b * K + seg.frm, minlength=nb * K).reshape(nb, K)
            np.minimum.at(best, b, key)
        yield pd.DataFrame({"sums": [sums.ravel().tolist()], "moves": [moves.ravel().tolist()],
                            "best": [best.tolist()]})

    t0 = time.perf_counter()
    with user_errors():
        bt = idx.df.mapInPandas(bins, "sums array<double>, moves array<long>, best array<double>").toPandas()
    sums = np.sum([np.asarray(x).reshape(nb, 4) for x in bt["sums"]], axis=0)
    moves = np.sum([np.asarray(x).reshape(nb, K) for x in bt["moves"]], axis=0).astype(np.int64)
    best = np.min([np.asarray(x) for x in bt["best"]], axis=0)
    idx.log.add("slope bins: sums", time.perf_counter() - t0, bins=nb)

    cum_spend = np.concatenate([[0.0], np.cumsum(sums[:, 0])])
    cut_bin = np.clip(np.searchsorted(cum_spend, budgets - base["spend"], side="right") - 1, 0, nb)
    wanted = np.unique(cut_bin[cut_bin < nb]).astype(np.int64)  # the bins cut_points will open

    # pass 3: the segments of the cut bins, to sort and cut exactly on the driver
    bw = spark.sparkContext.broadcast((edges, wanted))

    def members(it):
        e, w = bw.value
        for pdf in it:
            t, seg, dconv, _, _ = _segments(pdf, config, min_roi, cost_weight)
            key = -seg.slope
            b = np.searchsorted(e, key, side="right")
            on = np.isin(b, w)
            yield pd.DataFrame({"bin": b[on], "key": key[on], "user": t[seg.user[on]], "spend": seg.dc[on],
                                "gain": seg.dg[on], "conversions": dconv[on], "revenue": seg.da[on],
                                "to": seg.to[on].astype(np.int64), "frm": seg.frm[on].astype(np.int64)})

    t0 = time.perf_counter()
    with user_errors():
        mem = idx.df.mapInPandas(members, "bin long, key double, user long, spend double, gain double, "
                                          "conversions double, revenue double, to long, frm long").toPandas()
    idx.log.add("segments of the cut bins", time.perf_counter() - t0, bins=int(wanted.size), segments=int(len(mem)))
    mem = mem.sort_values(["bin", "key", "user"], kind="stable")  # the single machine's order within a bin
    groups = {int(b): {c: g[c].to_numpy() for c in g.columns} for b, g in mem.groupby("bin", sort=False)}
    empty = {c: mem[c].to_numpy()[:0] for c in mem.columns}
    nonempty = np.flatnonzero(np.isfinite(best))

    def next_best(j):
        nxt = nonempty[nonempty > j]
        return float(best[nxt[0]]) if nxt.size else None

    out = cut_points(budgets, base, start_counts, sums, moves, lambda j: groups.get(j, empty), next_best)

    def resolve(budget: float) -> dict:
        sol = solve_distributed(spark, config, idx, budget, min_roi, totals=True, cost_weight=cost_weight)
        tot = sol.totals
        return {"spend": tot["spend"], "conversions": tot["conversions"], "revenue": tot["revenue"],
                "gain": tot["objective"], "marginal": sol.lam, "counts": tot["counts"]}

    return curve_frame(np.asarray(budgets), out, names, min_roi, resolve)
