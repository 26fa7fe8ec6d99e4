"""The long-term model on Spark: the Gram matrices summed over partitions of whole customers.

The panel is hash-partitioned by customer; every partition runs the core's own ``check_panel`` (which
puts its rows in (customer, week) order: a Spark sort would only repeat it, and measured it took about half
of the shuffle-to-pandas time) and ``gram_matrices`` on its customers (so the bad-input checks and the arithmetic
are the local engine's) and returns ``Z'Z``, its bootstrap replicates and a few panel-wide
summaries. The driver adds them up and calls the same ``fit_from_grams`` and ``value_fit`` as the
local engine: the coefficients and values equal the local ones up to floating-point summation
order. Bootstrap weights are drawn per partition (seeded by the partition id), so the intervals
are equally valid but not bit-identical to the local engine's.

``ltv.segment``: every partition also returns the Gram matrices and summaries of each level's customers
(a level's customers are whole on their partitions, so the sums over partitions are the level's); the driver
drops the controls constant within a level (their Gram rows and columns: what is left is exactly the Gram of
the level's own design, as the local engine's refit of the level's sub-panel builds it) and hands the levels to
the same ``value_segments``.
"""

from __future__ import annotations

import numpy as np

from promo_opt.config import CampaignConfig
from promo_opt.errors import ConfigError, DataError
from promo_opt.ltv.model import Design, FittedSystem, Grams, check_identifiable, fit_from_grams, make_design
from promo_opt.ltv.shocks import Start
from promo_opt.ltv.valuation import LtvResult, SegmentLevel, check_shock_targets, value_fit, value_segments
from promo_opt.spark.session import read_input, spark_session, user_errors


def estimate_ltv_spark(config: CampaignConfig, boot: int | None = None, spark=None) -> LtvResult:
    """``promo-opt ltv --engine spark``: the same result as :func:`promo_opt.ltv.valuation.estimate_ltv`."""
    fit, start, levels = _fit_spark(config, boot, spark)
    res = value_fit(config, fit, start)
    if config.ltv.segment is not None:
        res.segment = config.ltv.segment
        res.segments = value_segments(config, levels, res.arms, res.notes)
    return res


def fit_ltv_spark(config: CampaignConfig, boot: int | None = None, spark=None) -> tuple[FittedSystem, Start]:
    """The fitted system and the average customer's start, from the panel on Spark."""
    fit, start, _ = _fit_spark(config, boot, spark)
    return fit, start


POOLED = "\x00all"  # the key of the whole panel's sums (a level of ltv.segment is text, never this)


def _fit_spark(config: CampaignConfig, boot: int | None, spark) -> tuple[FittedSystem, Start, list[SegmentLevel]]:
    """The whole panel's fit and start, and the levels of ``ltv.segment`` (empty without one)."""
    ltv = config.ltv
    if ltv is None or ltv.panel is None:
        raise ConfigError("ltv.panel is not set: 'promo-opt ltv' fits the weekly customer panel")
    boot = ltv.boot if boot is None else boot
    check_shock_targets(ltv, config.arm_names)
    spark = spark or spark_session(config.spark, "promo-opt ltv")
    path = str(ltv.panel)
    if not (path.lower().endswith((".csv", ".parquet", ".pq")) or path.startswith("table:")):
        raise DataError(f"ltv panel {path}: the Spark engine reads .csv, .parquet or table:<name>")
    df = read_input(spark, path, "ltv panel", config.spark.partitions)
    need = list(dict.fromkeys([ltv.customer, ltv.week, ltv.treatment, *ltv.variables, *ltv.controls,
                               *([ltv.segment] if ltv.segment else [])]))
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} named in ltv:; the panel has {df.columns[:30]}")
    types = dict(df.dtypes)
    text = [c for c in ltv.controls if types[c] in ("string", "boolean") or types[c].startswith(("date", "timestamp"))]
    if text:
        raise DataError(f"{path}: control(s) {text} are not numeric; the Spark engine takes numeric controls "
                        "(encode categories as 0/1 columns, or use --engine local)")
    arm_names = config.arm_names
    level_controls = [f"level:{v}" for v in ltv.variables] if ltv.customer_levels else []
    design = make_design(ltv, arm_names, [*ltv.controls, *level_controls])
    q, p, K = design.q, len(design.control_names), len(arm_names)
    seed = config.seed

    def partition(frames):
        import pandas as pd
        from pyspark import TaskContext

        from promo_opt.ltv.model import gram_matrices
        from promo_opt.ltv.panel import check_panel

        parts = list(frames)
        if not parts or sum(len(f) for f in parts) == 0:
            return
        pdf = pd.concat(parts, ignore_index=True)
        panel = check_panel(pdf, ltv, arm_names, source=path)
        pid = TaskContext.get().partitionId()
        subsets = [(POOLED, panel)]
        if ltv.segment is not None:  # every level's customers, all controls kept (the driver drops constant ones)
            subsets += [(str(lv), panel.customers(panel.segment == lv, drop_constant_controls=False))
                        for lv in np.unique(panel.segment)]
        for key, sub in subsets:
            grams = gram_matrices(sub, design, boot, seed * 100_003 + pid) if _has_rows(sub, design.first_row) else None
            stats = np.concatenate([
                [sub.n_rows, sub.n_customers, grams.n_rows if grams else 0, grams.n_customers if grams else 0],
                np.bincount(sub.arm, minlength=K), sub.y.sum(axis=0, dtype=np.float64), sub.y.min(axis=0),
                sub.y.max(axis=0), sub.controls.sum(axis=0), sub.controls.min(axis=0) if p else [],
                sub.controls.max(axis=0) if p else []])
            yield pd.DataFrame({"key": [key], "g": [grams.G.ravel() if grams else np.zeros(q * q)],
                                "gb": [grams.G_boot.ravel() if grams else np.zeros(boot * q * q)], "stats": [stats]})

    out = (df.select(*need).repartition(config.spark.partitions or spark.sparkContext.defaultParallelism, ltv.customer)
           .mapInPandas(partition, "key string, g array<double>, gb array<double>, stats array<double>"))
    with user_errors():
        rows = out.toPandas()
    if rows.empty:
        raise DataError(f"{path}: the ltv panel is empty")
    fit, start = _solve(ltv, design, arm_names, rows[rows["key"] == POOLED], boot, reduce_controls=False)
    levels = []
    for key, part in rows[rows["key"] != POOLED].groupby("key", sort=True):
        n = int(np.stack(part["stats"].to_numpy())[:, 1].sum())
        levels.append(SegmentLevel(str(key), n, lambda part=part: _solve(ltv, design, arm_names, part, boot,
                                                                         reduce_controls=True)))
    return fit, start, levels


def _solve(ltv, design: Design, arm_names: list[str], rows, boot: int,
           reduce_controls: bool) -> tuple[FittedSystem, Start]:
    """The fit and start of the customers whose partition sums are ``rows``. ``reduce_controls``: drop the controls
    constant among them, with their Gram rows and columns (a level's own design, as the local refit builds it)."""
    q, m, p, K = design.q, len(design.variables), len(design.control_names), len(arm_names)
    G = np.sum(np.stack(rows["g"].to_numpy()), axis=0).reshape(q, q)
    G_boot = np.sum(np.stack(rows["gb"].to_numpy()), axis=0).reshape(boot, q, q)
    S = np.stack(rows["stats"].to_numpy())
    o = 4
    arm_counts = S[:, o:o + K].sum(axis=0)
    y_sum = S[:, o + K:o + K + m].sum(axis=0)
    y_min = S[:, o + K + m:o + K + 2 * m].min(axis=0)
    y_max = S[:, o + K + 2 * m:o + K + 3 * m].max(axis=0)
    c0 = o + K + 3 * m
    c_sum = S[:, c0:c0 + p].sum(axis=0)
    c_min, c_max = S[:, c0 + p:c0 + 2 * p].min(axis=0), S[:, c0 + 2 * p:c0 + 3 * p].max(axis=0)
    n_rows, n_customers, used_rows, used_customers = S[:, :4].sum(axis=0)
    if used_rows == 0:
        raise DataError(f"ltv panel: no customer has more than {design.first_row} weeks (ltv.lags, ltv.level_weeks); "
                        "the model needs those weeks plus at least one week to fit")
    if reduce_controls:
        varies = c_max > c_min
        own = make_design(ltv, arm_names, [c for c, v in zip(design.control_names, varies) if v])
        idx = np.array([design.regressors.index(r) for r in own.regressors])
        G, G_boot = G[np.ix_(idx, idx)], G_boot[:, idx][:, :, idx]
        design, c_sum, c_min, c_max = own, c_sum[varies], c_min[varies], c_max[varies]
    check_identifiable(arm_counts, y_max - y_min, c_max - c_min, design, arm_names)
    fit = fit_from_grams(ltv, design, Grams(G=G, G_boot=G_boot, n_rows=int(used_rows), n_customers=int(used_customers)))
    start = Start(lags=np.tile(y_sum / n_rows, (ltv.lags, 1)), controls=c_sum / n_customers)
    return fit, start


def _has_rows(panel, first_row: int) -> bool:
    counts = np.bincount(panel.customer)
    return bool((counts > first_row).any())
