"""Issue 16: the decision path a planner can bet on: forecast intervals, drift checks, count and
amount outcomes, the ROI guarantee, the race of learners, threads sized to free cores, and the
world generator."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt.config import ArmConfig, DriftConfig, load_config
from promo_opt.data import load_training
from promo_opt.economics import compute_economics
from promo_opt.errors import ConfigError, DataError, InfeasibleError
from promo_opt.evaluation.drift import check_drift
from promo_opt.evaluation.guarantee import floor_probability, guaranteed_floor, guaranteed_roi
from promo_opt.evaluation.heldout import ForecastCorrection
from promo_opt.evaluation.metrics import arm_metrics
from promo_opt.learners.honest import select_learner
from promo_opt.simulation.generator import random_world, world_spec
from promo_opt.threads import free_cores, lgbm_threads, machine_cores, thread_budget
from tests.conftest import invoke, write_config

ARMS = [ArmConfig(name="control", control=True), ArmConfig(name="pct10", discount=0.1),
        ArmConfig(name="v5", cost_per_conversion=5.0, cost_per_send=0.5)]


# -- the contract in summary.json ------------------------------------------------------------
def test_run_summary_has_the_forecast_interval_and_the_drift_block(run_out):
    s = json.loads((run_out / "summary.json").read_text())
    iv = s["forecast"]["interval90"]
    assert set(iv) == {"incremental_conversions", "incremental_revenue", "spend"}
    for k, (lo, hi) in iv.items():
        assert lo <= s["forecast"][k] <= hi, k
    d = s["drift"]
    assert 0.0 <= d["auc"] <= 1.0 and isinstance(d["shifted"], bool) and isinstance(d["top_features"], list)
    assert d["shifted"] is False  # train and candidates come from the same travel population
    assert set(s["truth"]["interval90_covers"]) == set(iv)


def test_run_reads_out_each_promotions_average_effect_in_the_past_campaign(run_out):
    """The travel world's promotions work on average and 8,000 past users show it: every interval holds its
    estimate, the report has the table, and no evidence warning is raised."""
    s = json.loads((run_out / "summary.json").read_text())
    ev = s["evidence"]
    assert ev["rows"] == 8000 and set(ev["arms"]) == set(s["users_per_arm"]) - {s["control_arm"]}
    for a in ev["arms"].values():
        assert a["interval90"][0] <= a["effect"] <= a["interval90"][1] and a["se"] > 0
    assert max(a["z"] for a in ev["arms"].values()) > 2
    html = (run_out / "report.html").read_text()
    assert "each promotion's average effect" in html and "Warning: evidence" not in html


def test_the_interval_comes_from_the_heldout_ratio_and_its_standard_error():
    c = ForecastCorrection(ratio={"incremental_conversions": 1.1, "incremental_revenue": 1.0, "spend": 1.0},
                           raw_ratio={"incremental_conversions": 1.2, "incremental_revenue": 1.0, "spend": 0.9},
                           ratio_se={"incremental_conversions": 0.1, "incremental_revenue": 0.0, "spend": 0.05},
                           ratio_cov=np.diag([0.01, 0.0, 0.0025]).tolist())
    iv = c.interval({"incremental_conversions": 100.0, "incremental_revenue": 50.0, "spend": 200.0})
    assert iv["incremental_conversions"] == pytest.approx([120 - 16.4485, 120 + 16.4485], abs=1e-3)
    assert iv["spend"][0] == pytest.approx(200 * (0.9 - 1.644854 * 0.05), abs=1e-3)
    assert iv["spend"][1] == pytest.approx(200.0)  # widened to hold the point forecast (ratio 1)
    assert ForecastCorrection.from_dict(c.as_dict()).ratio_cov == c.ratio_cov


# -- count and amount outcomes ---------------------------------------------------------------
def test_count_economics_scale_the_trigger_cost_with_the_expected_orders():
    p = np.array([[1.5, 2.5, 2.0]])  # expected bookings under each arm
    e = compute_economics(p, np.array([100.0]), ARMS, outcome_type="count")
    assert e.spend[0].tolist() == pytest.approx([0.0, 0.1 * 100 * 2.5, 0.5 + 5 * 2.0])
    assert e.incremental_conversions[0].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert e.incremental_revenue[0, 1] == pytest.approx(100.0)
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        compute_economics(p, np.array([100.0]), ARMS)  # binary: 2.5 is no probability


@pytest.mark.parametrize("kind, values, needle", [
    ("count", [0, 1, 2.5], "must hold whole numbers >= 0"),
    ("count", [0, -1, 2], "must hold whole numbers >= 0"),
    ("amount", [0.0, -3.0, 12.5], "must hold finite numbers >= 0"),
    ("binary", [0, 1, 3], "set data.outcome_type: count or amount"),
])
def test_outcome_type_checks_name_the_column(campaign_copy, kind, values, needle):
    d, raw = campaign_copy
    df = pd.read_csv(d / "train.csv")
    df["converted"] = df["converted"].astype(float)
    df.loc[:2, "converted"] = values
    df.to_csv(d / "train.csv", index=False)
    raw["data"]["outcome_type"] = kind
    with pytest.raises(DataError, match="column 'converted'") as e:
        load_training(load_config(write_config(d, raw)))
    assert needle in str(e.value)


def test_outcome_type_is_validated_in_the_config(campaign_copy):
    d, raw = campaign_copy
    raw["data"]["outcome_type"] = "poisson"
    with pytest.raises(ConfigError, match="data.outcome_type"):
        load_config(write_config(d, raw))


def _outcome_world(kind: str, tmp_path, n_train=6000, n_candidates=3000):
    spec = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "scenarios", "travel.yaml")))
    spec["outcome_type"] = kind
    if kind == "count":  # about one booking a user in the season, several for frequent travellers
        spec["base"]["intercept"] = -0.3
    from promo_opt.simulation.world import parse_world

    path = parse_world(spec).write_campaign(tmp_path, seed=1, n_train=n_train, n_candidates=n_candidates)
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"learner": "pooled_smooth", "folds": 2}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("kind", ["count", "amount"])
def test_count_and_amount_outcomes_run_end_to_end(kind, tmp_path):
    cfg = _outcome_world(kind, tmp_path / "c")
    out = tmp_path / "out"
    r = invoke("run", cfg, "--out", out)
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["outcome_type"] == kind
    scores = pd.read_parquet(out / "scores.parquet")
    if kind == "count":  # expected bookings per user, not probabilities: some exceed 1 in this world
        assert (scores["p_control"] > 1).any()
    assert s["truth"]["share_of_oracle"] > 0.3  # a real policy, scored by the world's truth
    assert "interval90" in s["forecast"]
    sel = json.loads((out / "model" / "selection.json").read_text())
    assert all(np.isfinite(m["qini"]) for m in sel["uplift_metrics"]["pooled_smooth"].values())


def test_qini_for_counts_is_one_for_the_perfect_ranking_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    n = 20000
    arm = rng.integers(0, 2, n)
    tau = rng.uniform(0, 2, n)
    y = rng.poisson(1 + tau * arm).astype(float)
    good = np.column_stack([np.ones(n), 1 + tau])
    noise = np.column_stack([np.ones(n), 1 + rng.uniform(0, 2, n)])
    q_good = arm_metrics(good, arm, y, ["c", "t"])["t"]["qini"]
    q_noise = arm_metrics(noise, arm, y, ["c", "t"])["t"]["qini"]
    assert q_good > 0.1 and abs(q_noise) < 0.05 and q_good > q_noise + 0.1


# -- drift -------------------------------------------------------------------------------------
def _frames(shift: float, n=6000, seed=0):
    rng = np.random.default_rng(seed)

    def frame(m, s):
        return pd.DataFrame({"age": rng.normal(40 + s, 10, m), "visits": rng.poisson(3, m).astype(float),
                             "device": pd.Categorical(rng.choice(["a", "b"], m), categories=["a", "b"])})
    return frame(n, 0.0), frame(n // 2, shift)


def test_no_drift_when_the_populations_match():
    tr, ca = _frames(0.0)
    rep, w = check_drift(tr, ca, DriftConfig())
    assert rep.auc < 0.56 and not rep.shifted and w is None


def test_drift_is_detected_named_and_corrected_by_importance_weights():
    tr, ca = _frames(6.0)  # age shifted by 0.6 SD: overlap is fine
    rep, w = check_drift(tr, ca, DriftConfig())
    assert rep.shifted and rep.top_features[0] == "age" and rep.action == "reweighted"
    assert w.shape == (len(tr),) and w.mean() == pytest.approx(1.0)
    # the weighted training mean of age moves to the candidates' mean
    gap = abs(tr["age"].mean() - ca["age"].mean())
    assert gap > 4 and abs(np.average(tr["age"], weights=w) - ca["age"].mean()) < 0.25 * gap


def test_drift_beyond_the_training_support_is_refused_naming_the_feature():
    tr, ca = _frames(45.0)
    with pytest.raises(DataError, match=r"age.*extrapolate.*drift.on_extrapolation: warn"):
        check_drift(tr, ca, DriftConfig())
    rep, w = check_drift(tr, ca, DriftConfig(on_extrapolation="warn"))
    assert rep.action == "warned" and w is None


def test_drifted_candidates_warn_on_the_cli_and_top_the_report(campaign_copy, tmp_path):
    d, raw = campaign_copy
    cand = pd.read_csv(d / "candidates.csv")
    cand["bookings_12m"] = cand["bookings_12m"] + 2  # a season of frequent travellers
    cand.to_csv(d / "candidates.csv", index=False)
    raw["model"] = {"learner": "pooled_smooth", "folds": 2}
    out = tmp_path / "out"
    r = invoke("run", write_config(d, raw), "--out", out)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("WARNING: drift:") and "bookings_12m" in r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["drift"]["shifted"] and "bookings_12m" in s["drift"]["top_features"]
    html = (out / "report.html").read_text()
    assert html.index("Warning: drift") < html.index("expected incremental conversions")


def test_a_refused_run_writes_nothing(campaign_copy, tmp_path):
    d, raw = campaign_copy
    cand = pd.read_csv(d / "candidates.csv")
    cand["age"] = cand["age"] + 200
    cand.to_csv(d / "candidates.csv", index=False)
    raw["model"] = {"learner": "pooled_smooth", "folds": 2}
    out = tmp_path / "out"
    r = invoke("run", write_config(d, raw), "--out", out)
    assert r.exit_code == 2 and "extrapolate" in r.output and "age" in r.output
    assert not out.exists() or not any(out.iterdir())


# -- guarantee mode ----------------------------------------------------------------------------
def _correction(se_rev=0.1, se_spend=0.05, corr=0.5):
    cov = [[0.0, 0.0, 0.0], [0.0, se_rev ** 2, corr * se_rev * se_spend], [0.0, corr * se_rev * se_spend, se_spend ** 2]]
    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    return ForecastCorrection(ratio=dict(one), raw_ratio=dict(one), ratio_se={}, ratio_cov=cov)


def test_floor_probability_matches_monte_carlo():
    c = _correction()
    rng = np.random.default_rng(0)
    v = np.asarray(c.ratio_cov)[1:, 1:]
    draws = rng.multivariate_normal([1.0, 1.0], v, size=200_000)
    revenue, spend, floor = 1700.0, 1000.0, 1.5
    mc = np.mean(draws[:, 0] * revenue >= floor * draws[:, 1] * spend)
    assert floor_probability(revenue, spend, floor, c) == pytest.approx(mc, abs=0.005)


def test_guaranteed_floor_raises_the_floor_until_the_probability_is_met():
    rng = np.random.default_rng(1)
    n = 4000
    ret = rng.uniform(0.2, 2.0, n)  # revenue per unit of spend of each user's one promotion

    order = np.argsort(-ret)
    avg = np.cumsum(ret[order]) / np.arange(1, n + 1)

    def solve_at(m):  # the floor binds: the most users (best returns first) whose average return is m
        if not (avg >= m).any():
            raise InfeasibleError(f"min_roi {m} is above the best ROI")
        k = int(np.flatnonzero(avg >= m)[-1]) + 1
        take = order[:k]
        return take, {"incremental_revenue": float(ret[take].sum()), "spend": float(k)}

    c = _correction(se_rev=0.08, se_spend=0.03)
    take, totals, g = guaranteed_floor(solve_at, 1.5, 0.9, c)
    assert g.plain_floor_probability < 0.9 <= g.achieved
    assert g.allocated_min_roi > 1.5 and totals["incremental_revenue"] / totals["spend"] >= g.allocated_min_roi - 1e-3
    assert g.achieved == pytest.approx(floor_probability(totals["incremental_revenue"], totals["spend"], 1.5, c))


def test_a_guarantee_out_of_reach_names_what_it_needs_not_the_planners_floor():
    """Where the raised floor is above the best ROI any user x arm reaches, the refusal says what the guarantee
    needs and what the data reach; it does not tell the planner to lower a floor they did not set (the
    allocator's own refusal of the raised floor says 'lower constraints.min_roi')."""
    from promo_opt.allocation import unreachable_floor

    ret = np.random.default_rng(2).uniform(0.2, 2.0, 4000)
    best = float(ret.max())

    def solve_at(m):
        if m > best:
            raise unreachable_floor(m, best)
        take = ret >= m
        return take, {"incremental_revenue": float(ret[take].sum()), "spend": float(take.sum())}

    c = _correction(se_rev=0.08, se_spend=0.03)
    needed = guaranteed_roi(1.9, 0.9, c, start=1.9)
    assert needed > best  # the case under test
    with pytest.raises(InfeasibleError) as err:
        guaranteed_floor(solve_at, 1.9, 0.9, c)
    msg = str(err.value)
    assert f"needs an expected ROI of at least {needed:.4g}" in msg and f"reaches is {best:.4g}" in msg
    assert "min_roi 1.9" in msg and "lower constraints.min_roi" not in msg


def test_guaranteed_roi_is_the_smallest_expected_roi_that_meets_the_confidence():
    """P(floor holds) depends on a policy only through its expected ROI: the same probability for any spend at
    one ROI, the confidence met exactly at guaranteed_roi, and a clear refusal where the measurement is too
    uncertain for any ROI (mu / sigma tends to r_R / sd_R)."""
    c = _correction(se_rev=0.08, se_spend=0.03)
    assert floor_probability(1800.0, 1000.0, 1.5, c) == pytest.approx(floor_probability(18.0, 10.0, 1.5, c), abs=1e-12)
    rho = guaranteed_roi(1.5, 0.9, c, start=1.5)
    assert floor_probability(rho, 1.0, 1.5, c) == pytest.approx(0.9, abs=1e-5) and rho > 1.5
    assert floor_probability(rho * (1 - 1e-3), 1.0, 1.5, c) < 0.9
    assert guaranteed_roi(1.5, 0.9, c, start=2 * rho) == 2 * rho  # already safe: the start itself
    with pytest.raises(InfeasibleError, match="too uncertain") as err:  # r_R / sd_R = 1 / 0.8: at most P = 0.89
        guaranteed_roi(1.5, 0.9, _correction(se_rev=0.8, se_spend=0.03), start=1.5)
    assert "however high (the probability tends to 0.89" in str(err.value) and "held on the forecast" not in str(err.value)


def test_min_roi_confidence_in_a_run(campaign_copy, tmp_path):
    from promo_opt import pipeline

    d, raw = campaign_copy
    raw["model"] = {"learner": "pooled_smooth", "folds": 3}
    raw["constraints"]["min_roi"] = 0.5
    raw["constraints"]["min_roi_confidence"] = 0.9
    path = write_config(d, raw)
    # 8,000 past users: the held-out revenue ratio has a standard error of ~0.8, no floor is safe: refused
    out = tmp_path / "out"
    r = invoke("run", path, "--out", out)
    assert r.exit_code == 2 and "too uncertain" in r.output and "min_roi_confidence 0.9" in r.output
    assert not out.exists() or not any(out.iterdir())
    # the same model with a precise measurement (standard errors / 10): the floor is raised until it is safe
    cfg = load_config(path)
    model = pipeline.train(cfg)
    corr = dict(model.metrics["forecast_correction"])
    corr["ratio_cov"] = (np.asarray(corr["ratio_cov"]) / 100).tolist()
    o = pipeline.allocate(cfg, pipeline.score_candidates(cfg, model), correction=corr)
    g = o.summary["roi_guarantee"]
    plain_floor = pipeline.allocation_floor(0.5, corr)  # the floor held on the forecast, where the search starts
    assert g["achieved_probability"] >= 0.9 > g["plain_floor_probability"] or g["allocated_min_roi"] == plain_floor
    assert g["allocated_min_roi"] >= plain_floor and o.summary["expected"]["roi"] >= g["allocated_min_roi"] - 1e-6
    assert o.summary["allocated_min_roi"] == g["allocated_min_roi"]
    # the budget curve holds guarantee mode at every budget: one floor on the expected ROI (the probability
    # depends on a policy only through it), the allocation's where it binds. A planner's floor whose plain
    # floor (on the forecast) sits where the curve's far end would break it:
    scores = pipeline.score_candidates(cfg, model)
    tail = pipeline.plan(cfg, scores, [1e9], correction=corr)["roi"].iloc[0]
    m = round(1.1 * tail / pipeline.allocation_floor(1.0, corr), 4)
    held = pipeline.held_floor(cfg, m, corr)
    assert held > pipeline.allocation_floor(m, corr) > tail
    budgets = [0.25 * cfg.constraints.budget, cfg.constraints.budget, 4 * cfg.constraints.budget, 1e9]
    one = pipeline.allocate(cfg, scores, budget=1e9, min_roi=m, correction=corr)
    assert one.summary["roi_guarantee"]["allocated_min_roi"] == pytest.approx(held, rel=1e-4)
    curve = pipeline.plan(cfg, scores, budgets + [one.summary["expected"]["spend"] * (1 + 1e-9)], min_roi=m,
                          correction=corr)
    c = ForecastCorrection.from_dict(corr)
    for _, p in curve[curve["spend"] > 0].iterrows():
        assert p["roi"] >= held - 1e-6
        assert floor_probability(p["incremental_revenue"], p["spend"], m, c) >= 0.9 - 1e-6
    assert curve["spend"].iloc[-1] == pytest.approx(one.summary["expected"]["spend"], rel=1e-3)
    del raw["constraints"]["min_roi_confidence"]
    plain = pipeline.allocate(load_config(write_config(d, raw)), pipeline.score_candidates(cfg, model),
                              correction=corr)
    assert "roi_guarantee" not in plain.summary
    assert o.summary["expected"]["roi"] >= plain.summary["expected"]["roi"] - 1e-9
    # a floor whose plain floor some user reaches but whose guarantee no one does: the allocation and the
    # budget curve refuse it alike, naming the floor the guarantee needs (not "lower constraints.min_roi")
    from promo_opt.allocation import best_attainable_roi

    best = best_attainable_roi(pipeline.plan_problem(cfg, scores, correction=corr)[0])
    near = 0.999 * best / pipeline.allocation_floor(1.0, corr)
    assert pipeline.allocation_floor(near, corr) < best < pipeline.held_floor(cfg, near, corr)
    needed = f"needs an expected ROI of at least {pipeline.held_floor(cfg, near, corr):.4g}"
    for refused in (lambda: pipeline.allocate(cfg, scores, min_roi=near, correction=corr),
                    lambda: pipeline.plan(cfg, scores, [cfg.constraints.budget], min_roi=near, correction=corr)):
        with pytest.raises(InfeasibleError) as err:
            refused()
        assert needed in str(err.value) and f"reaches is {best:.4g}" in str(err.value)
        assert "lower constraints.min_roi" not in str(err.value)


def test_min_roi_confidence_needs_a_floor(campaign_copy):
    d, raw = campaign_copy
    raw["constraints"] = {"budget": 1000, "min_roi_confidence": 0.9}
    with pytest.raises(ConfigError, match="min_roi_confidence needs constraints.min_roi"):
        load_config(write_config(d, raw))


# -- the race and the threads ------------------------------------------------------------------
def test_the_race_stops_learners_that_cannot_win_and_says_why():
    rng = np.random.default_rng(0)
    n = 6000
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    arm = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.08 * arm * (X["x"] > 0)).astype(int)
    terms = np.array([[0.0, 0, 0], [0.1, 0, 0]])
    fitted, rep = select_learner(X, arm, y, 2, terms, folds=5, seed=0)
    out = rep.race["eliminated"]
    assert out, "nothing was stopped early"
    assert all(v["after_folds"] < 5 and v["reason"] for v in out.values())
    assert set(out).isdisjoint(fitted) and rep.chosen in fitted
    fitted_all, rep_all = select_learner(X, arm, y, 2, terms, folds=5, seed=0, race=False)
    assert not rep_all.race["eliminated"] and len(fitted_all) > len(fitted)


def test_threads_follow_the_free_cores(monkeypatch):
    assert 1 <= free_cores(0.05) <= machine_cores()
    monkeypatch.setenv("PROMO_OPT_THREADS", "1")
    assert free_cores() == 1
    with thread_budget() as n:
        assert n == 1 and lgbm_threads() == 1
    with thread_budget(2):
        assert lgbm_threads() == 2
    assert lgbm_threads() == machine_cores()  # outside a budget


# -- the world generator -----------------------------------------------------------------------
def test_generated_worlds_are_valid_reproducible_and_varied():
    kinds, arms, drifted = set(), set(), 0
    for s in range(40):
        w = random_world(s)
        kinds.add(w.spec.outcome_type)
        arms.add(len(w.arm_names))
        drifted += bool(w.spec.drift.shift)
        smp = w.sample(500, seed=1)
        assert np.isfinite(smp.true_p).all() and (smp.true_p >= 0).all()
    assert world_spec(7) == world_spec(7) and world_spec(7) != world_spec(8)
    assert kinds == {"binary", "count", "amount"} and len(arms) >= 3 and 5 <= drifted <= 30


# -- per-arm scoring of the pooled model -------------------------------------------------------
@pytest.mark.parametrize("kind", ["binary", "count", "amount"])
def test_compiled_pooled_scoring_equals_lightgbm(kind):
    from promo_opt.learners.lgbm import PooledLGBM, predict_outcome

    rng = np.random.default_rng(1)
    n = 4000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.poisson(2, n).astype(float),
                      "z": np.where(rng.random(n) < 0.2, 0.0, rng.normal(size=n)),
                      "c": pd.Categorical(rng.choice(["x", "y", "z", "w"], n), categories=["x", "y", "z", "w"])})
    X.loc[rng.random(n) < 0.1, "a"] = np.nan
    X.loc[rng.random(n) < 0.05, "c"] = np.nan
    arm = rng.integers(0, 3, n)
    lin = -1 + 0.5 * np.nan_to_num(X["a"]) + 0.4 * arm * (X["c"] == "x") + 0.2 * X["b"]
    y = {"binary": (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int),
         "count": rng.poisson(np.exp(lin)).astype(float),
         "amount": (rng.random(n) < 1 / (1 + np.exp(-lin))) * rng.lognormal(3, 0.5, n)}[kind]
    terms = np.array([[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0.0]])
    for params in (dict(num_leaves=4, min_child_samples=50), dict(num_leaves=31, min_child_samples=20)):
        m = PooledLGBM(3, terms, seed=0, outcome_type=kind, **params).fit(X, arm, y)
        fast = m.predict_proba(X)
        assert m.forest_ is not None and 0 < m.forest_.arm_tree_share <= 1
        slow = np.column_stack([predict_outcome(m.model_, m._design(X, np.full(n, k))) for k in range(3)])
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_count_calibration_keeps_heterogeneity_that_scales_with_the_level():
    """Counts: the uplift grows with the level (multiplicative effects). The BLP on the control and arm
    rows keeps a right model's slope at 1 and finds the mean uplift; a model whose uplift is noise gets
    its slope shrunk toward 0."""
    from promo_opt.learners.honest import UpliftCalibration

    rng = np.random.default_rng(3)
    n = 60000
    mu0 = np.exp(rng.normal(0, 0.8, n))
    mu1 = mu0 * 1.3
    arm = rng.integers(0, 2, n)
    y = rng.poisson(np.where(arm == 1, mu1, mu0)).astype(float)
    right = np.column_stack([mu0, mu1])
    cal = UpliftCalibration.fit(right, arm, y, outcome_type="count")
    assert abs(cal.beta[1] - 1) < 0.15 and cal.gamma[1] == pytest.approx((mu1 - mu0).mean(), rel=0.15)
    noise = np.column_stack([mu0, mu0 + rng.uniform(0, 0.6, n)])
    assert UpliftCalibration.fit(noise, arm, y, outcome_type="count").beta[1] < 0.3


def test_the_calibration_redraws_carry_the_sampling_error_of_the_mean_uplift():
    """The twin cannot see an error of the calibrated mean uplift (it is fitted on the same rows), so
    the forecast's interval gets it from refits on bootstrap draws: their spread of the mean uplift
    must match the textbook standard error of a difference of two means."""
    import pickle

    from promo_opt.learners.honest import CrossFitted

    rng = np.random.default_rng(3)
    n = 8000
    arm = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1).astype(float)  # no true uplift
    raw = np.column_stack([np.full(n, 0.1), 0.12 + 0.02 * rng.standard_normal(n)])
    cf = CrossFitted("pooled", 2).start(n)
    cf.raw_[:] = raw
    cf.finish(arm, y)
    draws = [cf.recalibrated_oof(arm, y, rng.integers(0, n, n)) for _ in range(300)]
    spread = np.std([(d[:, 1] - d[:, 0]).mean() for d in draws])
    se = np.sqrt(0.1 * 0.9 * (1 / (arm == 1).sum() + 1 / (arm == 0).sum()))
    assert spread == pytest.approx(se, rel=0.2)
    assert not hasattr(pickle.loads(pickle.dumps(cf)), "raw_")  # the raw predictions are not saved


@pytest.mark.parametrize("max_rows", [40_000, 10_000])
def test_calibration_cov_matches_the_standard_error_also_when_subsampled(max_rows):
    """The relative variance of a treat-everyone policy's conversions under redrawn calibrations is
    se(mean uplift)^2 / uplift^2; the m-out-of-n draws (m = max_rows) scaled by m/n give it too."""
    from types import SimpleNamespace

    from promo_opt.evaluation.heldout import calibration_cov
    from promo_opt.learners.honest import CrossFitted

    rng = np.random.default_rng(5)
    n = 40_000
    arm = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.02 * arm).astype(float)
    raw = np.column_stack([np.full(n, 0.1), 0.12 + 0.01 * rng.standard_normal(n)])
    cf = CrossFitted("pooled", 2).start(n)
    cf.raw_[:] = raw
    cf.finish(arm, y)
    config = SimpleNamespace(ordered_arms=ARMS[:2], data=SimpleNamespace(outcome_type="binary"))
    rel = calibration_cov(config, cf, arm, y, np.full(n, 50.0), np.ones(n, dtype=np.int64), draws=300,
                          max_rows=max_rows)
    se = np.sqrt(0.1 * 0.9 / (arm == 0).sum() + 0.12 * 0.88 / (arm == 1).sum())
    assert rel[0, 0] == pytest.approx((se / 0.02) ** 2, rel=0.3)
    assert rel[0, 1] == pytest.approx(rel[0, 0], rel=1e-6)  # revenue = conversions x a constant value


def test_budget_use_names_what_stops_the_spending():
    from promo_opt.pipeline import budget_use

    full = budget_use({"spend": 995.0, "incremental_revenue": 3000.0}, 1000.0, 1.5, "conversions")
    assert full == {"share": 0.995, "limit": "budget"}
    floor = budget_use({"spend": 100.0, "incremental_revenue": 150.0}, 1000.0, 1.5, "conversions")
    assert floor["limit"] == "roi_floor" and "10.0% of the budget" in floor["warning"]
    assert "ROI floor 1.5 binds" in floor["warning"]
    nothing = budget_use({"spend": 300.0, "incremental_revenue": 900.0}, 1000.0, 1.5, "net_revenue")
    assert nothing["limit"] == "objective" and "'net_revenue'" in nothing["warning"]
    assert budget_use({"spend": 700.0, "incremental_revenue": 900.0}, 1000.0, None, "conversions") == \
        {"share": 0.7, "limit": "objective"}  # above half the budget: recorded, no warning
    assert budget_use({"spend": 1.0, "incremental_revenue": 2.0}, None, None, "conversions") is None
    cap = budget_use({"spend": 300.0, "incremental_revenue": 900.0}, 1000.0, None, "conversions",
                     side=["max_users 300 of arm 'coupon'"])
    assert cap["limit"] == "side_constraints" and cap["binding"] == ["max_users 300 of arm 'coupon'"]
    assert cap["warning"] == ("the policy expects to spend 30.0% of the budget: max_users 300 of arm 'coupon' binds "
                              "before the budget is spent (raise it to use the budget)")
    on_floor = budget_use({"spend": 100.0, "incremental_revenue": 150.0}, 1000.0, 1.5, "conversions", side=["x"])
    assert on_floor["limit"] == "roi_floor" and "binding" not in on_floor  # the floor is named first


def test_a_floor_that_leaves_the_budget_unspent_warns_first_on_the_cli(campaign_copy, tmp_path):
    """A floor near the best attainable ROI: the policy spends a sliver of the budget, and says so."""
    from promo_opt.pipeline import allocate, economics_from_scores, score_candidates, train

    d, raw = campaign_copy
    cfg = load_config(write_config(d, raw))
    scores = score_candidates(cfg, train(cfg))
    _, econ = economics_from_scores(cfg, scores)
    roi = econ.incremental_revenue[:, 1:] / np.where(econ.spend[:, 1:] > 0, econ.spend[:, 1:], np.nan)
    high = float(np.nanquantile(roi, 0.995))  # only the top half percent of user x arm clear it
    raw.setdefault("constraints", {})["min_roi"] = high
    path = write_config(d, raw)
    use = allocate(load_config(path), scores).summary["budget_use"]
    assert use["limit"] == "roi_floor" and use["share"] < 0.5 and "binds" in use["warning"]
    res = invoke("run", path, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("WARNING: budget: the policy expects to spend"), lines[:3]
    assert "Warning: budget." in (tmp_path / "out" / "report.html").read_text()


# -- a forecast that does not show a gain says so --------------------------------------------
def test_the_net_revenue_interval_is_that_of_the_two_correlated_ratios():
    """Against sampling: draw the raw ratios of revenue and spend from their joint normal, take the
    5% / 95% quantiles of E_rev r_rev - E_spend r_spend."""
    cov = np.array([[0.01, 0.0, 0.0], [0.0, 0.04, 0.018], [0.0, 0.018, 0.0225]])
    c = ForecastCorrection(ratio={"incremental_conversions": 1.0, "incremental_revenue": 0.9, "spend": 1.05},
                           raw_ratio={"incremental_conversions": 1.0, "incremental_revenue": 0.8, "spend": 1.1},
                           ratio_se={k: 0.1 for k in ("incremental_conversions", "incremental_revenue", "spend")},
                           ratio_cov=cov.tolist())
    totals = {"incremental_conversions": 100.0, "incremental_revenue": 3000.0, "spend": 1000.0}
    lo, hi = c.net_interval(totals)
    r = np.random.default_rng(0).multivariate_normal([1.0, 0.8, 1.1], cov, 400_000)
    net = 3000.0 * r[:, 1] - 1000.0 * r[:, 2]
    assert [lo, hi] == pytest.approx(np.quantile(net, [0.05, 0.95]).tolist(), rel=0.01)
    assert lo < 3000 * 0.9 - 1000 * 1.05 < hi  # the point forecast inside
    # uncorrelated ratios would give a wider interval: the correlation is used
    wide = ForecastCorrection(**{**c.__dict__, "ratio_cov": np.diag(np.diag(cov)).tolist()}).net_interval(totals)
    assert wide[1] - wide[0] > hi - lo


def test_the_forecast_warns_where_its_interval_reaches_zero():
    from promo_opt.pipeline import evidence_warning

    clear = {"interval90": {"incremental_conversions": [120.0, 300.0]}, "net_revenue_interval90": [50.0, 900.0]}
    assert evidence_warning(clear, "conversions") is None
    assert evidence_warning(clear, "net_revenue") is None
    weak = {"interval90": {"incremental_conversions": [-17.0, 240.0]}, "net_revenue_interval90": [50.0, 900.0]}
    w = evidence_warning(weak, "conversions")
    assert "-17.0 to 240.0" in w and "incremental conversions" in w
    losing = {"interval90": {"incremental_conversions": [20.0, 240.0]}, "net_revenue_interval90": [-400.0, 900.0]}
    assert evidence_warning(losing, "conversions") is None  # the planner asked for conversions
    assert "-400 to 900" in evidence_warning(losing, "net_revenue")
    idle = {"interval90": {"incremental_conversions": [0.0, 0.0]}, "net_revenue_interval90": [0.0, 0.0]}
    assert evidence_warning(idle, "net_revenue") is None  # treats no one: budget_use speaks


def test_a_campaign_without_effect_warns_before_the_money_is_spent(campaign_copy, tmp_path):
    """The past campaign's arms shuffled: no promotion changes anything in it, so whatever the model
    picks, the interval of its gain must reach zero, and the CLI and the report say so."""
    d, raw = campaign_copy
    df = pd.read_csv(d / "train.csv")
    df[raw["data"]["treatment"]] = np.random.default_rng(1).permutation(df[raw["data"]["treatment"]].to_numpy())
    df.to_csv(d / "train.csv", index=False)
    res = invoke("run", write_config(d, raw), "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    if s["expected"]["spend"] == 0:
        pytest.fail("the shuffled campaign treated no one: the test needs a plan to warn about")
    assert s["forecast"]["interval90"]["incremental_conversions"][0] <= 0
    assert "reaches zero" in s["forecast"]["warning"]
    assert any(line.startswith("WARNING: forecast: the 90% interval") for line in res.output.splitlines())
    assert "Warning: forecast." in (tmp_path / "out" / "report.html").read_text()


def test_a_campaign_with_a_clear_effect_does_not_warn(tmp_path):
    """Travel at 20k past users: the promotions' effect is plain (at 8k, the small campaign's, the
    interval of its plan still reaches zero)."""
    from promo_opt.pipeline import allocate, score_candidates, train
    from promo_opt.simulation import load_world

    path = load_world("travel").write_campaign(tmp_path, seed=3, n_train=20_000, n_candidates=3000)
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"learner": "pooled_smooth", "folds": 3}
    cfg = load_config(write_config(tmp_path, raw))
    model = train(cfg)
    f = allocate(cfg, score_candidates(cfg, model), correction=model.metrics["forecast_correction"]).summary["forecast"]
    assert f["interval90"]["incremental_conversions"][0] > 0
    assert "warning" not in f


def test_every_door_lists_the_summarys_warnings_most_pressing_first():
    from promo_opt.report.warnings import summary_warnings

    s = {"drift": {"shifted": True, "message": "d"}, "budget_use": {"warning": "b"}, "forecast": {"warning": "f"},
         "evidence": {"warning": "e"}}
    assert summary_warnings(s) == [("drift", "d"), ("budget", "b"), ("forecast", "f"), ("evidence", "e")]
    quiet = {"drift": {"shifted": False, "message": "not shifted"}, "budget_use": {"share": 1.0}, "forecast": {},
             "evidence": {"warning": None}}
    assert summary_warnings(quiet) == []


def _logged_campaign(n, seed, effects=(0.03, 0.0)):
    """Three arms, binary outcome; promotions logged more often for users of high x (whose base rate is higher
    too), so a difference in means overstates every effect. Returns (config, p (n, 3), arm, y, propensity)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    base = 1 / (1 + np.exp(-(-2.0 + 0.8 * x)))
    p = np.column_stack([base, base + effects[0] * (1 + 0.5 * np.tanh(x)), base + effects[1]])
    score = np.column_stack([np.zeros(n), 0.7 * x, 0.7 * x])
    e = np.exp(score) / np.exp(score).sum(axis=1, keepdims=True)
    arm = (rng.random(n)[:, None] > np.cumsum(e, axis=1)).sum(axis=1)
    y = (rng.random(n) < p[np.arange(n), arm]).astype(np.int64)
    config = SimpleNamespace(ordered_arms=ARMS[:3], arm_names=["control", "promo1", "promo2"],
                             data=SimpleNamespace(outcome="converted", outcome_type="binary"))
    return config, p, arm, y, e[np.arange(n), arm]


@pytest.mark.parametrize("model", ["noisy", "blind"])
def test_each_promotions_average_effect_covers_the_truth_on_logged_rows(model):
    """The past campaign's average effect per promotion (AIPW with the logged propensities): its 90% interval
    covers the rows' true average effect in about 90% of campaigns, where a difference in means, fooled by who got
    the promotions, is far off. With an outcome model that is right up to noise ("noisy") and with one that knows
    nothing of the users ("blind": each arm's mean, a level off), where only the propensities remove the bias
    (ignoring them, the blind model's intervals cover in none of the campaigns)."""
    from promo_opt.evaluation.evidence import average_effects

    covers, naive_err, est_err = [], [], []
    for seed in range(200):
        config, p, arm, y, prop = _logged_campaign(4000, seed)
        if model == "noisy":
            oof = np.clip(p + np.random.default_rng(1000 + seed).normal(scale=0.05, size=p.shape), 0.001, 0.999)
        else:
            oof = np.repeat(p.mean(axis=0, keepdims=True) + 0.01, len(p), axis=0)
        ev = average_effects(config, oof, arm, y, prop)
        for k, name in ((1, "promo1"), (2, "promo2")):
            truth = float((p[:, k] - p[:, 0]).mean())
            lo, hi = ev["arms"][name]["interval90"]
            covers.append(lo <= truth <= hi)
            est_err.append(ev["arms"][name]["effect"] - truth)
            naive_err.append(y[arm == k].mean() - y[arm == 0].mean() - truth)
    assert 0.85 <= np.mean(covers) <= 0.95
    assert abs(np.mean(est_err)) < 0.002 and np.mean(naive_err) > 0.03


def test_no_promotion_shown_to_work_on_average_warns_and_one_that_is_does_not():
    from promo_opt.evaluation.evidence import average_effects, weak_evidence_warning

    config, p, arm, y, prop = _logged_campaign(20000, 1, effects=(0.0, 0.0))
    ev = average_effects(config, p, arm, y, prop)
    assert ev["rows"] == 20000 and set(ev["arms"]) == {"promo1", "promo2"}
    assert "does not show that any promotion changes 'converted'" in ev["warning"]
    lo, hi = ev["arms"]["promo1"]["interval90"]
    assert f"promo1 {lo:+.3g} to {hi:+.3g}" in ev["warning"]
    config, p, arm, y, prop = _logged_campaign(20000, 1, effects=(0.06, 0.0))
    ev = average_effects(config, p, arm, y, prop)
    assert ev["arms"]["promo1"]["z"] > 3 and ev["warning"] is None
    assert weak_evidence_warning({**ev, "arms": {"promo2": ev["arms"]["promo2"]}}) is not None  # promo2 has none
