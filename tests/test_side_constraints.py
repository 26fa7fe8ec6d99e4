"""Arm caps and segment budgets from the config go to the exact solver, and hold."""

import numpy as np
import pandas as pd
import pytest

from promo_opt import pipeline
from promo_opt.config import parse_config
from promo_opt.errors import DataError


def _scores(n=300, seed=0):
    rng = np.random.default_rng(seed)
    p0 = rng.beta(2, 20, n)
    lift = np.clip(rng.normal(0.02, 0.02, n), -0.02, None)
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "value": rng.lognormal(4, 0.5, n),
                         "p_control": p0, "p_pct10": np.clip(p0 + lift, 0, 1), "p_pct20": np.clip(p0 + 1.8 * lift, 0, 1),
                         "country": rng.choice(["DE", "FR", "NL"], n)})


def _config(**extra):
    raw = {"data": {"id": "user_id", "segment": "country", "value": "v"},
           "arms": [{"name": "control", "control": True}, {"name": "pct10", "discount": 0.1},
                    {"name": "pct20", "discount": 0.2, "max_users": 20}],
           "constraints": {"budget": 150.0, "segment_budgets": {"DE": 40.0, "FR": 60.0, "NL": 80.0}}}
    raw.update(extra)
    return parse_config(raw)


def test_caps_and_segment_budgets_hold_and_solver_says_why():
    scores = _scores()
    out = pipeline.allocate(_config(), scores)
    s = out.summary
    assert s["solver"] == "mip-scip" and "caps or segment budgets" in s["solver_reason"]
    assert s["users_per_arm"]["pct20"] <= 20
    t = out.targets.assign(country=scores["country"])
    per_seg = t.groupby("country")["expected_cost"].sum()
    assert per_seg["DE"] <= 40 + 1e-9 and per_seg["FR"] <= 60 + 1e-9 and per_seg["NL"] <= 80 + 1e-9
    assert t["expected_cost"].sum() <= 150 + 1e-9
    assert s["gap"] < 1e-3
    # an uncapped campaign does better or equal: the caps really bind
    free = pipeline.allocate(parse_config({"data": {"id": "user_id", "value": "v"}, "arms": [
        {"name": "control", "control": True}, {"name": "pct10", "discount": 0.1}, {"name": "pct20", "discount": 0.2}],
        "constraints": {"budget": 150.0}}), scores)
    assert free.summary["expected"]["incremental_conversions"] >= s["expected"]["incremental_conversions"] - 1e-9
    assert free.summary["solver"] == "dual"


def test_budget_use_names_the_caps_that_stop_the_spending():
    """A cap that binds before the budget is what stops the spending, and the warning says which; before, it
    said no further user gains under the objective (Artea as a count outcome, max_users 300 on its coupon:
    39.8% of the budget spent). Checked against the slacks: the cap is met exactly, the budget is not."""
    scores = _scores()
    only_cap = {"budget": 1000.0}
    capped = [{"name": "control", "control": True}, {"name": "pct10", "discount": 0.1, "max_users": 5},
              {"name": "pct20", "discount": 0.2, "max_users": 3}]
    cfg = parse_config({"data": {"id": "user_id", "value": "v"}, "arms": capped, "constraints": only_cap})
    out = pipeline.allocate(cfg, scores)
    s = out.summary
    assert s["users_per_arm"]["pct10"] == 5 and s["users_per_arm"]["pct20"] == 3
    use = s["budget_use"]
    assert use["limit"] == "side_constraints" and use["share"] < 0.5
    assert use["binding"] == ["max_users 5 of arm 'pct10'", "max_users 3 of arm 'pct20'"]
    assert "max_users 5 of arm 'pct10' and max_users 3 of arm 'pct20' bind before the budget" in use["warning"]
    # segment budgets whose sum (180) is far below the budget: each is met, and named
    seg = pipeline.allocate(_config(constraints={"budget": 1000.0,
                                                 "segment_budgets": {"DE": 40.0, "FR": 60.0, "NL": 80.0}}), scores)
    use = seg.summary["budget_use"]
    assert use["limit"] == "side_constraints"
    per_seg = seg.targets.assign(country=scores["country"]).groupby("country")["expected_cost"].sum()
    named = [b for b in use["binding"] if b.startswith("constraints.segment_budgets")]
    assert named == [f"constraints.segment_budgets['{c}'] {b:g}" for c, b in (("DE", 40), ("FR", 60), ("NL", 80))
                     if per_seg[c] >= 0.99 * b] and named
    # a cap the policy does not reach is not named
    loose = [dict(a, max_users=10_000) if "max_users" in a else a for a in capped]
    free = pipeline.allocate(parse_config({"data": {"id": "user_id", "value": "v"}, "arms": loose,
                                           "constraints": only_cap}), scores)
    assert free.summary["budget_use"]["limit"] in ("budget", "objective")
    assert "binding" not in free.summary["budget_use"]


def test_segment_without_budget_is_named():
    scores = _scores()
    cfg = _config(constraints={"budget": 150.0, "segment_budgets": {"DE": 40.0, "FR": 60.0}})
    with pytest.raises(DataError, match=r"has values \['NL'\] with no entry in constraints.segment_budgets"):
        pipeline.allocate(cfg, scores)


def test_plan_under_caps_is_an_exact_allocation_at_each_budget():
    """Under arm caps and segment budgets the one-sort frontier does not apply; plan answers with the exact
    allocation at each budget. Every point holds the caps and the budgets; more budget never buys less; past
    the segment budgets' sum (180) nothing more is spent. Checked against the frontier where there are no caps:
    an exact solve at each budget is at least the frontier's point (optimal at its breakpoints, a greedy prefix
    between them) and at most its LP bound."""
    scores = _scores()
    cfg = _config()
    budgets = [0.0, 40.0, 100.0, 150.0, 400.0]
    curve = pipeline.plan(cfg, scores, budgets)
    assert curve["budget"].tolist() == budgets and (curve["gap"] < 1e-3).all()
    assert (curve["users_pct20"] <= 20).all() and (curve["spend"] <= curve["budget"] + 1e-9).all()
    assert (curve["spend"] <= 180 + 1e-9).all() and curve["spend"].iloc[0] == 0
    assert (np.diff(curve["incremental_conversions"]) >= -1e-3 * curve["incremental_conversions"].max()).all()
    assert curve["marginal_gain_per_unit"].isna().all() and not curve["resolved"].any()
    one = pipeline.allocate(cfg, scores, budget=100.0).summary
    assert curve["users_pct20"].iloc[2] == one["users_per_arm"]["pct20"]
    # no budgets named: points from 0 to the spend of the allocation without a budget
    auto = pipeline.plan(cfg, scores)
    assert len(auto) == pipeline.CAPPED_POINTS and auto["budget"].iloc[0] == 0
    free = cfg.model_copy(update={"constraints": cfg.constraints.model_copy(update={"budget": None})})
    assert auto["budget"].iloc[-1] == pytest.approx(pipeline.allocate(free, scores).summary["expected"]["spend"])
    # without caps: the exact solve per budget against the frontier
    plain = parse_config({"data": {"id": "user_id", "value": "v"}, "arms": [
        {"name": "control", "control": True}, {"name": "pct10", "discount": 0.1}, {"name": "pct20", "discount": 0.2}],
        "constraints": {"budget": 150.0}, "solver": "mip"})
    budgets = [10.0, 33.3, 77.7, 150.0, 251.0]
    exact = pipeline.capped_plan(plain, scores, budgets)
    frontier = pipeline.plan(plain, scores, budgets)
    assert (exact["objective"] >= frontier["objective"] * (1 - pipeline.CAPPED_GAP) - 1e-9).all()
    problem, _ = pipeline.plan_problem(plain, scores)
    from promo_opt.allocation import AllocationProblem
    from promo_opt.allocation.dual import solve_dual

    for b, got in zip(budgets, exact["objective"]):
        bound = solve_dual(AllocationProblem(problem.gain, problem.spend, problem.revenue, budget=b)).bound
        assert got <= bound + 1e-9


def test_the_service_and_spark_refuse_what_their_curve_cannot_model():
    from promo_opt.errors import PromoOptError

    with pytest.raises(PromoOptError, match="arm caps or segment budgets.*'promo-opt plan'"):
        pipeline.plan_problem(_config(), _scores())


def test_oracle_faces_the_segment_budgets():
    """The true-outcome oracle is held to the same segment budgets as the policy."""
    from promo_opt.evaluation.truth import score_against_truth

    scores = _scores()
    cfg = _config(constraints={"budget": 150.0, "segment_budgets": {"DE": 10.0, "FR": 10.0, "NL": 10.0}})
    out = pipeline.allocate(cfg, scores)
    truth = scores.drop(columns=["country"])  # treat the scores as the truth: same columns
    rep = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"],
                              out.budget, out.min_roi, segment=out.segment, segment_names=out.segment_names)
    assert rep.oracle["spend"] <= 30 + 1e-6  # the segments allow 30 of the global 150
    # with the scores as truth, the oracle is the policy itself (same solver, same constraints)
    assert rep.oracle["incremental_conversions"] == pytest.approx(rep.policy["incremental_conversions"], rel=1e-9)
