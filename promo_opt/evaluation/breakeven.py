"""The net revenue's break-even held on the held-out twin (objective ``net_revenue``).

A user gets a promotion where the model's incremental revenue exceeds its cost. A model that flattens a rare
type that responds strongly sees almost no one above that line, and the list spends next to nothing where the
truth pays. The twin's realized/expected ratios (:mod:`promo_opt.evaluation.heldout`) cannot move the line
directly: measured on the few users the model picks, they overstate what the next users return. So the twin is
allocated at the gains ``incremental_revenue - c x spend`` for weights c around 1, and a weight is kept only
where the held-out rows show, with all the weights' bounds holding together, that it pays more than c = 1 and
pays at all (:func:`held_out_cost_weight`), and where the list at c is the policy its twin measured
(:func:`twin_unlike_list`). ``promo_opt.pipeline.forecast_correction`` runs the search at training time;
``promo_opt.pipeline.allocation_cost_weight`` gives every door the weight kept.
"""

from __future__ import annotations

import numpy as np

from promo_opt.allocation import solve
from promo_opt.config import CampaignConfig
from promo_opt.economics import build_problem
from promo_opt.errors import PromoOptError
from promo_opt.evaluation.heldout import ForecastCorrection
from promo_opt.evaluation.offpolicy import sum_se


# held_out_cost_weight: the net revenue's weights on spend the twin is measured at, around the plain break-even
# (1): 2^(j/4), from half to twice it, nearest first (of two weights that give the same lower bound, the nearer
# is kept); a move is kept where its gain's simultaneous lower bound is positive (held_out_cost_weight)
COST_WEIGHTS = tuple(float(2.0 ** (j / 4)) for j in (-1, 1, -2, 2, -3, 3, -4, 4))
COST_WEIGHT_LEVEL = 0.95  # the lower bounds of all weights' gains and net revenues hold together at this level


def held_out_cost_weight(measure_weight, min_roi: float | None = None, seed: int = 0,
                         tolerance: float = 0.02) -> tuple[float, list[dict]]:
    """Objective ``net_revenue``: the weight c of the spend in the allocator's gain (incremental revenue - c x
    spend) that the held-out twin shows pays surest (:mod:`promo_opt.evaluation.heldout`, module doc); returns
    (c, the weights tried: ``{"cost_weight", "gain", "se", "net_revenue", "net_revenue_se", "z", "pays",
    "floor_met"}``).

    ``measure_weight(c)`` gives the twin policy allocated at weight c (a
    :class:`~promo_opt.evaluation.heldout.HeldOutPolicy`). For each weight of ``COST_WEIGHTS`` on the side the twin
    at c = 1 points to (:func:`cost_weights_toward`: under 1 where the twin's users return more per unit of spend
    than the model says, over 1 where less; both sides where it treats no one) the gain is the
    twin's doubly robust net revenue minus that at c = 1, row by row on the same held-out rows, and se the
    paired difference's standard error; the weight with the largest lower bound gain - z x se is kept where that
    bound is positive and the twin's own net revenue is shown to be positive too (net revenue - z x its standard
    error above 0: a move that only loses less than a losing twin at c = 1 is no gain over treating no one, which
    is what the list does when nobody clears the break-even); 1 otherwise. The best of several weights looks
    better than it is, so z is simultaneous: all the lower bounds (gains and net revenues of every weight) hold
    together with probability ``COST_WEIGHT_LEVEL`` (:func:`simultaneous_z`: 2.2-2.6 for the eight to sixteen
    bounds in the generated worlds, where one bound alone would take 1.645).

    With an ROI floor (``min_roi``), a weight counts only where its twin's forecast ROI (its expected totals
    times its own held-out ratios) meets ``min_roi`` within ``tolerance`` (the floor search's): the floor the
    twin was allocated with (the campaign twin's, :func:`promo_opt.pipeline.held_out_floor`) was found safe for
    a policy *on* it, and a lower break-even may take the policy there. A weight whose twin cannot be allocated
    is skipped."""
    base = measure_weight(1.0)
    net0 = base.realized.revenue - base.realized.spend
    gains, nets, tried = [], [], []
    for c in cost_weights_toward(base):
        try:
            h = measure_weight(c)
        except PromoOptError:
            continue
        net = h.realized.revenue - h.realized.spend
        met = not min_roi or ForecastCorrection.from_heldout(h).apply(h.expected)["roi"] >= min_roi / (1 + tolerance)
        tried.append({"cost_weight": c, "gain": float((net - net0).sum()), "se": sum_se(net - net0),
                      "net_revenue": float(net.sum()), "net_revenue_se": sum_se(net), "floor_met": bool(met)})
        gains.append(net - net0)
        nets.append(net)
    if not tried:
        return 1.0, tried
    z = simultaneous_z(np.column_stack(gains + nets), COST_WEIGHT_LEVEL, seed)
    best, best_lcb = 1.0, 0.0
    for t in tried:
        t["z"] = z
        t["pays"] = bool(t["net_revenue"] - z * t["net_revenue_se"] > 0)
        lcb = t["gain"] - z * t["se"]
        if t["floor_met"] and t["pays"] and lcb > best_lcb:
            best, best_lcb = t["cost_weight"], lcb
    return best, tried


# twin_unlike_list: the list's expected spend per treatable candidate and its twin's per training row agree
# within this factor, or the twin did not measure the list's policy
POLICY_SIZE_FACTOR = 2.0


def twin_unlike_list(config: CampaignConfig, twin, weights, candidates_economics, floor: float | None,
                     cost_weight: float, budget: float | None = None) -> str | None:
    """Why the held-out twin at ``cost_weight`` does not describe the list the candidates would get, or None.

    The twin allocates each training row's out-of-fold prediction, one fold model's; the list allocates the
    candidates' prediction of the final model, the fold models' average, which is smoother: where the
    break-even cuts through a flat model, the twin can pick many users the list never picks (generated_22 at
    20k past users: the twin at 0.84 spent 10x per user what the list at 0.84 did; its gain, measured on the
    twin's picks, did not exist on the list's, which lost money). So a moved break-even is kept only where the
    list's expected spend per treatable candidate is within ``POLICY_SIZE_FACTOR`` of the twin's per training
    row (weighted rows stand for the candidates' population); without the candidates' economics it is kept.
    ``budget``: the one the list would be allocated at, the planner's held on the forecast
    (:func:`promo_opt.pipeline.allocation_budget`); default the planner's."""
    if candidates_economics is None:
        return None
    econ = candidates_economics()
    rows = float(len(twin.arm) if weights is None else np.sum(weights))
    budget = config.constraints.budget if budget is None else budget
    problem = build_problem(econ, config, budget=budget, min_roi=floor, cost_weight=cost_weight)
    spend = econ.totals(solve(problem, solver="dual").arm)["spend"] / max(len(econ.p), 1)
    twin_spend = twin.expected["spend"] / max(rows, 1.0)
    if twin_spend > 0 and 1 / POLICY_SIZE_FACTOR <= spend / twin_spend <= POLICY_SIZE_FACTOR:
        return None
    return (f"the held-out twin at the break-even {cost_weight:.3g}x the cost spends {twin_spend:.4g} per user, the "
            f"candidates' list there {spend:.4g}: the twin did not measure the list's policy, so the plain break-even "
            "is kept")


def cost_weights_toward(base) -> tuple[float, ...]:
    """The weights of ``COST_WEIGHTS`` on the side the twin at the plain break-even (``base``) points to: under 1
    where its users return more per unit of spend than the model says (realized / expected revenue over realized
    / expected spend >= 1: the break-even on the model's numbers is too strict), over 1 where they return less.
    All of them where that ratio is not measured (a twin that treats no one: every weight that treats no one
    either has no spread and leaves the family of :func:`simultaneous_z`)."""
    e, r = base.expected, base.realized.totals()
    if not min(e["incremental_revenue"], e["spend"], r["spend"]) > 0:
        return COST_WEIGHTS
    ratio = (r["incremental_revenue"] / e["incremental_revenue"]) / (r["spend"] / e["spend"])
    if not np.isfinite(ratio) or ratio <= 0:
        return COST_WEIGHTS
    return tuple(c for c in COST_WEIGHTS if (c < 1) == (ratio >= 1))


def simultaneous_z(contributions: np.ndarray, level: float, seed: int = 0, draws: int = 500) -> float:
    """The critical value z such that the lower bounds sum - z x se of all columns of ``contributions`` (n rows of
    independent contributions, one column per statistic) hold together with probability ``level``: the
    ``level`` quantile of max over the columns of the standardized deviation, by the Gaussian multiplier
    bootstrap (each draw weighs the centred rows by independent standard normals). For one column it is the
    normal quantile; for many correlated ones it lies between that and Bonferroni's. Columns without spread are
    left out."""
    x = np.asarray(contributions, dtype=np.float64)
    se = np.sqrt(len(x)) * x.std(axis=0)
    keep = se > 0
    if not keep.any() or len(x) < 2:
        from scipy.stats import norm

        return float(norm.ppf(level))
    x = (x[:, keep] - x[:, keep].mean(axis=0)) / se[keep]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8861]))
    top = []
    for start in range(0, draws, 50):  # 50 draws at a time: (50, n) normals
        e = rng.standard_normal((min(50, draws - start), len(x)))
        top.append((e @ x).max(axis=1))
    return float(np.quantile(np.concatenate(top), level))
