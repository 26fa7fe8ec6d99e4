"""What the past campaign shows about each promotion on average, before any targeting.

A planner reads an A/B test first: did promotion k change the outcome at all? The same rows answer it
for every campaign the product trains on. For arm k the average effect over the past campaign's users
is the doubly robust (AIPW) mean of the row contributions of "everyone gets k" minus "everyone gets the
control" (:func:`promo_opt.evaluation.offpolicy.dr_contributions`), with the model's out-of-fold
predictions as the outcome model: unbiased under randomization (or with the logged propensities),
whatever the model, and tighter than a difference in means where the features explain the outcome.
Its 90% interval is mean -/+ 1.645 standard errors of the mean.

Where no promotion's interval excludes zero, the campaign does not show that any promotion moves the
outcome on average. A list can still gain from differences between users (a promotion that helps some
and hurts others), but its value then rests on them alone, and in the generated worlds that is where
the share of the oracle scatters most (``signal_z`` in ``benchmarks/generated_worlds.py`` is the same
statistic computed from the truth). :func:`weak_evidence_warning` says so, in the evidence's ``warning``; the
summary and its doors (CLI, report, web app) show it with the other warnings (:mod:`promo_opt.report.warnings`).
"""

from __future__ import annotations

import numpy as np

from promo_opt.config import CampaignConfig
from promo_opt.evaluation.heldout import two_sided_z
from promo_opt.evaluation.offpolicy import dr_contributions, logged_propensity, sum_se


def average_effects(config: CampaignConfig, oof: np.ndarray, arm: np.ndarray, y: np.ndarray,
                    propensity: np.ndarray | None) -> dict:
    """``{"outcome": ..., "rows": n, "arms": {name: {"effect", "se", "interval90": [lo, hi], "z"}}, "warning": ...}``
    for every promotion (not the control): its average effect per user on the outcome (conversions, or the count
    or amount of ``data.outcome_type``) over the training rows; ``warning``: :func:`weak_evidence_warning` (None
    when a promotion's effect is shown), the words every door shows. ``oof`` (n, K): out-of-fold predictions;
    ``propensity`` (n,): P(logged arm), None for randomized rows (the observed arm shares)."""
    n, K = oof.shape
    e = logged_propensity(arm, K, propensity)
    ones = np.ones(n)
    arms = config.ordered_arms
    z90 = two_sided_z(0.9)
    out = {}
    for k in range(1, K):
        c = dr_contributions(np.full(n, k), arm, y.astype(np.float64), ones, e, oof, ones, arms).conversions
        effect = float(c.mean())
        se = sum_se(c) / n  # of the mean: that of the sum of independent rows, over n
        out[config.arm_names[k]] = {"effect": effect, "se": se,
                                    "interval90": [effect - z90 * se, effect + z90 * se],
                                    "z": effect / se if se > 0 else float("nan")}
    evidence = {"outcome": config.data.outcome, "outcome_type": config.data.outcome_type, "rows": int(n), "arms": out}
    return {**evidence, "warning": weak_evidence_warning(evidence)}


def weak_evidence_warning(evidence: dict | None) -> str | None:
    """The warning when no promotion's 90% interval of its average effect excludes zero, else None."""
    if not evidence or not evidence.get("arms"):
        return None
    arms = evidence["arms"]
    if any(a["interval90"][0] > 0 or a["interval90"][1] < 0 for a in arms.values()):
        return None
    spans = ", ".join(f"{name} {a['interval90'][0]:+.3g} to {a['interval90'][1]:+.3g}" for name, a in arms.items())
    return (f"the past campaign does not show that any promotion changes '{evidence['outcome']}' on average "
            f"(90% intervals of the average effect per user: {spans}); the list's gain rests on differences "
            "between users alone: read it with its forecast interval")
