"""The domain core's steps: train, score, allocate, run. The CLI and the service only call these.

Every function takes a validated :class:`CampaignConfig` and returns typed results; writing
files is done by ``write_*`` helpers, atomically, after all work has succeeded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from promo_opt.allocation import Allocation, AllocationProblem, best_attainable_roi, solve, unreachable_floor
from promo_opt.allocation.frontier import plan as plan_curve
from promo_opt.config import CampaignConfig
from promo_opt.evaluation.breakeven import held_out_cost_weight, twin_unlike_list
from promo_opt.evaluation.forecast import (FORECAST_COLUMNS, corrected_forecast, curve_forecast,  # noqa: F401
                                          evidence_flags, evidence_warning, held_moved, with_curve_forecast)
from promo_opt.data import (Candidates, load_candidates, load_training, numeric_columns, read_table, segment_labels,
                            write_json, write_table)
from promo_opt.economics import Economics, build_problem, campaign_economics
from promo_opt.errors import DataError, GuaranteeRefused, InfeasibleError, PromoOptError
from promo_opt.features import FeaturePreprocessor
from promo_opt.learners.honest import select_learner
from promo_opt.learners.value import OrderValueModel
from promo_opt.model import TrainedModel
from promo_opt.observational.propensity import with_estimated_propensity

log = logging.getLogger(__name__)


def arm_terms(config: CampaignConfig) -> np.ndarray:
    """Numeric description of each arm (column order) for the pooled learner."""
    return np.array([[a.discount, a.cost_per_conversion, a.cost_per_send] for a in config.ordered_arms])


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------
def uplift_by_decile(p: np.ndarray, arm: np.ndarray, y: np.ndarray, arm_names: list[str]) -> list[dict]:
    """Honest check on out-of-fold predictions: predicted vs observed uplift per decile, per arm."""
    rows = []
    n = len(y)
    for k in range(1, p.shape[1]):
        tau = p[:, k] - p[:, 0]
        dec = np.empty(n, dtype=np.int64)
        dec[np.argsort(-tau, kind="stable")] = np.arange(n) * 10 // n  # 0 = highest predicted uplift
        for d in range(10):
            on = dec == d
            t, c = on & (arm == k), on & (arm == 0)
            obs = float(y[t].mean() - y[c].mean()) if t.any() and c.any() else float("nan")
            rows.append({"arm": arm_names[k], "decile": d + 1, "predicted_uplift": float(tau[on].mean()),
                         "observed_uplift": obs, "n_arm": int(t.sum()), "n_control": int(c.sum())})
    return rows


def _check_policies(config: CampaignConfig, fitted: dict, selection, data, vhat: np.ndarray,
                    n_candidates: int, rows: np.ndarray | None = None, weights: np.ndarray | None = None) -> None:
    """Second, decision-aware look at the candidates: the campaign's own allocation on held-out folds.

    Each candidate's out-of-fold probabilities are allocated under the campaign's budget (scaled
    to the training population) and ROI floor, and the resulting policy's incremental objective,
    revenue and spend are estimated by doubly robust off-policy evaluation on the randomized rows.
    The risk-based choice is overridden only when another candidate's policy is better by more than
    two standard errors of the paired difference, or when the chosen policy's estimated ROI misses
    the floor by more than two standard errors while another's does not.
    """
    from promo_opt.evaluation.heldout import heldout_policy
    from promo_opt.evaluation.offpolicy import sum_se

    if rows is not None and len(rows) < len(data.arm):  # the candidates were compared on these rows
        data = data.subset(rows)
        vhat = vhat[rows]
        weights = None if weights is None else weights[rows]
    min_roi = config.constraints.min_roi
    ref = fitted["ensemble"].oof_ if "ensemble" in fitted else fitted[selection.chosen].oof_
    rows = {}
    for name, model in fitted.items():
        try:
            h = heldout_policy(config, model.oof_, data.arm, data.converted, data.value, data.propensity, vhat,
                               n_candidates, reference=ref, weights=weights)
        except PromoOptError:
            continue
        c = h.realized
        obj = c.conversions if config.objective == "conversions" else c.revenue - c.spend
        roi_margin = c.revenue - (min_roi or 0.0) * c.spend  # >= 0 when the floor holds
        rows[name] = (obj, roi_margin, c, h.expected)
    if selection.chosen not in rows:
        return  # nothing to compare against
    base = selection.chosen
    report = {}
    for name, (obj, margin, c, expected) in rows.items():
        t = c.totals()
        report[name] = {"objective": float(obj.sum()), "spend": t["spend"],
                        "expected_incremental_conversions": expected["incremental_conversions"],
                        "realized_incremental_conversions": t["incremental_conversions"],
                        "expected_spend": expected["spend"],
                        "roi": t["incremental_revenue"] / t["spend"] if t["spend"] > 0 else float("nan"),
                        "objective_minus_chosen": float(obj.sum() - rows[base][0].sum()),
                        "se_of_difference": sum_se(obj - rows[base][0]),
                        "roi_margin_se": sum_se(margin), "roi_margin": float(margin.sum())}
    selection.policy_value = report

    def floor_ok(name):
        r = report[name]
        return min_roi is None or r["roi_margin"] >= -2 * r["roi_margin_se"]

    better = [nm for nm in report if nm != base and floor_ok(nm)
              and (report[nm]["objective_minus_chosen"] > 2 * report[nm]["se_of_difference"] or not floor_ok(base))]
    if better:
        best = max(better, key=lambda nm: report[nm]["objective"])
        selection.reason = (f"{best}: its budget-constrained policy on held-out folds beats {base} (the risk-based "
                            f"choice) by {report[best]['objective_minus_chosen']:.4g} in objective "
                            f"(2 standard errors: {2 * report[best]['se_of_difference']:.4g})"
                            + ("" if floor_ok(base) else f"; {base}'s policy misses the ROI floor"))
        selection.chosen = best


def forecast_correction(config: CampaignConfig, uplift, data, vhat: np.ndarray,
                        n_candidates: int | None, weights: np.ndarray | None = None,
                        candidates_economics=None) -> dict:
    """The chosen learner's policy on its held-out folds (:mod:`promo_opt.evaluation.heldout`): the
    winner's-curse correction (applied unless ``model.correct_forecast`` is false) and the forecast's
    uncertainty, as saved in the model's metrics. ``candidates_economics()``: the final model's economics of
    the treatable candidates (called only where a net revenue break-even moved, :func:`twin_unlike_list`).

    ``{"applied": False, "reason": ...}`` when it cannot be measured.
    """
    from promo_opt.evaluation.heldout import ForecastCorrection, calibration_cov, heldout_policy

    oof = uplift.oof_
    if n_candidates is None:
        return {"applied": False, "reason": "no data.candidates at training time to scale the budget to"}
    note = {}
    try:
        h = heldout_policy(config, oof, data.arm, data.converted, data.value, data.propensity, vhat, n_candidates,
                           weights=weights)
    except InfeasibleError as err:
        # the out-of-fold predictions cannot meet the ROI floor although the final model may: measure the
        # budget-only policy instead (its ratios still describe how the model's totals miss the truth)
        loose = config.model_copy(update={"constraints": config.constraints.model_copy(update={"min_roi": None})})
        try:
            h = heldout_policy(loose, oof, data.arm, data.converted, data.value, data.propensity, vhat, n_candidates,
                               weights=weights)
        except PromoOptError as err2:
            return {"applied": False, "reason": f"the held-out allocation failed: {err2}"}
        note = {"floor_dropped": f"measured without the ROI floor: {err}"}
    except PromoOptError as err:
        return {"applied": False, "reason": f"the held-out allocation failed: {err}"}

    def measure(h):
        ccov = calibration_cov(config, uplift, data.arm, data.converted, vhat, h.arm, weights=weights, seed=config.seed)
        return ForecastCorrection.from_heldout(h, correct=config.model.correct_forecast, calibration=ccov)

    def measure_at(floor):
        moved = config.model_copy(update={"constraints": config.constraints.model_copy(update={"min_roi": floor})})
        return measure(heldout_policy(moved, oof, data.arm, data.converted, data.value, data.propensity, vhat,
                                      n_candidates, weights=weights))

    corr = measure(h)
    min_roi = config.constraints.min_roi
    if min_roi and config.model.correct_forecast:
        corr, searched = held_out_floor(min_roi, corr, None if note else min_roi, measure_at)
        note["floor_search"] = searched
        if corr.floor_scale is not None:
            note.pop("floor_dropped", None)
    twin_floor = min_roi * corr.floor_scale if corr.floor_scale is not None else (None if note.get("floor_dropped")
                                                                                   else min_roi)

    # objective net_revenue: the break-even held on the twin (promo_opt.evaluation.breakeven); with a floor only
    # where the floor search found a safe floor for the twin to be allocated at
    weight = 1.0
    if config.objective == "net_revenue" and config.model.correct_forecast and (not min_roi or corr.floor_scale is not None):
        def measure_weight(c):
            """The twin at the net revenue's weight ``c`` on spend, its floor the campaign twin's."""
            moved = config.model_copy(update={"constraints": config.constraints.model_copy(
                update={"min_roi": twin_floor})})
            return heldout_policy(moved, oof, data.arm, data.converted, data.value, data.propensity, vhat,
                                  n_candidates, weights=weights, cost_weight=c)

        try:
            weight, note["cost_weight_search"] = held_out_cost_weight(measure_weight, min_roi, config.seed,
                                                                      FLOOR_TOLERANCE)
        except PromoOptError as err:  # the twin cannot be allocated at its own floor: keep the plain break-even
            note["cost_weight_search"] = f"not searched: {err}"
        if weight != 1.0:
            twin = measure_weight(weight)
            moved = replace(measure(twin), floor_scale=corr.floor_scale, cost_weight=weight)
            held = allocation_budget(config.constraints.budget, {"applied": True, **moved.as_dict()})
            unlike = twin_unlike_list(config, twin, weights, candidates_economics, twin_floor, weight, held)
            if unlike:
                note["cost_weight_dropped"] = unlike
                weight = 1.0
            else:
                corr = moved

    def measure_budget(budget):
        """The twin at another budget, its floor the campaign twin's, with the calibration's part of its own
        policy (a few picked users carry a larger relative calibration error than the campaign's many)."""
        moved = config.model_copy(update={"constraints": config.constraints.model_copy(
            update={"budget": budget, "min_roi": twin_floor})})
        return measure(heldout_policy(moved, oof, data.arm, data.converted, data.value, data.propensity, vhat,
                                      n_candidates, weights=weights, cost_weight=weight))

    corr = replace(corr, by_budget=budget_twins(config, corr, n_candidates, measure_budget))
    return {"applied": True, "corrected": config.model.correct_forecast, **note, **corr.as_dict()}


# the twin is measured again at these multiples of the campaign's budget (budget_twins)
TWIN_BUDGET_MULTIPLES = (0.25, 0.5, 2.0)


def budget_twins(config: CampaignConfig, corr, n_candidates: int, measure_budget) -> list[dict]:
    """``ForecastCorrection.by_budget``: the campaign's twin (``corr``) and the twins at
    ``TWIN_BUDGET_MULTIPLES`` of the campaign's budget (``measure_budget(budget)``; a budget whose twin cannot
    be allocated is left out), keyed by budget per treatable candidate. Empty without a budget: the curve's
    budgets then have no scale to measure at, and the campaign's twin serves all of them."""
    budget = config.constraints.budget
    if not budget:
        return []
    treatable = n_candidates - holdout_size(n_candidates, config.holdout.fraction)
    entries = [corr.budget_entry(budget / treatable)]
    for m in TWIN_BUDGET_MULTIPLES:
        try:
            entries.append(measure_budget(m * budget).budget_entry(m * budget / treatable))
        except PromoOptError:
            continue
    return sorted(entries, key=lambda e: e["budget_per_user"])


# held_out_floor: at most this many re-measurements of the twin; floors within this relative distance are one
FLOOR_STEPS = 6
FLOOR_TOLERANCE = 0.02


def held_out_floor(min_roi: float, corr, at: float | None, measure_at) -> tuple:
    """The lowest floor on the model's expected ROI at which the twin policy (held-out folds), allocated
    with that floor, is *measured* to return ``min_roi``; returns (the correction measured there, with
    ``floor_scale`` = floor / min_roi, a list of the floors tried).

    The held-out ratios r_spend / r_revenue of a twin describe that twin's users. Where they move the floor
    far, the candidates get another policy: in a world with little signal the twin at the planner's floor
    treated 4% of its budget and returned 7.8x what the model promised, so the floor fell 6-fold, the
    candidates' policy spent the whole budget and returned 1.5x, under the floor. So the twin is measured
    again at the floor its ratios lead to. A floor f is *safe* when the twin allocated at f is forecast
    to meet ``min_roi`` (``min_roi x r_spend(f) / r_revenue(f) <= f``); the search steps to the floor
    each measurement gives until one safe and one unsafe floor are known, then halves the interval
    between them (geometrically) and keeps the safe end. ``at``: the floor ``corr`` was measured at
    (None: measured without a floor). ``measure_at(f)`` raises PromoOptError where the twin cannot meet
    f (then the search stops). Without a safe floor, ``corr`` as last measured (its ratios move the floor)."""
    safe = unsafe = None
    tried = [] if at is None else [at]
    for _ in range(FLOOR_STEPS + 1):
        g = corr.allocation_floor(min_roi)
        if at is not None:
            if g <= at * (1 + FLOOR_TOLERANCE):
                safe = (at, corr) if safe is None or at < safe[0] else safe
            else:
                unsafe = (at, corr) if unsafe is None or at > unsafe[0] else unsafe
            if abs(g / at - 1) <= FLOOR_TOLERANCE:
                break
        if safe and unsafe:
            if safe[0] <= unsafe[0] * (1 + FLOOR_TOLERANCE):
                break
            nxt = float(np.sqrt(safe[0] * unsafe[0]))
        else:
            nxt = g
        if len(tried) > FLOOR_STEPS:
            break
        try:
            corr, at = measure_at(nxt), nxt
        except PromoOptError:
            break
        tried.append(nxt)
    if safe is None:
        return corr, tried
    return replace(safe[1], floor_scale=safe[0] / min_roi), tried


def train(config: CampaignConfig, progress=None) -> TrainedModel:
    """``progress(what, done, total)``: optional callback after every fold fit (the CLI's progress bar).

    Fits use the cores that are free when training starts (:mod:`promo_opt.threads`)."""
    from promo_opt.threads import thread_budget

    with thread_budget() as threads:
        model = _train(config, progress)
    model.metrics["threads"] = threads
    return model


def _train(config: CampaignConfig, progress=None) -> TrainedModel:
    from promo_opt.evaluation.drift import check_drift
    from promo_opt.evaluation.evidence import average_effects

    t0 = time.perf_counter()
    data, features = load_training(config)
    given = data.propensity is not None
    data = with_estimated_propensity(config, data)  # only when observational.estimate_propensity asks
    propensity_source = ("column '%s'" % config.data.propensity if given else
                         f"estimated ({config.observational.propensity_model}, cross-fitted)"
                         if data.propensity is not None else "randomized: observed arm shares")
    pre = FeaturePreprocessor().fit(data.X)
    Z = pre.transform(data.X)
    value_model = None
    if data.value is not None:
        value_model = OrderValueModel(seed=config.seed).fit(Z, data.value, data.converted)
    vhat = value_model.predict(Z) if value_model is not None else np.ones(len(data.arm))
    policy_check = None
    n_candidates = None
    drift, weights = None, None
    if config.data.candidates is not None:
        candidates = load_candidates(config, features)
        n_candidates = len(candidates.ids)
        if config.drift.check:
            t1 = time.perf_counter()
            report, weights = check_drift(Z, pre.transform(candidates.X), config.drift, seed=config.seed)
            drift = {**report.as_dict(), "seconds": time.perf_counter() - t1}
            if report.shifted:
                log.warning("drift: %s", report.message)

        def policy_check(fitted, selection, rows):
            _check_policies(config, fitted, selection, data, vhat, n_candidates, rows, weights)
    fitted, selection = select_learner(
        Z, data.arm, data.converted, len(config.arm_names), arm_terms(config),
        learner=config.model.learner, folds=config.model.folds, calibrate=config.model.calibrate,
        seed=config.seed, propensity=data.propensity, arm_names=config.arm_names, policy_check=policy_check,
        progress=progress, outcome_type=config.data.outcome_type, sample_weight=weights, race=config.model.race,
    )
    uplift = fitted[selection.chosen]

    def candidates_economics():
        """The final model's economics of the treatable candidates (as ``allocate`` will see them)."""
        Zc = pre.transform(candidates.X)
        v = value_model.predict(Zc) if value_model is not None else np.ones(len(Zc))
        treat = ~holdout_mask(n_candidates, config.holdout.fraction, config.seed)
        return campaign_economics(config, uplift.predict_proba(Zc), v).subset(treat)

    correction = forecast_correction(config, uplift, data, vhat, n_candidates, weights=weights,
                                     candidates_economics=candidates_economics if n_candidates else None)
    evidence = average_effects(config, uplift.oof_, data.arm, data.converted, data.propensity)
    metrics = {
        "n_train": int(len(data.arm)),
        "outcome_type": config.data.outcome_type,
        "propensity": propensity_source,
        "rows_per_arm": dict(zip(config.arm_names, np.bincount(data.arm, minlength=len(config.arm_names)).tolist())),
        "conversion_rate_per_arm": {
            a: float(data.converted[data.arm == k].mean()) for k, a in enumerate(config.arm_names)},
        "selection": selection.as_dict(),
        "uplift_by_decile": uplift_by_decile(uplift.oof_, data.arm, data.converted, config.arm_names),
        "value_model": "lightgbm" if value_model is not None and value_model.model_ is not None
        else ("mean of converted orders (too few orders for a model)" if value_model is not None else "none: 1 per conversion"),
        "forecast_correction": correction,
        "evidence": evidence,
        "drift": drift,
        "seconds": time.perf_counter() - t0,
    }
    return TrainedModel(arm_names=config.arm_names, features=features, preprocessor=pre, uplift=uplift,
                        value_model=value_model, metrics=metrics)


# --------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------
def score_candidates(config: CampaignConfig, model: TrainedModel, candidates: Candidates | None = None) -> pd.DataFrame:
    """The scores table: id, value, p_<arm> per arm (and the segment column when configured)."""
    from promo_opt.threads import thread_budget

    if candidates is None:
        candidates = load_candidates(config, model.features)
    with thread_budget():
        p, value = model.predict(candidates.X)
    out = {config.data.id: candidates.ids, "value": value}
    for k, a in enumerate(config.arm_names):
        out[f"p_{a}"] = p[:, k]
    if config.data.segment:
        out[config.data.segment] = candidates.segment
    if config.long_term_segment is not None:  # issue 13: each candidate's multipliers come from its level
        out[config.long_term_segment] = candidates.long_term_segment
    return pd.DataFrame(out)


def economics_from_scores(config: CampaignConfig, scores: pd.DataFrame) -> tuple[np.ndarray, Economics]:
    """Check a scores table against the config's arms and turn it into economics."""
    need = [config.data.id, "value"] + [f"p_{a}" for a in config.arm_names]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise DataError(f"scores: missing column(s) {missing}; expected {need} (from 'promo-opt score')")
    p = numeric_columns(scores, [f"p_{a}" for a in config.arm_names], "scores")  # text: a DataError, not a ValueError
    binary = config.data.outcome_type == "binary"
    bad = ~np.isfinite(p) | (p < 0) | ((p > 1) if binary else False)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        expected = "a probability in [0, 1]" if binary else f"an expected {config.data.outcome_type} >= 0"
        raise DataError(f"scores: column 'p_{config.arm_names[k]}' row {i} is {p[i, k]}; expected {expected}")
    value = numeric_columns(scores, ["value"], "scores")[:, 0]
    if (~np.isfinite(value) | (value < 0)).any():
        raise DataError("scores: column 'value' must hold finite numbers >= 0")
    ids = scores[config.data.id].to_numpy()
    if pd.Series(ids).duplicated().any():
        raise DataError(f"scores: column '{config.data.id}' has repeated ids")
    econ = campaign_economics(config, p, value)
    if config.objective == "long_term_value":  # issue 13: each arm's long-term multiplier from ltv:
        from promo_opt.ltv.objective import with_long_term

        seg = None
        col = config.long_term_segment
        if col is not None:
            if col not in scores.columns:
                raise DataError(f"scores: missing column '{col}' (ltv.segment): each candidate's level picks its "
                                "long-term multipliers; re-run 'promo-opt score' with this config")
            seg = segment_labels(scores[col])
        econ = with_long_term(econ, config, seg)
    return ids, econ


# --------------------------------------------------------------------------------------------
# allocate
# --------------------------------------------------------------------------------------------
def holdout_size(n: int, fraction: float) -> int:
    """How many of ``n`` users :func:`holdout_mask` keeps untreated."""
    return int(round(fraction * n))


def holdout_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """Exactly :func:`holdout_size` users, chosen at random (seeded), kept untreated."""
    mask = np.zeros(n, dtype=bool)
    k = holdout_size(n, fraction)
    if k:
        mask[np.random.default_rng([seed, 7919]).choice(n, size=k, replace=False)] = True
    return mask


@dataclass
class AllocationOutcome:
    ids: np.ndarray
    arm: np.ndarray  # (n,) for every candidate (holdout -> control)
    holdout: np.ndarray
    econ: Economics
    allocation: Allocation  # over the treatable users
    budget: float | None
    min_roi: float | None  # the planner's floor on the true ROI
    targets: pd.DataFrame
    summary: dict = field(default_factory=dict)
    segment: np.ndarray | None = None  # segment code of each treatable (non-holdout) user, when configured
    segment_names: list[str] | None = None
    allocated_min_roi: float | None = None  # the floor on the model's expected ROI the allocator held (allocation_floor)
    allocated_budget: float | None = None  # the budget on the model's expected spend the allocator held (allocation_budget)
    allocated_cost_weight: float = 1.0  # the net revenue's weight on spend the allocator held (allocation_cost_weight)


def allocate(config: CampaignConfig, scores: pd.DataFrame, *, budget: float | None = None,
             min_roi: float | None = None, correction: dict | None = None,
             gap_limit: float | None = None) -> AllocationOutcome:
    """``correction``: the model's ``metrics["forecast_correction"]``; when measured, the summary
    gets a ``forecast`` block: the expected totals corrected for the winner's curse, with a 90%
    interval (``interval90``), and the ROI floor and the budget are held on that forecast
    (:func:`allocation_floor`, :func:`allocation_budget`).
    ``constraints.min_roi_confidence`` raises the floor until it holds with that probability
    (:mod:`promo_opt.evaluation.guarantee`); it needs the correction. ``gap_limit``: see
    :func:`~promo_opt.allocation.solve` (a budget curve's points under caps, :func:`capped_plan`)."""
    t0 = time.perf_counter()
    budget = config.constraints.budget if budget is None else budget
    min_roi = config.constraints.min_roi if min_roi is None else min_roi
    ids, econ = economics_from_scores(config, scores)
    n = len(ids)
    hold = holdout_mask(n, config.holdout.fraction, config.seed)
    treat = ~hold
    sub = econ.subset(treat)
    segment = names = None
    if config.data.segment:
        if config.data.segment not in scores.columns:
            raise DataError(f"scores: missing column '{config.data.segment}' (data.segment); re-run 'promo-opt score'")
        labels = segment_labels(scores[config.data.segment])[treat]
        names, segment = np.unique(labels, return_inverse=True)
        names = [str(x) for x in names]

    held = allocation_budget(budget, correction)
    weight = allocation_cost_weight(config.objective, correction)
    named = reported_cost_weight(config.objective, correction)

    def solve_at(floor):
        problem = build_problem(sub, config, budget=held, min_roi=floor, segment=segment, segment_names=names,
                                cost_weight=weight)
        res = solve(problem, solver=config.solver, gap_limit=gap_limit)
        return res, sub.totals(res.arm)

    guarantee = None
    confidence = config.constraints.min_roi_confidence
    floor = allocation_floor(min_roi, correction)
    if confidence is not None and min_roi:
        from promo_opt.evaluation.guarantee import guaranteed_floor

        corr = _guarantee_correction(correction)
        result, _, guarantee = with_floor_named(
            lambda: guaranteed_floor(solve_at, min_roi, confidence, corr, start=floor), min_roi, floor)
        floor = guarantee.allocated_min_roi
    else:
        result, _ = with_floor_named(lambda: solve_at(floor), min_roi, floor)
    arm = np.zeros(n, dtype=np.int64)
    arm[treat] = result.arm
    cols = econ.pick(arm)
    names_arr = np.array(config.arm_names, dtype=object)
    targets = pd.DataFrame({config.data.id: ids, "arm": names_arr[arm], "holdout": hold, **cols})
    totals = econ.totals(arm)
    summary = {
        "campaign": config.name,
        "objective": config.objective,
        "outcome_type": config.data.outcome_type,
        "control_arm": config.control.name,
        "budget": budget,
        "allocated_budget": held,
        "min_roi": min_roi,
        "allocated_min_roi": floor,
        **({} if named is None else {"allocated_cost_weight": named}),
        "n_candidates": int(n),
        "holdout_size": int(hold.sum()),
        "expected": {**totals},
        "users_per_arm": dict(zip(config.arm_names, np.bincount(arm, minlength=len(config.arm_names)).tolist())),
        "spend_per_arm": {a: float(cols["expected_cost"][arm == k].sum()) for k, a in enumerate(config.arm_names)},
        "solver": result.solver,
        "solver_reason": result.solver_reason,
        "solver_status": result.status,
        "lp_upper_bound": result.bound,
        "gap": result.gap,
        "n_fractional_rounded": result.n_fractional,
        "slacks": result.slacks,
        "multipliers": result.multipliers,
        "seconds": {"allocate": time.perf_counter() - t0},
    }
    if guarantee is not None:
        summary["roi_guarantee"] = guarantee.as_dict()
    use = budget_use(totals, held, floor, config.objective, asked=min_roi,
                     side=binding_side_constraints(config, result.slacks, names))
    if use is not None:
        summary["budget_use"] = use
    if econ.long_term_multiplier is not None:  # issue 13: immediate and long-term figures side by side
        from promo_opt.ltv.objective import long_term_totals

        summary["long_term"] = long_term_totals(econ, arm, config)
    forecast = corrected_forecast(totals, correction, config.objective, budget, max(int(treat.sum()), 1))
    if forecast is not None:
        summary["forecast"] = forecast
    return AllocationOutcome(ids=ids, arm=arm, holdout=hold, econ=econ, allocation=result, budget=budget,
                             min_roi=min_roi, targets=targets, summary=summary, segment=segment, segment_names=names,
                             allocated_min_roi=floor, allocated_budget=held, allocated_cost_weight=weight)


def allocation_floor(min_roi: float | None, correction: dict | None) -> float | None:
    """The floor on the model's expected ROI that the allocator holds for the planner's ``min_roi``:
    the one under which the corrected forecast meets ``min_roi``
    (:meth:`~promo_opt.evaluation.heldout.ForecastCorrection.allocation_floor`); ``min_roi`` itself
    without an applied correction (``model.correct_forecast: false``, a model without a held-out
    measurement). Every door (allocate, plan, the service's slider, Spark) goes through it, so the
    curve and the list agree."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    if not min_roi or not correction or not correction.get("applied"):
        return min_roi
    return ForecastCorrection.from_dict(correction).allocation_floor(min_roi)


def budget_scale(correction: dict | None) -> float:
    """The model's expected spend the allocator holds per unit of the planner's budget:
    :meth:`~promo_opt.evaluation.heldout.ForecastCorrection.spend_scale` (1 / the held-out ratio of spend), so
    that the policy's *forecast* spend meets the budget; 1 without an applied correction (the ratio applied
    is 1 under ``model.correct_forecast: false``)."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    if not correction or not correction.get("applied"):
        return 1.0
    return ForecastCorrection.from_dict(correction).spend_scale()


def allocation_cost_weight(objective: str, correction: dict | None) -> float:
    """The weight of the spend in the allocator's gain under the objective ``net_revenue`` (incremental revenue
    - weight x spend): the one the held-out twin showed pays surest (:func:`held_out_cost_weight`); 1 (the plain
    net revenue) under other objectives, without an applied correction, or for a model trained before it existed.
    Every door goes through it, so the curve and the list agree."""
    if objective != "net_revenue" or not correction or not correction.get("applied"):
        return 1.0
    return float(correction.get("cost_weight") or 1.0)


def reported_cost_weight(objective: str, correction: dict | None) -> float | None:
    """The break-even an output names (``allocated_cost_weight`` of a summary or of the service's plans):
    :func:`allocation_cost_weight` under the objective ``net_revenue``, None under the others, where it does not
    apply."""
    return allocation_cost_weight(objective, correction) if objective == "net_revenue" else None


def allocation_budget(budget: float | None, correction: dict | None) -> float | None:
    """The budget on the model's expected spend that the allocator holds for the planner's ``budget``: the one
    whose policy is forecast to spend ``budget`` (:func:`budget_scale`). Every door goes through it or through
    :func:`on_held_budgets`, so the curve and the list agree."""
    return None if budget is None else float(budget) * budget_scale(correction)


def on_held_budgets(budgets, correction: dict | None, curve_at):
    """A budget curve at the planner's ``budgets`` (None: the default grid), allocated as a list at each of them
    would be (:func:`allocation_budget`): ``curve_at(held_budgets)`` gives the curve (a plan table or a dict of
    its columns) at the budgets on the model's expected spend; its ``budget`` column is given back in the
    planner's terms, so ``spend`` is the model's expected spend and ``forecast_spend`` meets ``budget``."""
    s = budget_scale(correction)
    asked = None if budgets is None else np.asarray(budgets, dtype=np.float64)
    curve = curve_at(None if asked is None else asked * s)
    if s == 1.0:
        return curve
    back = {} if asked is None else dict(zip((asked * s).tolist(), asked.tolist()))  # the planner's own numbers
    column = np.array([back.get(b, b / s) for b in np.asarray(curve["budget"], dtype=np.float64).tolist()])
    return curve.assign(budget=column) if isinstance(curve, pd.DataFrame) else {**curve, "budget": column}


def held_floor(config: CampaignConfig, min_roi: float | None, correction: dict | None) -> float | None:
    """The floor on the model's expected ROI that a budget curve holds for the planner's ``min_roi`` at
    every budget: :func:`allocation_floor`, raised in guarantee mode (``constraints.min_roi_confidence``) to
    the smallest expected ROI at which the floor holds with that probability
    (:func:`~promo_opt.evaluation.guarantee.guaranteed_roi`; one number for every budget, as the probability
    depends on a policy only through its expected ROI). An allocation holds the same floor where it binds."""
    floor = allocation_floor(min_roi, correction)
    confidence = config.constraints.min_roi_confidence
    if confidence is None or not min_roi:
        return floor
    from promo_opt.evaluation.guarantee import guaranteed_roi

    return guaranteed_roi(min_roi, confidence, _guarantee_correction(correction), floor)


def _guarantee_correction(correction: dict | None):
    """The model's measurement as guarantee mode needs it; a clear error without one."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    if not correction or not correction.get("applied"):
        raise PromoOptError("constraints.min_roi_confidence needs the model's held-out measurement of its "
                            "forecast; use a model trained by 'promo-opt train' or 'run' (and data.candidates set "
                            "at training time), e.g. 'promo-opt allocate --model DIR' or 'promo-opt plan --model DIR'")
    return ForecastCorrection.from_dict(correction)


floor_moved = held_moved  # the floor the allocator held is not the planner's (allocation_floor moved it)


def with_floor_named(solve, min_roi: float | None, floor: float | None):
    """``solve()``; an infeasible floor names the planner's ``min_roi`` and the floor it became."""
    try:
        return solve()
    except InfeasibleError as err:
        if not floor_moved(min_roi, floor) or isinstance(err, GuaranteeRefused):  # the latter says it all
            raise
        raise InfeasibleError(f"{err} {_held_context(min_roi, floor)}") from err


def _held_context(min_roi: float, floor: float) -> str:
    return (f"(min_roi {min_roi:g} is held on the forecast: the held-out measurement says true returns are "
            f"{min_roi / floor:.3g}x the model's, so the model's expected ROI must reach {floor:.4g})")


def floor_out_of_reach(config: CampaignConfig, asked: float, plain: float, floor: float, best: float) -> InfeasibleError:
    """The refusal of a floor ``floor`` on the model's expected ROI above ``best``, the best ROI any user x arm
    reaches, in the planner's terms: ``asked`` is the planner's ``min_roi``, ``plain`` the floor it is held at on
    the forecast (:func:`allocation_floor`), ``floor`` the one held (:func:`held_floor`: above ``plain`` where
    guarantee mode raised it). What :func:`allocate` says where the same floor cannot be met."""
    if floor_moved(plain, floor):  # guarantee mode raised it: it is the guarantee's floor, not the planner's
        from promo_opt.evaluation.guarantee import out_of_reach

        return GuaranteeRefused(out_of_reach(config.constraints.min_roi_confidence, asked, None, floor, best))
    err = unreachable_floor(floor, best)
    return InfeasibleError(f"{err} {_held_context(asked, floor)}") if floor_moved(asked, floor) else err


# below this share of the budget the summary, the CLI and the report say why the money is not spent
UNDERSPEND_SHARE = 0.5


def budget_use(totals: dict, budget: float | None, min_roi: float | None, objective: str,
               asked: float | None = None, side: list[str] | None = None) -> dict | None:
    """How much of the budget the policy expects to spend and what stops it (``summary.budget_use``):
    ``limit`` is ``budget`` (spent), ``roi_floor`` (the floor binds: the expected ROI sits on
    ``min_roi``, the floor the allocator held), ``side_constraints`` (an arm cap or a segment budget the policy
    meets, named in ``side``: :func:`binding_side_constraints`; then listed as ``binding``) or ``objective`` (no
    further user gains under the objective). ``warning`` when the expected spend is below ``UNDERSPEND_SHARE``
    of the budget, so a policy that quietly spends almost nothing is never silent; it names the planner's floor
    ``asked`` (default ``min_roi``) or the binding caps. None without a budget."""
    if not budget:
        return None
    spend, revenue = float(totals["spend"]), float(totals["incremental_revenue"])
    share = spend / budget
    if share >= 0.99:
        limit = "budget"
    elif min_roi is not None and spend > 0 and revenue <= min_roi * spend * (1 + 1e-3):  # on the floor
        limit = "roi_floor"
    elif side:
        limit = "side_constraints"
    else:
        limit = "objective"
    out = {"share": share, "limit": limit, **({"binding": list(side)} if limit == "side_constraints" else {})}
    if share < UNDERSPEND_SHARE:
        asked = min_roi if asked is None else asked
        held = f" (held on the forecast: an expected ROI of {min_roi:.3g})" if floor_moved(asked, min_roi) else ""
        if limit == "roi_floor":
            why = (f"the ROI floor {asked:g}{held} binds: the model sees too few users whose expected return clears "
                   "it (lower constraints.min_roi, or see the forecast interval: a floor near the best attainable ROI "
                   "turns small estimation errors into large cuts)")
        elif limit == "side_constraints":
            why = f"{' and '.join(side)} {'binds' if len(side) == 1 else 'bind'} before the budget is spent (raise " \
                  f"{'it' if len(side) == 1 else 'them'} to use the budget)"
        else:
            why = f"no further user gains under the objective '{objective}' by the model's estimates"
        out["warning"] = f"the policy expects to spend {share:.1%} of the budget: {why}"
    return out


def binding_side_constraints(config: CampaignConfig, slacks: dict[str, float],
                             segment_names: list[str] | None) -> list[str]:
    """The arm caps and segment budgets an allocation meets, from its ``slacks``
    (:func:`promo_opt.allocation.problem.make_slacks`): a user cap exactly, a spend cap or a segment's budget
    within 1% (as the budget counts as spent at 99%). Named as the config names them."""
    out = []
    for k, a in enumerate(config.arms):
        if a.max_users is not None and slacks.get(f"arm{k}_users", np.inf) < 0.5:
            out.append(f"max_users {a.max_users} of arm '{a.name}'")
        if a.max_spend is not None and slacks.get(f"arm{k}_spend", np.inf) <= 0.01 * a.max_spend:
            out.append(f"max_spend {a.max_spend:g} of arm '{a.name}'")
    budgets = config.constraints.segment_budgets or {}
    for j, name in enumerate(segment_names or []):
        b = budgets.get(name)
        if b is not None and slacks.get(f"segment{j}_budget", np.inf) <= 0.01 * b:
            out.append(f"constraints.segment_budgets['{name}'] {b:g}")
    return out


def _side_constraints(config: CampaignConfig) -> bool:
    return config.data.segment is not None or any(a.max_users is not None or a.max_spend is not None
                                                  for a in config.arms)


def plan(config: CampaignConfig, scores: pd.DataFrame, budgets=None, *, min_roi: float | None = None,
         n_points: int = 50, correction: dict | None = None, cost_weight: float | None = None) -> pd.DataFrame:
    """What-if: the budget curve over the treatable (non-holdout) candidates of a scores table.

    ``budgets`` None: ``n_points`` from 0 to the spend where more stops paying. The ROI floor
    (config's unless given) is honoured: budgets whose path point breaks it are re-solved; with the
    model's ``correction``, the floor and each budget on the forecast as :func:`allocate` holds them
    (:func:`held_floor`: guarantee mode included; :func:`on_held_budgets`), and every point gets the forecast columns of :func:`curve_forecast` (the winner's-curse corrected totals,
    their 90% intervals, the warning). ``cost_weight``: the net revenue's weight on spend, when the caller holds
    it (default: :func:`allocation_cost_weight` of ``correction``).
    """
    if _side_constraints(config):
        return capped_plan(config, scores, budgets, min_roi=min_roi, correction=correction)
    problem, conversions = plan_problem(config, scores, min_roi=min_roi, correction=correction, cost_weight=cost_weight)
    curve = on_held_budgets(budgets, correction, lambda b: plan_curve(problem, conversions, budgets=b, n_points=n_points,
                                                                      arm_names=config.arm_names))
    return with_curve_forecast(curve, correction, config.objective, problem.n_users)


# points of a budget curve under arm caps or segment budgets when the planner names no budgets: each is an exact solve
CAPPED_POINTS = 9
# the relative gap each of them stops at: a curve needs close answers fast, not proofs (4,474 Artea users under a cap:
# one point took up to 45 s to prove optimal and 12 s to reach 1e-4)
CAPPED_GAP = 1e-4


def capped_plan(config: CampaignConfig, scores: pd.DataFrame, budgets=None, *, min_roi: float | None = None,
                correction: dict | None = None, n_points: int = CAPPED_POINTS) -> pd.DataFrame:
    """The budget curve under arm caps or segment budgets, which the one-sort frontier cannot model: at each
    budget the allocation :func:`allocate` makes there (the exact solver, certified; the floor, guarantee mode
    and the budget held on the forecast as there; searched to a relative gap of ``CAPPED_GAP``), one row of
    :func:`plan`'s columns plus its certified ``gap``.
    ``marginal_gain_per_unit`` is NaN (under caps there is no one exchange rate) and ``resolved`` False.
    ``budgets`` None: ``n_points`` from 0 to the spend where more stops paying (the allocation without a budget)."""
    if budgets is None:
        free = config.model_copy(update={"constraints": config.constraints.model_copy(update={"budget": None})})
        top = allocate(free, scores, min_roi=min_roi, correction=correction,
                       gap_limit=CAPPED_GAP).summary["expected"]["spend"]
        budgets = np.linspace(0.0, top / budget_scale(correction), n_points)  # the planner's terms (on_held_budgets)
    rows, n_treat = [], 0
    for b in np.asarray(budgets, dtype=np.float64).tolist():
        o = allocate(config, scores, budget=b, min_roi=min_roi, correction=correction, gap_limit=CAPPED_GAP)
        e, n_treat = o.summary["expected"], int((~o.holdout).sum())
        rows.append({"budget": b, "spend": e["spend"], "incremental_conversions": e["incremental_conversions"],
                     "incremental_revenue": e["incremental_revenue"], "objective": o.allocation.objective,
                     "roi": e["roi"], "marginal_gain_per_unit": np.nan,
                     **{f"users_{a}": n for a, n in o.summary["users_per_arm"].items()},
                     "resolved": False, "gap": o.allocation.gap})
        log.info("capped plan: budget %.6g: spend %.6g, gap %.2e", b, e["spend"], o.allocation.gap)
    return with_curve_forecast(pd.DataFrame(rows), correction, config.objective, n_treat)


def plan_problem(config: CampaignConfig, scores: pd.DataFrame, *, min_roi: float | None = None,
                 correction: dict | None = None, cost_weight: float | None = None) -> tuple[AllocationProblem, np.ndarray]:
    """What ``plan`` curves: the budget/ROI problem over the treatable candidates and their (n, K)
    incremental conversions. Built once, it answers many budget questions (the service caches it). A floor above
    the best ROI any user x arm reaches is refused as :func:`allocate` refuses it (:func:`floor_out_of_reach`):
    every budget would buy nothing, and the planner is told why."""
    if _side_constraints(config):
        raise PromoOptError("this budget curve covers the budget and the ROI floor; this config also has arm caps or "
                            "segment budgets, which it does not model: 'promo-opt plan' answers them with an exact "
                            "allocation at each budget, or remove them for planning")
    ids, econ = economics_from_scores(config, scores)
    treat = ~holdout_mask(len(ids), config.holdout.fraction, config.seed)
    asked = config.constraints.min_roi if min_roi is None else min_roi
    floor = held_floor(config, asked, correction)
    weight = allocation_cost_weight(config.objective, correction) if cost_weight is None else cost_weight
    problem, conversions = _budget_roi_problem(config, econ, treat, floor, weight)
    if floor is not None and problem.n_users:
        best = best_attainable_roi(problem)
        if floor > best:
            raise floor_out_of_reach(config, asked, allocation_floor(asked, correction), floor, best)
    return problem, conversions


def _budget_roi_problem(config, econ: Economics, treat, min_roi,
                        cost_weight: float = 1.0) -> tuple[AllocationProblem, np.ndarray]:
    sub = econ.subset(treat)
    full = build_problem(sub, config, budget=None, min_roi=min_roi, cost_weight=cost_weight)
    problem = AllocationProblem(full.gain, full.spend, full.revenue, min_roi=min_roi)  # budget and ROI only
    return problem, sub.incremental_conversions


def _plan_econ(config, econ: Economics, treat, budgets, min_roi, n_points=50, cost_weight: float = 1.0) -> pd.DataFrame:
    problem, conversions = _budget_roi_problem(config, econ, treat, min_roi, cost_weight)
    return plan_curve(problem, conversions, budgets=budgets, n_points=n_points, arm_names=config.arm_names)


# points of a run's report curve under arm caps or segment budgets, where each is an exact solve (capped_plan)
CAPPED_REPORT_POINTS = 5


def report_budgets(config: CampaignConfig, budget: float | None, n_points: int = 41) -> np.ndarray | None:
    """The budgets of a run's report curve: ``n_points`` from 0 to twice the campaign's ``budget`` (None without
    one: the plan's own range); under arm caps or segment budgets ``CAPPED_REPORT_POINTS`` (each an exact solve)."""
    if not budget:
        return None
    return np.linspace(0.0, 2.0 * budget, CAPPED_REPORT_POINTS if _side_constraints(config) else n_points)


def budget_curve(config: CampaignConfig, outcome: AllocationOutcome, scores: pd.DataFrame, n_points: int = 41,
                 correction: dict | None = None) -> pd.DataFrame:
    """The report's curve: budgets from 0 to twice the campaign's (:func:`report_budgets`), the floor the
    allocation held (with the model's ``correction``: :func:`held_floor`, and the forecast columns of
    :func:`curve_forecast`). Under arm caps or segment budgets, :func:`capped_plan` on ``scores``: the exact
    allocation at each budget, so the campaign's own allocation lies on its curve."""
    budgets = report_budgets(config, outcome.budget, n_points)
    if _side_constraints(config):
        return capped_plan(config, scores, budgets, min_roi=outcome.min_roi, correction=correction)
    floor = held_floor(config, outcome.min_roi, correction) if correction else outcome.allocated_min_roi
    weight = allocation_cost_weight(config.objective, correction)
    curve = on_held_budgets(budgets, correction, lambda b: _plan_econ(config, outcome.econ, ~outcome.holdout, b, floor,
                                                                      n_points, weight))
    return with_curve_forecast(curve, correction, config.objective, int((~outcome.holdout).sum()))


def write_allocation(outcome: AllocationOutcome, out_dir: Path) -> None:
    write_table(outcome.targets, out_dir / "targets.csv")
    write_json(outcome.summary, out_dir / "summary.json")


def read_scores(path: str | Path) -> pd.DataFrame:
    scores = read_table(path, "scores")
    if len(scores) == 0:  # (an empty Spark partition is fine: this is the file a user gave)
        raise DataError(f"scores {path}: the file has no rows; expected one row per candidate (from 'promo-opt score')")
    return scores


# --------------------------------------------------------------------------------------------
# run: train, score, allocate, evaluate, report
# --------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    model: TrainedModel
    scores: pd.DataFrame
    outcome: AllocationOutcome
    curve: pd.DataFrame
    summary: dict
    report_html: str


def run(config: CampaignConfig, progress=None) -> RunResult:
    """The whole job in memory; nothing is written (see :func:`write_run`). ``progress``: see :func:`train`."""
    from promo_opt.evaluation.truth import score_against_truth
    from promo_opt.report.html import render_report

    t = {}
    t0 = time.perf_counter()
    model = train(config, progress=progress)
    t["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_candidates(config, model)
    t["score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcome = allocate(config, scores, correction=model.metrics.get("forecast_correction"))
    t["allocate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    curve = budget_curve(config, outcome, scores, correction=model.metrics.get("forecast_correction"))
    t["plan"] = time.perf_counter() - t0
    summary = dict(outcome.summary)
    if model.metrics.get("drift") is not None:
        summary["drift"] = model.metrics["drift"]
    if model.metrics.get("evidence") is not None:
        summary["evidence"] = model.metrics["evidence"]
    if config.data.truth is not None:
        t0 = time.perf_counter()
        truth = read_table(config.data.truth, "truth")
        report = score_against_truth(config, outcome.ids, outcome.arm, ~outcome.holdout, truth,
                                     summary["expected"], outcome.budget, outcome.min_roi,
                                     segment=outcome.segment, segment_names=outcome.segment_names,
                                     forecast=summary.get("forecast"), like=outcome.econ)
        summary["truth"] = report.as_dict()
        t["truth"] = time.perf_counter() - t0
    from promo_opt.evaluation.policies import compare_policies  # issue 5: strategies at the same budget

    t0 = time.perf_counter()
    summary["policy_comparison"] = compare_policies(config, model, outcome)
    t["policy_comparison"] = time.perf_counter() - t0
    summary["learner"] = model.metrics["selection"]["chosen"]
    summary["seconds"] = t
    if _side_constraints(config):
        summary["budget_curve_note"] = ("under the arm caps and segment budgets: each point of the budget curve is the "
                                        "exact allocation at its budget (certified gap in plan.csv)")
    t0 = time.perf_counter()
    html = render_report(summary, curve, model.metrics)
    t["report"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return RunResult(model=model, scores=scores, outcome=outcome, curve=curve, summary=summary, report_html=html)


def write_run(result: RunResult, config: CampaignConfig, out_dir: Path) -> list[Path]:
    """Write every output of ``run``; each file lands whole (temp file, then rename)."""
    from promo_opt.data import write_bytes

    out_dir = Path(out_dir)
    result.model.save(out_dir / "model", config)
    paths = [write_table(result.scores, out_dir / "scores.parquet"),
             write_table(result.outcome.targets, out_dir / "targets.csv"),
             write_table(result.curve, out_dir / "plan.csv"),
             write_json(result.summary, out_dir / "summary.json"),
             write_bytes(result.report_html.encode(), out_dir / "report.html")]
    return paths
