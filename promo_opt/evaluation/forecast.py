"""The forecast a planner reads: the model's expected totals of a policy corrected by the held-out twins
(:mod:`promo_opt.evaluation.heldout`), their 90% intervals and the warning where those do not show a gain.
One rule for one allocation (:func:`corrected_forecast`, ``summary.forecast``) and for every point of a budget
curve (:func:`curve_forecast`: ``plan.csv``, ``/plans``, the web app's curve, the report); ``promo_opt.pipeline``
re-exports them for the doors."""

from __future__ import annotations

import numpy as np
import pandas as pd


def held_moved(asked: float | None, held: float | None) -> bool:
    """Whether the allocator held a number other than the planner's: a floor (``allocation_floor``), a budget
    (``allocation_budget``) or the net revenue's break-even (``allocation_cost_weight``, asked 1) that the
    held-out measurement moved onto the forecast. The CLI, the report and the infeasibility message name the
    held one only then."""
    return bool(asked) and held is not None and abs(held - asked) > 1e-9 * max(1.0, abs(asked))


def evidence_flags(conv_lo, conv_hi, net_lo, objective: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise, for one plan or a budget curve's points: (the 90% interval of the incremental
    conversions reaches zero, the net revenue's does under the objective ``net_revenue``). A plan that
    treats no one (interval 0 to 0) raises neither: there is nothing to bet on (``budget_use`` says why)."""
    lo, hi = np.asarray(conv_lo, dtype=np.float64), np.asarray(conv_hi, dtype=np.float64)
    conv = (lo <= 0) & ~((lo == 0) & (hi == 0))
    net = np.zeros_like(conv) if objective != "net_revenue" or net_lo is None else \
        (np.asarray(net_lo, dtype=np.float64) <= 0) & ~conv & ~((lo == 0) & (hi == 0))
    return conv, net


def evidence_warning(forecast: dict, objective: str | None) -> str | None:
    """The forecast's warning when its 90% intervals do not show that the policy gains (:func:`evidence_flags`):
    the interval of the incremental conversions reaches zero (the past campaign cannot tell this policy's
    effect from none: too little signal, or promotions that do not work), or, under the objective
    ``net_revenue``, the interval of the net revenue does. Such a plan is a bet, not a forecast: the
    planner hears it before the money is spent. None when the intervals are clear of zero."""
    iv = forecast.get("interval90") or {}
    lo, hi = (iv.get("incremental_conversions") or [None, None])
    if lo is None:
        return None
    net = forecast.get("net_revenue_interval90")
    conv_flag, net_flag = evidence_flags(lo, hi, net[0] if net else None, objective)
    if conv_flag:
        return (f"the 90% interval of the plan's incremental conversions, {lo:,.1f} to {hi:,.1f}, reaches zero: the "
                "past campaign does not show that this plan changes behaviour (too little signal, or promotions that do "
                "not work); keep a holdout and treat it as a test, or collect a larger randomized sample first")
    if net_flag:
        return (f"the 90% interval of the plan's net revenue (incremental revenue - spend), {net[0]:,.0f} to "
                f"{net[1]:,.0f}, reaches zero: the plan may lose money; keep a holdout and treat it as a test, "
                "or raise constraints.min_roi")
    return None


# the forecast columns a budget curve gets from the model's held-out measurement (curve_forecast)
FORECAST_COLUMNS = tuple(f"forecast_{k}{s}" for k in ("incremental_conversions", "incremental_revenue", "spend")
                         for s in ("", "_lo90", "_hi90")) + ("forecast_net_revenue_lo90", "forecast_net_revenue_hi90",
                                                             "forecast_warning")


def policy_budget(budget, spend, corr) -> np.ndarray:
    """The budget whose held-out twins describe a policy allocated at the planner's ``budget`` with the model's
    expected ``spend`` (elementwise): the smallest budget that buys that policy, ``min(budget, forecast spend)``.

    Where the budget binds, the policy's forecast spend is its budget (the allocator holds the budget on the
    forecast, :func:`promo_opt.pipeline.allocation_budget`) and this is the budget. Where something else stops the
    spending first (an ROI floor, an arm cap, the net revenue's break-even), the policy is the same at every larger
    budget, and so is its forecast: the twins measured around the spend it reaches, not around a budget it leaves
    unspent (the capped Artea plan spent 744 at budgets 1,000 and 2,000 alike, and its interval's lower bound was
    -14.7 at one and 0.83 at the other).

    A policy that spends nothing at a positive budget (one that gives only free arms) is bought by any budget; it
    is keyed just above zero, below every twin, so it gets the smallest twin's measurement, as a policy that spends
    a cent does (a key of 0 would mean "no budget" to :meth:`~promo_opt.evaluation.heldout.ForecastCorrection.at_budget`,
    the campaign's twin alone)."""
    budget = np.asarray(budget, dtype=np.float64)
    key = np.minimum(budget, np.asarray(spend, dtype=np.float64) * corr.ratio["spend"])
    return np.where((key <= 0) & (budget > 0), np.finfo(np.float64).tiny, key)


def curve_forecast(curve, correction: dict | None, objective: str | None,
                   n_users: int | None = None) -> dict[str, np.ndarray] | None:
    """The forecast of every point of a budget curve (``curve``: a plan table or its columns, with
    ``budget``, ``incremental_conversions``, ``incremental_revenue`` and ``spend``) over ``n_users``
    treatable candidates, as :func:`corrected_forecast` gives it for one allocation at that budget:
    ``forecast_<total>`` (the expected totals x the held-out ratios), ``forecast_<total>_lo90`` / ``_hi90``
    (the 90% interval, spanning the twins measured around the point's :func:`policy_budget` too),
    ``forecast_net_revenue_lo90`` / ``_hi90`` and ``forecast_warning`` (:func:`evidence_flags`). A point and the
    allocation at its budget get the same figures, and so do two points with the same policy. None without an
    applied held-out measurement (or without its covariance)."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    if not correction or not correction.get("applied"):
        return None
    base = ForecastCorrection.from_dict(correction)
    if not base.ratio_cov:
        return None
    totals = {k: np.asarray(curve[k], dtype=np.float64) for k in ("incremental_conversions", "incremental_revenue", "spend")}
    if base.by_budget and n_users:  # each point's intervals also span the twins measured around its policy's budget
        keys = policy_budget(np.asarray(curve["budget"], dtype=np.float64), totals["spend"], base) / n_users
        parts = [_forecast_columns(base, {k: v[i:i + 1] for k, v in totals.items()}, b) for i, b in enumerate(keys)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else \
            _forecast_columns(base, totals)
    else:
        out = _forecast_columns(base, totals)
    conv, net = evidence_flags(out["forecast_incremental_conversions_lo90"], out["forecast_incremental_conversions_hi90"],
                               out["forecast_net_revenue_lo90"], objective)
    out["forecast_warning"] = conv | net
    return {k: out[k] for k in FORECAST_COLUMNS}


def _forecast_columns(corr, totals: dict[str, np.ndarray], budget_per_user: float | None = None) -> dict[str, np.ndarray]:
    out = {f"forecast_{k}": v * corr.ratio[k] for k, v in totals.items()}
    ivs, net = corr.intervals_at(totals, budget_per_user)
    for k, (lo, hi) in ivs.items():
        out[f"forecast_{k}_lo90"], out[f"forecast_{k}_hi90"] = lo, hi
    out["forecast_net_revenue_lo90"], out["forecast_net_revenue_hi90"] = net
    return out


def with_curve_forecast(curve: pd.DataFrame, correction: dict | None, objective: str | None,
                        n_users: int | None = None) -> pd.DataFrame:
    """``curve`` with the :func:`curve_forecast` columns added (unchanged without a held-out measurement)."""
    cols = curve_forecast(curve, correction, objective, n_users)
    return curve if cols is None else curve.assign(**cols)


def corrected_forecast(expected: dict, correction: dict | None, objective: str | None = None,
                       budget: float | None = None, n_users: int | None = None) -> dict | None:
    """The expected totals times the held-out realized/expected ratios, with the ratios used, a 90%
    interval of each true total (``interval90``) and of the net revenue (``net_revenue_interval90``),
    and ``warning`` (:func:`evidence_warning`) where those intervals do not show the policy gains.
    ``budget``: the planner's budget the policy was allocated at, over ``n_users`` treatable candidates; the
    intervals also span the twins measured around the policy's :func:`policy_budget`
    (:meth:`~promo_opt.evaluation.heldout.ForecastCorrection.intervals_at`)."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    if not correction or not correction.get("applied"):
        return None
    corr = ForecastCorrection.from_dict(correction)
    out = {**corr.apply(expected), "ratio": corr.ratio}
    if corr.ratio_cov:
        at = float(policy_budget(budget, expected["spend"], corr)) / n_users if budget and n_users else None
        ivs, net = corr.intervals_at(expected, at)
        out["interval90"] = {k: [float(lo), float(hi)] for k, (lo, hi) in ivs.items()}
        out["net_revenue_interval90"] = [float(net[0]), float(net[1])]
        warning = evidence_warning(out, objective)
        if warning:
            out["warning"] = warning
    out["note"] = ("expected totals x (realized / expected) of the same policy on held-out training folds, "
                   "shrunk toward 1 by their standard errors (winner's-curse correction); interval90: 90% interval "
                   "of the true totals from the ratios' standard errors"
                   if correction.get("corrected", True) else
                   "model.correct_forecast is false: the expected totals; interval90 from the held-out ratios")
    return out
