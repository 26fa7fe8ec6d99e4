"""Exact scoring of a policy in a simulated world whose true probabilities are known.

The truth table has the id column, ``p_<arm>`` for every arm (true conversion probability) and
``value`` (true expected order value). A policy's true incremental conversions, revenue, spend
and ROI follow from the economics; the oracle is the allocator run on the truth itself, with
the same users, budget and ROI floor: the best any learner could do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.allocation import solve
from promo_opt.config import CampaignConfig
from promo_opt.economics import Economics, build_problem, campaign_economics
from promo_opt.errors import DataError


def truth_economics(config: CampaignConfig, ids: np.ndarray, truth: pd.DataFrame) -> Economics:
    """True economics of the users ``ids`` (in that order)."""
    id_col = config.data.id
    need = [id_col, "value"] + [f"p_{a}" for a in config.arm_names]
    missing = [c for c in need if c not in truth.columns]
    if missing:
        raise DataError(f"truth file {config.data.truth}: missing column(s) {missing}")
    t = truth.set_index(id_col)
    absent = pd.Index(ids).difference(t.index)
    if len(absent):
        raise DataError(f"truth file {config.data.truth}: no truth for {len(absent)} candidate id(s), e.g. {list(absent[:3])}")
    t = t.loc[ids]
    p = t[[f"p_{a}" for a in config.arm_names]].to_numpy(dtype=np.float64)
    return campaign_economics(config, p, t["value"].to_numpy(dtype=np.float64))


@dataclass
class TruthReport:
    policy: dict[str, float]
    oracle: dict[str, float]
    expected: dict[str, float]
    budget: float | None
    min_roi: float | None
    objective: str
    forecast: dict[str, float] | None = None  # the winner's-curse-corrected expected totals

    def as_dict(self) -> dict:
        obj_key = "incremental_conversions" if self.objective == "conversions" else "net_revenue"
        d = {"policy_true": self.policy, "oracle_true": self.oracle, "policy_expected": self.expected,
             "objective": obj_key,
             "share_of_oracle": _ratio(self.policy[obj_key], self.oracle[obj_key])}
        if self.budget:
            d["true_spend_vs_budget"] = _ratio(self.policy["spend"], self.budget)
        if self.min_roi:
            d["true_roi_vs_floor"] = _ratio(self.policy["roi"], self.min_roi)
        d["expected_vs_true"] = {k: _ratio(self.expected[k], self.policy[k])
                                 for k in ("incremental_conversions", "spend", "incremental_revenue")}
        if self.forecast is not None:
            d["forecast_vs_true"] = {k: _ratio(self.forecast[k], self.policy[k])
                                     for k in ("incremental_conversions", "spend", "incremental_revenue")}
            if "interval90" in self.forecast:
                d["interval90_covers"] = {k: bool(lo <= self.policy[k] <= hi)
                                          for k, (lo, hi) in self.forecast["interval90"].items()}
        return d


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def score_against_truth(config: CampaignConfig, ids: np.ndarray, arm: np.ndarray, treatable: np.ndarray,
                        truth: pd.DataFrame, expected: dict[str, float], budget: float | None,
                        min_roi: float | None, segment: np.ndarray | None = None,
                        segment_names: list[str] | None = None, forecast: dict | None = None,
                        like: Economics | None = None) -> TruthReport:
    """True totals of ``arm`` and of the oracle over the ``treatable`` (non-holdout) users.

    The oracle faces the same constraints as the policy: budget, ROI floor, arm caps and, when
    ``segment`` (codes of the treatable users, as given to the allocator) is given, the segment budgets.
    ``like``: the policy's economics of the same ``ids``; its long-term multipliers (per user with
    ``ltv.segment``) value the oracle's gains under ``objective: long_term_value``.
    """
    econ = truth_economics(config, ids, truth)
    if like is not None and like.long_term_multiplier is not None:
        econ = dataclasses.replace(econ, long_term_multiplier=like.long_term_multiplier,
                                   long_term_segment=like.long_term_segment)
    sub = econ.subset(treatable)
    oracle = solve(build_problem(sub, config, budget=budget, min_roi=min_roi, segment=segment,
                                 segment_names=segment_names), solver=config.solver)
    return TruthReport(policy=econ.totals(arm), oracle=sub.totals(oracle.arm), expected=expected,
                       budget=budget, min_roi=min_roi, objective=config.objective, forecast=forecast)
