"""Drivers: the interventional effect of every variable on the outcome, by backdoor adjustment.

For each variable ``v``: a valid adjustment set ``Z`` from the graph (``adjustment.backdoor_set``),
then the linear g-formula ``E[y | do(v = high)] - E[y | do(v = low)] = beta_v (high - low)`` from the
least-squares regression of the outcome on ``v`` and ``Z`` (a text variable: one row per level
against its first level; a 0/1 variable: do(1) vs do(0); a number: do(its ``contrast`` quantiles)).
For a 0/1 outcome this is a linear probability model: the effect is a change in the rate.

Intervals: percentile bootstrap over rows with the graph held fixed (structure uncertainty is
reported separately as edge frequencies). Every resample's regressions come from one weighted
Gram matrix of ``[1, design, y]``, so the cost is one pass over the rows per resample. Above
``bootstrap_rows`` rows the resamples have that many rows and their spread is rescaled by
``sqrt(m / n)`` (m-out-of-n bootstrap of a root-n estimator).

A variable with no directed path to the outcome has effect 0 by the graph; one whose effect the
graph leaves unidentified (an undirected edge at it towards the outcome, or no valid set) gets
no number and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.graph.adjustment import NoAdjustmentSet, backdoor_set
from promo_opt.graph.data import DriversData
from promo_opt.graph.model import CausalGraph


@dataclass
class DriverEffect:
    variable: str
    effect: float
    ci_low: float
    ci_high: float
    low: object
    high: object
    adjustment_set: list[str] | None
    note: str = ""


def _gram(D: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    return D.T @ D if w is None else (D * w[:, None]).T @ D


def _coef(G: np.ndarray, cols: list[int], target: int) -> np.ndarray:
    A = G[np.ix_(cols, cols)]
    A = A + 1e-9 * np.trace(A) / len(cols) * np.eye(len(cols))
    return np.linalg.solve(A, G[cols, target])


def driver_effects(data: DriversData, graph: CausalGraph, B: int = 200, contrast=(0.25, 0.75),
                   max_rows: int | None = None, seed: int = 0) -> list[DriverEffect]:
    """Ranked effects of every variable on ``data.outcome``; see the module doc."""
    y = data.outcome
    D = np.column_stack([np.ones(data.n), data.design, data.frame[y].to_numpy(dtype=np.float64)])
    one, target = 0, D.shape[1] - 1
    col = {v: [c + 1 for c in data.blocks[v]] for v in data.variables}
    specs, rows = [], []
    for v in data.variables:
        if v == y:
            continue
        try:
            adj = backdoor_set(graph, v, y, set(data.variables))
        except NoAdjustmentSet as err:
            rows.append(DriverEffect(v, np.nan, np.nan, np.nan, None, None, None, str(err)))
            continue
        for label, j, scale, low, high in _contrasts(data, v, contrast):
            if not adj.causal_path:
                rows.append(DriverEffect(label, 0.0, 0.0, 0.0, low, high, adj.adjustment_set,
                                         f"no directed path from '{v}' to '{y}' in the graph"))
                continue
            cols = [one] + col[v] + [c for z in adj.adjustment_set for c in col[z]]
            specs.append((label, cols, 1 + col[v].index(j), scale, low, high, adj.adjustment_set))
    if specs:
        G = _gram(D)
        est = np.array([_coef(G, cols, target)[pos] * scale for _, cols, pos, scale, *_ in specs])
        rng = np.random.default_rng(seed)
        m = min(data.n, max_rows or data.n)
        boot = np.empty((B, len(specs)))
        for b in range(B):
            if m == data.n:
                Gb = _gram(D, rng.multinomial(m, np.full(m, 1.0 / m)).astype(np.float64))
            else:
                Gb = _gram(D[rng.integers(0, data.n, m)])
            boot[b] = [_coef(Gb, cols, target)[pos] * scale for _, cols, pos, scale, *_ in specs]
        dev = (boot - boot.mean(0)) * np.sqrt(m / data.n)
        lo, hi = est + np.quantile(dev, 0.025, axis=0), est + np.quantile(dev, 0.975, axis=0)
        for (label, _, _, _, low, high, zset), e, a, b in zip(specs, est, lo, hi):
            rows.append(DriverEffect(label, float(e), float(a), float(b), low, high, zset))
    return sorted(rows, key=lambda r: (np.isnan(r.effect), -abs(r.effect) if not np.isnan(r.effect) else 0))


def _contrasts(data: DriversData, v: str, contrast):
    """(label, design column, scale, low, high) per contrast of ``v`` (design columns are 1-based in D)."""
    kind = data.kinds[v]
    j0 = data.blocks[v][0] + 1
    if kind == "binary":
        return [(v, j0, 1.0, 0, 1)]
    if kind == "continuous":
        lo, hi = np.quantile(data.frame[v].to_numpy(dtype=np.float64), contrast)
        if hi <= lo:  # a spike at one value: fall back to the whole range
            lo, hi = float(data.frame[v].min()), float(data.frame[v].max())
        return [(v, j0, float(hi - lo), float(lo), float(hi))]
    lv = data.levels[v]
    return [(f"{v}={level}", j0 + i, 1.0, lv[0], level) for i, level in enumerate(lv[1:])]


def effects_frame(rows: list[DriverEffect]) -> pd.DataFrame:
    """The ``drivers.csv`` table: variable, effect, ci_low, ci_high, then the contrast and the set."""
    return pd.DataFrame([{"variable": r.variable, "effect": r.effect, "ci_low": r.ci_low, "ci_high": r.ci_high,
                          "low": r.low, "high": r.high,
                          "adjustment_set": "" if r.adjustment_set is None else ";".join(r.adjustment_set),
                          "note": r.note} for r in rows],
                        columns=["variable", "effect", "ci_low", "ci_high", "low", "high", "adjustment_set", "note"])
