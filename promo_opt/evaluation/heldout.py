"""The campaign's own policy on held-out folds, and the winner's-curse correction it yields.

Why: the allocator hands promotions to exactly the users whose estimated uplift (or cheapness)
looks best, so estimation noise is selected for: what the model promises for its own policy
overstates what the policy really does (the winner's curse), and the spend it forecasts is off
in a way no average calibration sees, because it lives in the users that were picked.

Held-out folds measure it directly. The training rows' out-of-fold probabilities are allocated
exactly as candidates are (the campaign's budget scaled to the training population, the ROI
floor), and for that policy two totals are compared:

* expected: what the out-of-fold probabilities promise (``Economics.totals``);
* realized: the doubly robust estimate from the rows' real outcomes (randomized, or logged with
  propensities), unbiased whatever the model (:mod:`promo_opt.evaluation.offpolicy`).

Their ratio r = realized / expected per total (incremental conversions, incremental revenue,
spend) is the curse's size. It is noisy (outcome noise of the picked rows), so it is shrunk
toward 1 by empirical Bayes with a normal prior centred on 1: the prior variance is estimated
as max(0, (r - 1)^2 - se^2), which gives the posterior mean

    r* = 1 + (r - 1) * max(0, 1 - se^2 / (r - 1)^2)

(no correction when the gap is within one standard error, nearly all of it when it is many).
The corrected forecast multiplies the model's totals for the candidates by r*; ROI and net
revenue follow from the corrected totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from promo_opt.config import CampaignConfig
from promo_opt.economics import Economics, compute_economics
from promo_opt.evaluation.offpolicy import PolicyContributions, dr_contributions, logged_propensity
from promo_opt.learners.honest import eb_shrink

TOTALS = ("incremental_conversions", "incremental_revenue", "spend")


@dataclass
class HeldOutPolicy:
    """The campaign's allocation of held-out (out-of-fold) probabilities and its two sets of totals."""

    arm: np.ndarray  # (n,) chosen arm per training row
    expected: dict[str, float]  # the model's own totals for the policy
    realized: PolicyContributions  # doubly robust per-row contributions

    def se(self, name: str) -> float:
        x = {"incremental_conversions": self.realized.conversions, "incremental_revenue": self.realized.revenue,
             "spend": self.realized.spend}[name]
        return float(np.sqrt(len(x)) * x.std()) if len(x) > 1 else float("inf")


def training_budget(config: CampaignConfig, n_rows: int, n_candidates: int) -> float | None:
    """The campaign's budget scaled from the treatable candidates to ``n_rows`` training rows."""
    if config.constraints.budget is None:
        return None
    treatable = max(n_candidates * (1.0 - config.holdout.fraction), 1.0)
    return config.constraints.budget * n_rows / treatable


def heldout_policy(config: CampaignConfig, oof: np.ndarray, arm: np.ndarray, y: np.ndarray,
                   value: np.ndarray | None, propensity: np.ndarray | None, vhat: np.ndarray,
                   n_candidates: int, reference: np.ndarray | None = None) -> HeldOutPolicy:
    """Allocate the out-of-fold probabilities ``oof`` (n, K) under the campaign's budget (scaled)
    and ROI floor, budget and ROI only (arm caps and segment budgets belong to the candidates),
    by the dual; estimate the result with ``reference`` (default ``oof``) as the DR outcome model.

    Raises :class:`~promo_opt.errors.PromoOptError` when the scaled problem is infeasible.
    """
    from promo_opt.allocation import AllocationProblem, solve
    from promo_opt.economics import build_problem

    econ: Economics = compute_economics(oof, vhat, config.ordered_arms)
    budget = training_budget(config, len(arm), n_candidates)
    full = build_problem(econ, config, budget=budget, min_roi=config.constraints.min_roi)
    problem = AllocationProblem(full.gain, full.spend, full.revenue, budget=budget, min_roi=config.constraints.min_roi)
    res = solve(problem, solver="dual")
    prop = logged_propensity(arm, len(config.arm_names), propensity)
    realized_value = value if value is not None else y.astype(float)
    ref = oof if reference is None else reference
    c = dr_contributions(res.arm, arm, y, realized_value, prop, ref, vhat, config.ordered_arms)
    return HeldOutPolicy(arm=res.arm, expected=econ.totals(res.arm), realized=c)


def shrink_ratio(realized: float, expected: float, se: float) -> tuple[float, float]:
    """(raw ratio, shrunk ratio) of realized to expected, ``se`` that of ``realized``; see the
    module doc. (1, 1) when expected is 0."""
    if not np.isfinite(expected) or abs(expected) < 1e-12:
        return 1.0, 1.0
    r = realized / expected
    return float(r), eb_shrink(r, 1.0, se / abs(expected))


@dataclass
class ForecastCorrection:
    """Multipliers for the model's forecast of its own policy, measured on held-out folds."""

    ratio: dict[str, float]  # shrunk realized / expected per total (the multipliers applied)
    raw_ratio: dict[str, float]  # unshrunk
    ratio_se: dict[str, float]  # standard error of the raw ratio
    expected: dict[str, float] = field(default_factory=dict)  # held-out policy, the model's totals
    realized: dict[str, float] = field(default_factory=dict)  # held-out policy, DR totals
    rows: int = 0

    @classmethod
    def from_heldout(cls, h: HeldOutPolicy) -> "ForecastCorrection":
        realized = h.realized.totals()
        ratio, raw, se = {}, {}, {}
        for k in TOTALS:
            s = h.se(k)
            raw[k], ratio[k] = shrink_ratio(realized[k], h.expected[k], s)
            se[k] = s / abs(h.expected[k]) if abs(h.expected[k]) > 1e-12 else 0.0
        return cls(ratio=ratio, raw_ratio=raw, ratio_se=se, expected={k: float(h.expected[k]) for k in TOTALS},
                   realized={k: float(v) for k, v in realized.items()}, rows=len(h.arm))

    @classmethod
    def from_dict(cls, d: dict | None) -> "ForecastCorrection | None":
        if not d:
            return None
        return cls(ratio=dict(d["ratio"]), raw_ratio=dict(d["raw_ratio"]), ratio_se=dict(d["ratio_se"]),
                   expected=dict(d.get("expected", {})), realized=dict(d.get("realized", {})), rows=int(d.get("rows", 0)))

    def apply(self, totals: dict[str, float]) -> dict[str, float]:
        """Corrected totals (same keys as ``Economics.totals``)."""
        out = {k: float(totals[k]) * self.ratio[k] for k in TOTALS}
        out["roi"] = out["incremental_revenue"] / out["spend"] if out["spend"] > 0 else float("nan")
        out["net_revenue"] = out["incremental_revenue"] - out["spend"]
        return out

    def as_dict(self) -> dict:
        return {"ratio": self.ratio, "raw_ratio": self.raw_ratio, "ratio_se": self.ratio_se,
                "expected": self.expected, "realized": self.realized, "rows": self.rows}
