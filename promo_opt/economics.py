"""Probabilities and arm costs -> per user x arm gains, spend and revenue.

Shapes: ``p`` is ``(n_users, n_arms)`` with the control arm at column 0; ``value`` is
``(n_users,)``, the expected order value if the user converts. For arm k::

    incremental_conversions[:, k] = p[:, k] - p[:, 0]
    incremental_revenue[:, k]     = (p[:, k] - p[:, 0]) * value
    spend[:, k]                   = cost_per_send_k + p[:, k] * (discount_k * value + cost_per_conversion_k)
    net_revenue[:, k]             = incremental_revenue - spend

A discount or voucher costs money only when the user converts; a send cost is paid for every
user given the arm. Column 0 is all zeros by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from promo_opt.allocation.problem import AllocationProblem, ArmCap
from promo_opt.config import ArmConfig, CampaignConfig
from promo_opt.errors import DataError


@dataclass(frozen=True)
class Economics:
    p: np.ndarray  # (n, K) conversion probability per arm
    value: np.ndarray  # (n,) expected order value if converted
    incremental_conversions: np.ndarray  # (n, K)
    incremental_revenue: np.ndarray  # (n, K)
    spend: np.ndarray  # (n, K) expected promotion spend
    # long_term / immediate of each arm (objective long_term_value; see promo_opt.ltv.objective):
    # (K,) the same for every user, or (n, K) per user (the multipliers of each user's ltv.segment level)
    long_term_multiplier: np.ndarray | None = None
    long_term_segment: np.ndarray | None = None  # (n,) each user's ltv.segment level, with (n, K) multipliers

    @property
    def net_revenue(self) -> np.ndarray:
        return self.incremental_revenue - self.spend

    def gain(self, objective: str, cost_weight: float = 1.0) -> np.ndarray:
        """The allocator's gain per user x arm. ``cost_weight``: the weight of the spend in the net revenue
        (``incremental_revenue - cost_weight x spend``), the break-even held on the held-out measurement
        (:func:`promo_opt.pipeline.allocation_cost_weight`); 1 is the plain net revenue."""
        if objective == "conversions":
            return self.incremental_conversions
        if objective == "net_revenue":
            return self.incremental_revenue - cost_weight * self.spend
        if objective == "long_term_value":
            if self.long_term_multiplier is None:
                raise ValueError("objective 'long_term_value' needs the arms' long-term multipliers "
                                 "(promo_opt.ltv.objective.with_long_term)")
            return self.incremental_revenue * self.long_term_multiplier - self.spend  # (K,) broadcasts over users
        raise ValueError(f"unknown objective {objective!r}; expected 'conversions', 'net_revenue' or 'long_term_value'")

    def subset(self, rows: np.ndarray) -> "Economics":
        """The economics of some users (a boolean mask or indices), without recomputing anything."""
        m, seg = self.long_term_multiplier, self.long_term_segment
        return Economics(p=self.p[rows], value=self.value[rows],
                         incremental_conversions=self.incremental_conversions[rows],
                         incremental_revenue=self.incremental_revenue[rows], spend=self.spend[rows],
                         long_term_multiplier=m[rows] if m is not None and m.ndim == 2 else m,
                         long_term_segment=None if seg is None else seg[rows])

    def pick(self, arm: np.ndarray) -> dict[str, np.ndarray]:
        """Per-user columns of a policy: the chosen arm's p, increments and spend."""
        rows = np.arange(self.p.shape[0])
        return {
            "p_control": self.p[:, 0],
            "p_arm": self.p[rows, arm],
            "incremental_conversions": self.incremental_conversions[rows, arm],
            "expected_cost": self.spend[rows, arm],
            "incremental_revenue": self.incremental_revenue[rows, arm],
        }

    def totals(self, arm: np.ndarray) -> dict[str, float]:
        cols = self.pick(arm)
        conv = float(cols["incremental_conversions"].sum())
        rev = float(cols["incremental_revenue"].sum())
        spend = float(cols["expected_cost"].sum())
        return {
            "incremental_conversions": conv,
            "incremental_revenue": rev,
            "spend": spend,
            "roi": rev / spend if spend > 0 else float("nan"),
            "net_revenue": rev - spend,
        }


def compute_economics(p: np.ndarray, value: np.ndarray, arms: Sequence[ArmConfig],
                      outcome_type: str = "binary") -> Economics:
    """Economics of every user x arm; ``arms`` in column order (control first).

    ``outcome_type`` binary: ``p`` are conversion probabilities in [0, 1]; count or amount: ``p``
    are expected outcomes (e.g. bookings) >= 0, and a discount's trigger cost scales with them.
    """
    p = np.asarray(p, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    n, K = p.shape
    if K != len(arms):
        raise DataError(f"{K} probability columns but {len(arms)} arms in the config")
    if not arms[0].control:
        raise DataError(f"column 0 must be the control arm, got '{arms[0].name}'")
    if value.shape != (n,):
        raise DataError(f"value has shape {value.shape}, expected ({n},)")
    if outcome_type == "binary" and (not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()):
        raise DataError("conversion probabilities must be finite numbers in [0, 1]")
    if not np.isfinite(p).all() or (p < 0).any():
        raise DataError(f"expected outcomes ({outcome_type}) must be finite numbers >= 0")
    if not np.isfinite(value).all() or (value < 0).any():
        raise DataError("expected order values must be finite numbers >= 0")
    send = np.array([a.cost_per_send for a in arms])
    disc = np.array([a.discount for a in arms])
    per_conv = np.array([a.cost_per_conversion for a in arms])
    inc = p - p[:, :1]
    spend = send[None, :] + p * (disc[None, :] * value[:, None] + per_conv[None, :])
    spend[:, 0] = 0.0
    return Economics(p=p, value=value, incremental_conversions=inc,
                     incremental_revenue=inc * value[:, None], spend=spend)


def campaign_economics(config: CampaignConfig, p: np.ndarray, value: np.ndarray) -> Economics:
    """:func:`compute_economics` with the config's arms and outcome type."""
    return compute_economics(p, value, config.ordered_arms, config.data.outcome_type)


def build_problem(econ: Economics, config: CampaignConfig, *, budget: float | None = None,
                  min_roi: float | None = None, segment: np.ndarray | None = None,
                  segment_names: Sequence[str] | None = None, cost_weight: float = 1.0) -> AllocationProblem:
    """The allocation problem of a campaign: gains by objective (``cost_weight``: :meth:`Economics.gain`),
    constraints from the config."""
    if config.objective == "long_term_value":  # issue 13: the arms' long-term multipliers
        from promo_opt.ltv.objective import ensure_long_term

        econ = ensure_long_term(econ, config)
    arms = config.ordered_arms
    caps = tuple(
        ArmCap(arm=k, max_users=a.max_users, max_spend=a.max_spend)
        for k, a in enumerate(arms) if a.max_users is not None or a.max_spend is not None
    )
    seg_budgets = None
    if segment is not None:
        budgets = config.constraints.segment_budgets or {}
        missing = [s for s in segment_names if s not in budgets]
        if missing:
            raise DataError(
                f"column '{config.data.segment}' has values {missing[:5]} with no entry in "
                f"constraints.segment_budgets (known: {sorted(budgets)[:10]})"
            )
        seg_budgets = tuple(float(budgets[s]) for s in segment_names)
    return AllocationProblem(
        gain=econ.gain(config.objective, cost_weight), spend=econ.spend, revenue=econ.incremental_revenue,
        budget=budget, min_roi=min_roi, arm_caps=caps, segment=segment,
        segment_budgets=seg_budgets, arm_names=tuple(config.arm_names),
    )
