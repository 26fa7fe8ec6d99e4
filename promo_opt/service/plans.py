"""What-if budget curves answered synchronously from a cached frontier.

The first plan question on a scored candidate set (per ROI floor) builds the budget/ROI problem
(``pipeline.plan_problem``) and the frontier path sorted once (``SortedFrontier``); later
questions are binary searches on it through ``allocation.frontier.plan(..., path=)``. With an ROI
floor, budgets whose path point breaks it are answered by the entry's ``FloorPath`` (the floor's
multipliers, recorded on the first such budget), through ``frontier.plan(..., floor=)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promo_opt import pipeline
from promo_opt.allocation.floor_path import FloorPath
from promo_opt.allocation.frontier import frontier_path
from promo_opt.allocation.frontier import plan as plan_curve
from promo_opt.allocation.problem import AllocationProblem
from promo_opt.allocation.sorted_path import SortedFrontier
from promo_opt.config import CampaignConfig
from promo_opt.data import read_table


@dataclass
class CachedFrontier:
    problem: AllocationProblem
    conversions: np.ndarray
    frontier: SortedFrontier
    floor: FloorPath | None = None  # with an ROI floor: built lazily, on the first budget that breaks it
    correction: dict | None = None  # the scoring model's held-out measurement: each point's forecast


class FrontierCache:
    """Least-recently-used frontiers, keyed by (scores id, ROI floor); each built once even under load."""

    def __init__(self, size: int, on_change=None):
        self.size = max(int(size), 1)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key) -> CachedFrontier | None:
        with self._lock:
            return self._items.get(key)

    def get(self, key, build) -> CachedFrontier:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            lock = self._building.setdefault(key, threading.Lock())
        with lock:  # one builder per key; the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = build()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._building.pop(key, None)
                if self._on_change:
                    self._on_change(len(self._items))
            return value


def build_frontier(config: CampaignConfig, scores_path: Path, min_roi: float | None,
                   correction: dict | None = None) -> CachedFrontier:
    """``correction``: the scoring model's, so the floor is held on the forecast as in an allocation."""
    scores = read_table(scores_path, "scores")
    problem, conversions = pipeline.plan_problem(config, scores, min_roi=min_roi, correction=correction)
    path = SortedFrontier.from_path(frontier_path(problem, conversions))
    floor = FloorPath(problem, conversions) if problem.min_roi is not None else None
    return CachedFrontier(problem=problem, conversions=conversions, frontier=path, floor=floor, correction=correction)


class _WithArmSpend:
    """The cached frontier as ``frontier.plan`` reads a path, answering spend per arm too."""

    def __init__(self, frontier: SortedFrontier):
        self.frontier = frontier

    @property
    def max_useful_spend(self) -> float:
        return self.frontier.max_useful_spend

    def points(self, budgets):
        return self.frontier.points(budgets, spend_per_arm=True)


def answer(config: CampaignConfig, cached: CachedFrontier, budgets, n_points: int) -> dict[str, list]:
    """The plan's columns as lists (spend_<arm> included): ``frontier.plan`` (ROI floor: points breaking
    it from the cached ``FloorPath``) or the frontier's arrays; with the model's held-out measurement,
    the forecast columns of ``pipeline.curve_forecast``."""
    def curve_at(held):
        if cached.problem.min_roi is not None:
            df = plan_curve(cached.problem, cached.conversions, budgets=held, n_points=n_points,
                            arm_names=config.arm_names, path=_WithArmSpend(cached.frontier), floor=cached.floor)
            return {c: df[c].to_numpy() for c in df.columns}
        if held is None:
            held = np.linspace(0.0, cached.frontier.max_useful_spend, n_points)
        cols = dict(cached.frontier.curve(held, config.arm_names, spend_per_arm=True))
        cols["resolved"] = np.zeros(len(cols["budget"]), dtype=bool)
        return cols

    cols = pipeline.on_held_budgets(budgets, cached.correction, curve_at)  # each budget held on the forecast
    if cached.correction:
        cols.update(pipeline.curve_forecast(cols, cached.correction, config.objective, cached.problem.n_users) or {})
    return {c: np.asarray(v).tolist() for c, v in cols.items()}


def point_forecasts(cols: dict[str, list], objective: str) -> list[dict | None]:
    """Each point's ``forecast`` as the API gives it (``PlanForecast``: the shape of an allocation's
    ``summary.forecast``, its warning in the same words), from the columns of :func:`answer`; None per
    point without the model's held-out measurement."""
    n = len(cols["budget"])
    if "forecast_incremental_conversions" not in cols:
        return [None] * n
    totals = ("incremental_conversions", "incremental_revenue", "spend")
    out = []
    for i in range(n):
        f = {k: cols[f"forecast_{k}"][i] for k in totals}
        f["interval90"] = {k: [cols[f"forecast_{k}_lo90"][i], cols[f"forecast_{k}_hi90"][i]] for k in totals}
        f["net_revenue_interval90"] = [cols["forecast_net_revenue_lo90"][i], cols["forecast_net_revenue_hi90"][i]]
        f["warning"] = pipeline.evidence_warning(f, objective) if cols["forecast_warning"][i] else None
        out.append(f)
    return out
