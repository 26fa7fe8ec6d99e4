"""Distributed allocation: the single-machine dual, one partial result per partition.

The scores stay in Spark. Each pass maps every partition through the core (``economics_from_scores``
then ``build_problem`` per Arrow batch: the same validation and the same per-user arithmetic as on
one machine) and returns small partial results to the driver:

* index: row counts per partition, then every row gets its global position ``_row`` and its
  position among the treatable (non-holdout) users ``_t``; the holdout is the core's
  ``holdout_mask`` over the same positions, so both engines hold out the same users;
* rows: the (g, c, a) rows of a subsample (multiplier estimate) or of the free users;
* split: per partition ``_corner_choices`` (fixed users' spend and revenue summed, free users sent);
* bound: per partition ``dual_value`` sums: the certificate D(lam, mu);
* output: every user's arm, then the core's ``Economics.pick`` columns, written atomically.

The multiplier search and the exact step on the few free users are
:func:`promo_opt.allocation.dual.reduced_solve` itself, running on the driver against
:class:`SparkAccess`; small problems (and arm caps / segment budgets, which the dual does not
handle) are collected and solved by :func:`promo_opt.pipeline.allocate`, as one machine would.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promo_opt import pipeline
from promo_opt.allocation import EXACT_AUTO_LIMIT, best_attainable_roi, unreachable_floor
from promo_opt.allocation.dual import DIRECT_LIMIT, _corner_choices, dual_value, reduced_solve, solve_exact
from promo_opt.allocation.problem import relative_gap
from promo_opt.config import CampaignConfig
from promo_opt.economics import build_problem
from promo_opt.errors import DataError, PromoOptError
from promo_opt.spark.output import write_parquet_atomic
from promo_opt.spark.session import user_errors

log = logging.getLogger(__name__)

ROW, TREAT = "_row", "_t"  # global position; position among treatable users (-1: holdout)


# --------------------------------------------------------------------------------------------
# passes
# --------------------------------------------------------------------------------------------
@dataclass
class PassLog:
    """What each pass over the data did and cost (the engine's progress report)."""

    passes: list[dict] = field(default_factory=list)

    def add(self, name: str, seconds: float, **info) -> None:
        self.passes.append({"pass": len(self.passes) + 1, "name": name, "seconds": round(seconds, 3), **info})
        log.info("pass %d (%s): %.2fs %s", len(self.passes), name, seconds,
                 " ".join(f"{k}={v}" for k, v in info.items()))


@dataclass
class IndexedScores:
    """A scores DataFrame with ``_row`` and ``_t``, persisted for the passes that follow."""

    df: object  # pyspark DataFrame
    n: int
    n_treat: int
    holdout_size: int
    log: PassLog
    cache: dict = field(default_factory=dict)  # rows already collected, by request


def _check_columns(config: CampaignConfig, columns: list[str]) -> None:
    """The core's column checks, run on an empty frame with the Spark columns."""
    empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    pipeline.economics_from_scores(config, empty)
    if config.data.segment and config.data.segment not in columns:
        raise DataError(f"scores: missing column '{config.data.segment}' (data.segment); re-run 'promo-opt score'")


def index_scores(spark, config: CampaignConfig, scores, plog: PassLog | None = None,
                 partitions: int | None = None) -> IndexedScores:
    """Number the rows in input order and mark the holdout (the core's mask over the same order).

    The order is Spark's read order (for one Parquet file, the file's order, as the local engine
    reads it). ``partitions`` repartitions after numbering, so the numbers keep that order.
    """
    from pyspark import StorageLevel, TaskContext

    plog = plog or PassLog()
    _check_columns(config, scores.columns)
    id_col = config.data.id
    t0 = time.perf_counter()

    def count(it):
        pid = TaskContext.get().partitionId()
        n = sum(len(b) for b in it)
        yield pd.DataFrame({"pid": [pid], "n": [n]})

    with user_errors():
        counts = scores.select(id_col).mapInPandas(count, "pid int, n long").toPandas()
    sizes = np.zeros(scores.rdd.getNumPartitions(), dtype=np.int64)
    sizes[counts["pid"].to_numpy()] = counts["n"].to_numpy()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n = int(offsets[-1])
    hold = pipeline.holdout_mask(n, config.holdout.fraction, config.seed)
    t_offsets = offsets[:-1] - np.concatenate([[0], np.cumsum(hold)])[offsets[:-1]]
    plog.add("count rows", time.perf_counter() - t0, rows=n, partitions=int(sizes.size))
    bc = spark.sparkContext.broadcast((np.packbits(hold), n, offsets, t_offsets))

    def number(it):
        bits, _, off, t_off = bc.value
        pid = TaskContext.get().partitionId()
        lo, hi = int(off[pid]), int(off[pid + 1])
        b0 = lo // 8  # unpack only this partition's bytes of the mask
        h = np.unpackbits(bits[b0:(hi + 7) // 8])[lo - 8 * b0:hi - 8 * b0].astype(bool)
        t_local = np.cumsum(~h) - 1 + t_off[pid]
        pos = 0
        for b in it:
            m = len(b)
            b[ROW] = np.arange(lo + pos, lo + pos + m, dtype=np.int64)
            b[TREAT] = np.where(h[pos:pos + m], -1, t_local[pos:pos + m])
            pos += m
            yield b

    from pyspark.sql.types import StructType

    schema = StructType(list(scores.schema.fields)).add(ROW, "long").add(TREAT, "long")  # add() mutates: copy
    df = scores.mapInPandas(number, schema)
    if partitions:
        df = df.repartition(partitions)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    t0 = time.perf_counter()
    with user_errors():
        dup = df.groupBy(id_col).count().filter("count > 1").limit(3).collect()
    if dup:
        raise DataError(f"scores: column '{id_col}' has repeated ids, e.g. {[r[0] for r in dup]}")
    plog.add("number rows, check ids unique", time.perf_counter() - t0)
    return IndexedScores(df=df, n=n, n_treat=n - int(hold.sum()), holdout_size=int(hold.sum()), log=plog)


def _local(pdf: pd.DataFrame, config: CampaignConfig, min_roi, cost_weight: float = 1.0):
    """The core's economics of one Arrow batch: (t (m,), problem over its treatable users, econ of all rows).
    ``cost_weight``: the net revenue's weight on spend (:func:`promo_opt.pipeline.allocation_cost_weight`).

    ``econ.subset(t_all >= 0)`` and the problem's rows are the batch's treatable users, in order.
    """
    try:
        _, econ = pipeline.economics_from_scores(config, pdf)
    except DataError as err:  # its row numbers count from the batch's first row
        raise DataError(f"{err} (row numbers from input row {int(pdf[ROW].iloc[0])})") from None
    t = pdf[TREAT].to_numpy()
    keep = t >= 0
    problem = build_problem(econ.subset(keep), config, budget=None, min_roi=min_roi, cost_weight=cost_weight)
    return t[keep], problem, econ


def _rows_schema(K: int) -> str:
    return ", ".join(["kind int", "t long"] + [f"x{j} double" for j in range(3 * K)])


def _emit(t, g, c, r, partial=()) -> pd.DataFrame:
    """Rows (kind 0: t, g, c, r) and one row of partial sums (kind 1: x0, x1, ...)."""
    K = g.shape[1]
    data = np.hstack([g, c, r]) if len(t) else np.zeros((0, 3 * K))
    out = pd.DataFrame(data, columns=[f"x{j}" for j in range(3 * K)])
    out.insert(0, "t", np.asarray(t, dtype=np.int64))
    out.insert(0, "kind", np.zeros(len(t), dtype=np.int32))
    if partial:
        row = {"kind": 1, "t": -1, **{f"x{j}": 0.0 for j in range(3 * K)}}
        row.update({f"x{j}": float(v) for j, v in enumerate(partial)})
        out = pd.concat([out, pd.DataFrame([row]).astype(out.dtypes.to_dict())], ignore_index=True)
    return out


class SparkAccess:
    """:class:`promo_opt.allocation.dual.ArrayAccess`'s four members as distributed passes."""

    def __init__(self, spark, idx: IndexedScores, config: CampaignConfig, min_roi, cost_weight: float = 1.0):
        self.spark, self.idx, self.config, self.min_roi = spark, idx, config, min_roi
        self.cost_weight = cost_weight
        self.R = min_roi or 0.0
        self.n = idx.n_treat
        self.K = len(config.arm_names)

    def _pass(self, name: str, fn, **info):
        t0 = time.perf_counter()
        with user_errors():
            out = self.idx.df.mapInPandas(fn, _rows_schema(self.K)).toPandas()
        rows = out[out["kind"] == 0].sort_values("t", kind="stable")
        parts = out[out["kind"] == 1]
        K = self.K
        x = rows[[f"x{j}" for j in range(3 * K)]].to_numpy(dtype=np.float64)
        g, c, r = x[:, :K], x[:, K:2 * K], x[:, 2 * K:]
        self.idx.log.add(name, time.perf_counter() - t0, rows_to_driver=int(len(rows)), **info)
        return rows["t"].to_numpy(), np.ascontiguousarray(g), np.ascontiguousarray(c), np.ascontiguousarray(r), parts

    def rows(self, sample):
        sample = np.asarray(sample, dtype=np.int64)
        key = (self.min_roi, self.cost_weight, sample.size, hash(sample.tobytes()))
        if key in self.idx.cache:  # e.g. the same subsample for every budget of a plan
            self.idx.log.add("collect rows (cached)", 0.0, requested=int(sample.size))
            return self.idx.cache[key]
        bc = self.spark.sparkContext.broadcast(sample)
        config, min_roi, cw = self.config, self.min_roi, self.cost_weight

        def fn(it):
            s = bc.value
            for pdf in it:
                t, p, _ = _local(pdf, config, min_roi, cw)
                pos = np.minimum(np.searchsorted(s, t), max(s.size - 1, 0))
                hit = (s[pos] == t) if s.size else np.zeros(t.size, dtype=bool)
                yield _emit(t[hit], p.gain[hit], p.spend[hit], p.revenue[hit])

        t, g, c, r, _ = self._pass("collect rows", fn, requested=int(sample.size))
        bc.destroy()
        if not np.array_equal(t, sample):
            raise RuntimeError(f"collected {t.size} rows for {sample.size} requested positions")
        out = (g, c, r - self.R * c)
        if sample.size <= 4_000_000:
            self.idx.cache[key] = out
        return out

    def split(self, corners):
        corners = [tuple(map(float, cn)) for cn in corners]
        config, min_roi, R, cw = self.config, self.min_roi, self.R, self.cost_weight

        def fn(it):
            for pdf in it:
                t, p, _ = _local(pdf, config, min_roi, cw)
                g, c, r = p.gain, p.spend, p.revenue
                ref, same = _corner_choices(g, c, r, corners, R)
                fixed = np.flatnonzero(same)
                free = ~same
                yield _emit(t[free], g[free], c[free], r[free],
                            (c[fixed, ref[fixed]].sum(), r[fixed, ref[fixed]].sum()))

        t, g, c, r, parts = self._pass("split fixed/free users", fn, corners=len(corners))
        fc, fr = math.fsum(parts["x0"]), math.fsum(parts["x1"])
        log.info("box corners %s: %d free users, fixed spend %.6g", corners, t.size, fc)

        def policy(free_arm):
            return {"corners": corners, "free": t, "free_arm": np.asarray(free_arm, dtype=np.int64)}

        return fc, fr, t, (g, c, r - R * c), policy

    def solve_all(self, budget, roi):
        g, c, a = self.rows(np.arange(self.n, dtype=np.int64))
        return solve_exact(g, c, a, budget, 0.0, roi)

    def partial_sums(self, name: str, per_batch) -> np.ndarray:
        """(batches, values): ``per_batch(t, problem, econ) -> sequence of floats`` for every Arrow batch.

        ``problem`` and ``econ`` cover the batch's treatable users only; the caller sums the columns.
        """
        config, min_roi, cw = self.config, self.min_roi, self.cost_weight

        def fn(it):
            for pdf in it:
                t, p, econ = _local(pdf, config, min_roi, cw)
                sub = econ.subset(pdf[TREAT].to_numpy() >= 0)
                yield pd.DataFrame({"vals": [np.asarray(per_batch(t, p, sub), dtype=np.float64).tolist()]})

        t0 = time.perf_counter()
        with user_errors():
            out = self.idx.df.mapInPandas(fn, "vals array<double>").toPandas()
        self.idx.log.add(name, time.perf_counter() - t0)
        return np.array(out["vals"].tolist(), dtype=np.float64).reshape(len(out), -1)


# --------------------------------------------------------------------------------------------
# allocate
# --------------------------------------------------------------------------------------------
@dataclass
class SparkAllocationOutcome:
    """Where the targeting list went and the same summary as :func:`promo_opt.pipeline.allocate`."""

    targets_path: str
    summary: dict
    passes: list[dict]


def _arms_of_batch_from(p, t, policy, min_roi) -> np.ndarray:
    """The policy's arm of each treatable user of a batch (``p`` its problem, ``t`` its positions)."""
    if isinstance(policy, dict):
        arm, _ = _corner_choices(p.gain, p.spend, p.revenue, policy["corners"], min_roi or 0.0)
        free = policy["free"]
        pos = np.minimum(np.searchsorted(free, t), max(free.size - 1, 0))
        hit = (free[pos] == t) if free.size else np.zeros(t.size, dtype=bool)
        arm[hit] = policy["free_arm"][pos[hit]]
        return arm
    return policy[t]  # an explicit arm per treatable user


def _arms_of_batch(pdf, config, min_roi, policy, cost_weight: float = 1.0):
    """Every row's arm index (holdout -> control) and the batch's economics."""
    t, p, econ = _local(pdf, config, min_roi, cost_weight)
    arm = np.zeros(len(pdf), dtype=np.int64)
    arm[pdf[TREAT].to_numpy() >= 0] = _arms_of_batch_from(p, t, policy, min_roi)
    return arm, econ


def _targets_frame(spark, idx: IndexedScores, config: CampaignConfig, min_roi, policy, cost_weight: float = 1.0):
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructType

    bc = spark.sparkContext.broadcast(policy)
    names = np.array(config.arm_names, dtype=object)
    id_field = idx.df.schema[config.data.id]
    schema = StructType([id_field]).add("arm", StringType()).add("holdout", BooleanType())
    for col in ("p_control", "p_arm", "incremental_conversions", "expected_cost", "incremental_revenue"):
        schema = schema.add(col, DoubleType())
    id_col = config.data.id

    def fn(it):
        pol = bc.value
        for pdf in it:
            arm, econ = _arms_of_batch(pdf, config, min_roi, pol, cost_weight)
            cols = econ.pick(arm)
            yield pd.DataFrame({id_col: pdf[id_col].to_numpy(), "arm": names[arm],
                                "holdout": pdf[TREAT].to_numpy() < 0, **cols})

    return idx.df.mapInPandas(fn, schema)


def _totals_from(spark, path: str, config: CampaignConfig) -> pd.DataFrame:
    from pyspark.sql import functions as F

    df = spark.read.option("basePath", path).parquet(path)
    return (df.groupBy(F.col("arm").cast("string").alias("arm"))
            .agg(F.count(F.lit(1)).alias("users"), F.sum("expected_cost").alias("spend"),
                 F.sum("incremental_conversions").alias("conversions"),
                 F.sum("incremental_revenue").alias("revenue"),
                 F.sum(F.col("holdout").cast("long")).alias("holdout"))
            .toPandas().set_index("arm"))


def allocate(spark, config: CampaignConfig, scores, targets_path: str, *, budget: float | None = None,
             min_roi: float | None = None, direct_limit: int | None = None,
             partitions: int | None = None, correction: dict | None = None) -> SparkAllocationOutcome:
    """Allocate the users of a Spark scores DataFrame; write the targeting list atomically.

    Same policy, objective and certificate as :func:`promo_opt.pipeline.allocate` on the same rows in
    the same order, the ROI floor and the budget held on the forecast of the model's ``correction`` as there
    (:func:`promo_opt.pipeline.allocation_floor`, :func:`promo_opt.pipeline.allocation_budget`). ``direct_limit`` (default: the single-machine
    dual's) is the number of treatable users up to which they are collected and solved on the
    driver, as one machine does.
    """
    t_start = time.perf_counter()
    budget = config.constraints.budget if budget is None else budget
    min_roi = config.constraints.min_roi if min_roi is None else min_roi
    direct_limit = DIRECT_LIMIT if direct_limit is None else direct_limit
    plog = PassLog()
    idx = index_scores(spark, config, scores, plog, partitions or config.spark.partitions)
    try:
        side = pipeline._side_constraints(config)
        if side or config.solver not in ("auto", "dual") or idx.n_treat <= direct_limit:
            if side or config.solver not in ("auto", "dual"):
                check_exact_size(config, idx.n_treat)
            summary = _allocate_collected(spark, config, idx, targets_path, budget, min_roi, correction)
        else:
            floor = pipeline.allocation_floor(min_roi, correction)
            held = pipeline.allocation_budget(budget, correction)
            weight = pipeline.allocation_cost_weight(config.objective, correction)
            confidence = config.constraints.min_roi_confidence
            if confidence is not None and min_roi:  # guarantee mode, as pipeline.allocate holds it
                from promo_opt.evaluation.guarantee import guaranteed_floor

                corr = pipeline._guarantee_correction(correction)

                def solve_at(m):  # every solve writes the targets; the last one is the policy returned
                    out = _allocate_distributed(spark, config, idx, targets_path, held, m, weight)
                    return out, out["expected"]

                summary, _, guarantee = pipeline.with_floor_named(
                    lambda: guaranteed_floor(solve_at, min_roi, confidence, corr, start=floor), min_roi, floor)
                floor = guarantee.allocated_min_roi
                summary["roi_guarantee"] = guarantee.as_dict()
            else:
                summary = pipeline.with_floor_named(
                    lambda: _allocate_distributed(spark, config, idx, targets_path, held, floor, weight), min_roi, floor)
            summary.update(budget=budget, allocated_budget=held, min_roi=min_roi, allocated_min_roi=floor)
            use = pipeline.budget_use(summary["expected"], held, floor, config.objective, asked=min_roi)
            if use is not None:  # the distributed dual takes no caps: budget, floor or objective
                summary["budget_use"] = use
            named = pipeline.reported_cost_weight(config.objective, correction)
            if named is not None:
                summary["allocated_cost_weight"] = named
    finally:
        idx.df.unpersist()
    summary["engine"] = "spark"
    summary["spark"] = {"master": spark.sparkContext.master, "partitions": int(idx.df.rdd.getNumPartitions()),
                        "passes": plog.passes, "targets": targets_path}
    summary["seconds"] = {"allocate": time.perf_counter() - t_start}
    return SparkAllocationOutcome(targets_path=targets_path, summary=summary, passes=plog.passes)


def check_exact_size(config: CampaignConfig, n_treat: int) -> None:
    """Arm caps, segment budgets or an exact solver named in the config are solved on the driver by the core; refuse
    what it does not take (``EXACT_AUTO_LIMIT`` user x arm cells)."""
    K = len(config.arm_names)
    if n_treat * (K - 1) > EXACT_AUTO_LIMIT:
        raise PromoOptError(
            f"arm caps, segment budgets or solver '{config.solver}' need the exact single-machine solver, "
            f"which takes at most {EXACT_AUTO_LIMIT} user x arm cells; these {n_treat} users x "
            f"{K - 1} arms are more: drop the caps/segments (or use solver auto) for the Spark engine")


def collect_scores(idx: IndexedScores) -> pd.DataFrame:
    """The scores on the driver, in input order, as the core reads them."""
    with user_errors():
        pdf = idx.df.toPandas()
    return pdf.sort_values(ROW, kind="stable").drop(columns=[ROW, TREAT]).reset_index(drop=True)


def _allocate_collected(spark, config, idx, targets_path, budget, min_roi, correction) -> dict:
    """Few users (or side constraints): collect the scores in order and call the core."""
    t0 = time.perf_counter()
    pdf = collect_scores(idx)
    outcome = pipeline.allocate(config, pdf, budget=budget, min_roi=min_roi, correction=correction)
    idx.log.add("collect and solve on the driver", time.perf_counter() - t0, users=int(len(pdf)),
                solver=outcome.summary["solver"])
    t0 = time.perf_counter()
    targets = spark.createDataFrame(outcome.targets)
    write_parquet_atomic(spark, targets, targets_path, config.spark.partition_by)
    idx.log.add("write targets", time.perf_counter() - t0)
    return dict(outcome.summary)


@dataclass
class DistributedSolve:
    """The reduced dual's result on Spark; ``policy`` is what ``SparkAccess.split`` built (or an arm array)."""

    policy: object
    lam: float
    mu: float
    n_fractional: int
    how: str
    bound: float
    seconds: float  # driver time of the multiplier search and the exact step
    totals: dict | None = None  # objective, spend, revenue, conversions, counts (K,) over the treatable users


def solve_distributed(spark, config: CampaignConfig, idx: IndexedScores, budget, min_roi,
                      totals: bool = False, cost_weight: float = 1.0) -> DistributedSolve:
    """The core's reduced dual against :class:`SparkAccess`, then one pass for the bound (and the totals)."""
    access = SparkAccess(spark, idx, config, min_roi, cost_weight)
    roi = min_roi is not None
    t0 = time.perf_counter()
    policy, lam, mu, nf, how = reduced_solve(access, budget if budget is not None else np.inf, roi, seed=0)
    seconds = time.perf_counter() - t0
    if not isinstance(policy, dict):
        policy = np.asarray(policy, dtype=np.int64)
    bc = spark.sparkContext.broadcast(policy) if totals else None
    K = access.K

    def part(t, p, econ):
        out = [dual_value(p, lam, mu)]  # p.budget is None: the sum of max_k only
        if bc is not None:
            arm = _arms_of_batch_from(p, t, bc.value, min_roi)
            rows = np.arange(t.size)
            out += [p.gain[rows, arm].sum(), p.spend[rows, arm].sum(), p.revenue[rows, arm].sum(),
                    econ.incremental_conversions[rows, arm].sum(), *np.bincount(arm, minlength=K)]
        return out

    parts = access.partial_sums("dual bound" + (", policy totals" if totals else ""), part)
    bound = math.fsum(parts[:, 0]) + lam * (budget if budget is not None else 0.0)
    tot = None
    if totals:
        x = [math.fsum(parts[:, j]) for j in range(1, 5)]
        tot = {"objective": x[0], "spend": x[1], "revenue": x[2], "conversions": x[3],
               "counts": parts[:, 5:5 + K].sum(axis=0).round().astype(np.int64)}
    return DistributedSolve(policy, lam, mu, nf, how, bound, seconds, tot)


def best_roi_distributed(spark, config, idx, min_roi, cost_weight: float = 1.0) -> float:
    """:func:`~promo_opt.allocation.best_attainable_roi` of the treatable candidates, one pass."""
    access = SparkAccess(spark, idx, config, min_roi, cost_weight)
    parts = access.partial_sums("best attainable ROI", lambda t, p, e: (best_attainable_roi(p) if len(t) else -np.inf,))
    return float(parts[:, 0].max()) if len(parts) else float("nan")


def _allocate_distributed(spark, config, idx, targets_path, budget, min_roi, cost_weight: float = 1.0) -> dict:
    if min_roi is not None and idx.n_treat:
        best = best_roi_distributed(spark, config, idx, min_roi, cost_weight)
        if min_roi > best:
            raise unreachable_floor(min_roi, best)
    sol = solve_distributed(spark, config, idx, budget, min_roi, cost_weight=cost_weight)
    t0 = time.perf_counter()
    frame = _targets_frame(spark, idx, config, min_roi, sol.policy, cost_weight)
    with user_errors():
        totals = write_parquet_atomic(spark, frame, targets_path, config.spark.partition_by,
                                      check=lambda tmp: _totals_from(spark, tmp, config))
    idx.log.add("assign arms, write targets", time.perf_counter() - t0)
    return _summary(config, idx, totals, budget, min_roi, sol.bound, sol.n_fractional, sol.how, sol.lam, sol.mu,
                    sol.seconds, cost_weight)


def _summary(config, idx, totals: pd.DataFrame, budget, min_roi, bound, nf, how, lam, mu, seconds,
             cost_weight: float = 1.0) -> dict:
    """The summary of :func:`promo_opt.pipeline.allocate`, from the per-arm totals of the output; the objective
    (for the gap to the bound) is the allocator's: under net_revenue, revenue - ``cost_weight`` x spend."""
    names = config.arm_names
    totals = totals.reindex(names).fillna(0.0)
    spend = float(totals["spend"].sum())
    conv = float(totals["conversions"].sum())
    rev = float(totals["revenue"].sum())
    objective = conv if config.objective == "conversions" else rev - cost_weight * spend
    bad = []
    if budget is not None and spend > budget + 1e-7 * max(1.0, abs(budget)):
        bad.append(f"spend {spend:.6g} > budget {budget:.6g}")
    if min_roi is not None and rev - min_roi * spend < -1e-7 * max(1.0, rev):
        bad.append(f"revenue {rev:.6g} < min_roi {min_roi} x spend {spend:.6g}")
    if bad:
        raise AssertionError(f"dual produced an infeasible policy: {'; '.join(bad)}")
    bound = max(bound, objective)
    gap = relative_gap(objective, bound)
    slacks = {}
    if budget is not None:
        slacks["budget"] = float(budget - spend)
    if min_roi is not None:
        slacks["roi"] = float(rev - min_roi * spend)
    return {
        "campaign": config.name,
        "objective": config.objective,
        "control_arm": config.control.name,
        "budget": budget,
        "min_roi": min_roi,
        "n_candidates": int(idx.n),
        "holdout_size": int(idx.holdout_size),
        "expected": {"incremental_conversions": conv, "incremental_revenue": rev, "spend": spend,
                     "roi": rev / spend if spend > 0 else float("nan"), "net_revenue": rev - spend},
        "users_per_arm": {a: int(totals.loc[a, "users"]) for a in names},
        "spend_per_arm": {a: float(totals.loc[a, "spend"]) for a in names},
        "solver": "dual",
        "solver_reason": "budget/ROI only: the Lagrangian dual decomposes per user (exact LP, certified gap)",
        "solver_status": "optimal" if gap <= 1e-6 else "feasible",
        "lp_upper_bound": bound,
        "gap": gap,
        "n_fractional_rounded": int(nf),
        "slacks": slacks,
        "multipliers": {"lambda_budget": lam, "mu_roi": mu},
        "reduction": how,
        "solve_seconds_on_driver": seconds,
    }
