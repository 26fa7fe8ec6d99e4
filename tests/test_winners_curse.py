"""The winner's-curse correction: held-out policy totals, the shrunk ratios, and the forecast."""

import json

import numpy as np
import pytest

from promo_opt.config import ArmConfig, CampaignConfig
from promo_opt.economics import compute_economics
from promo_opt.errors import InfeasibleError
from promo_opt.evaluation.heldout import TOTALS, ForecastCorrection, heldout_policy, shrink_ratio


def test_shrink_ratio_keeps_gaps_within_noise_at_one_and_large_gaps_nearly_whole():
    assert shrink_ratio(105.0, 100.0, 10.0) == (1.05, 1.0)  # gap 0.05 < se 0.10: no correction
    raw, r = shrink_ratio(70.0, 100.0, 3.0)  # gap 0.30, se 0.03: 1 - 0.01 of it shrunk away
    assert raw == pytest.approx(0.7) and r == pytest.approx(1 - 0.3 * (1 - 0.01))
    assert shrink_ratio(5.0, 0.0, 1.0) == (1.0, 1.0)


def test_apply_keeps_roi_and_net_revenue_consistent_with_the_corrected_totals():
    c = ForecastCorrection(ratio={"incremental_conversions": 0.8, "incremental_revenue": 0.9, "spend": 1.1},
                           raw_ratio={}, ratio_se={})
    f = c.apply({"incremental_conversions": 100.0, "incremental_revenue": 1000.0, "spend": 500.0})
    assert f["incremental_conversions"] == pytest.approx(80.0) and f["spend"] == pytest.approx(550.0)
    assert f["roi"] == pytest.approx(900.0 / 550.0) and f["net_revenue"] == pytest.approx(350.0)
    assert ForecastCorrection.from_dict(c.as_dict()).ratio == c.ratio


def _world(n, seed):
    """Randomized 3-arm data with known probabilities and a noisy model of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p0 = 1 / (1 + np.exp(-(-3.0 + 0.5 * x)))
    p = np.column_stack([p0, np.clip(p0 + 0.01 + 0.01 * (x > 0), 0, 1), np.clip(p0 + 0.02 * (x > 1), 0, 1)])
    arm = rng.integers(0, 3, size=n)
    y = (rng.random(n) < p[np.arange(n), arm]).astype(np.int64)
    noisy = np.clip(p + rng.normal(scale=0.02, size=p.shape), 1e-4, 1 - 1e-4)  # estimation noise
    return p, noisy, arm, y


def _config(budget):
    arms = [ArmConfig(name="control", control=True), ArmConfig(name="a", cost_per_conversion=2.0),
            ArmConfig(name="b", cost_per_conversion=4.0)]
    return CampaignConfig(name="t", arms=arms, data={"train": "x.csv", "candidates": "y.csv"},
                          constraints={"budget": budget})


def test_heldout_policy_exposes_the_winners_curse_and_the_dr_estimate_finds_the_truth():
    """Noisy estimates picked by the allocator overstate the policy; the held-out (DR) estimate of
    the same policy agrees with its true value (known probabilities), within its standard errors."""
    n = 200_000
    p, noisy, arm, y = _world(n, 0)
    cfg = _config(budget=300.0)  # a few thousand of the 200k users
    h = heldout_policy(cfg, noisy, arm, y, None, None, np.ones(n), n_candidates=n)
    true = compute_economics(p, np.ones(n), cfg.ordered_arms).totals(h.arm)
    realized = h.realized.totals()
    assert h.expected["incremental_conversions"] > 1.5 * true["incremental_conversions"]  # the curse
    for k in ("incremental_conversions", "spend"):
        assert abs(realized[k] - true[k]) < 3 * h.se(k), k
    c = ForecastCorrection.from_heldout(h)
    assert c.ratio["incremental_conversions"] < 0.8
    corrected = c.apply(h.expected)["incremental_conversions"]
    assert abs(corrected - true["incremental_conversions"]) < abs(h.expected["incremental_conversions"]
                                                                  - true["incremental_conversions"]) / 2


def test_run_reports_the_corrected_forecast_and_its_truth_check(run_out):
    summary = json.loads((run_out / "summary.json").read_text())
    metrics = json.loads((run_out / "model" / "metrics.json").read_text())
    corr = metrics["forecast_correction"]
    assert corr["applied"] and corr["rows"] > 0
    f, e = summary["forecast"], summary["expected"]
    for k in ("incremental_conversions", "spend", "incremental_revenue"):
        assert f[k] == pytest.approx(e[k] * corr["ratio"][k])
    assert set(summary["truth"]["forecast_vs_true"]) == {"incremental_conversions", "spend", "incremental_revenue"}
    page = (run_out / "report.html").read_text()
    assert "curse corrected)" in page and "the policy on held-out folds" in page


def test_allocate_cli_adds_the_forecast_only_with_the_model(run_out, small_campaign, tmp_path):
    from conftest import invoke

    for extra, has in (([], False), (["--model", run_out / "model"], True)):
        out = tmp_path / f"alloc{has}"
        r = invoke("allocate", small_campaign, "--scores", run_out / "scores.parquet", "--out", out, *extra)
        assert r.exit_code == 0, r.output
        assert ("forecast" in json.loads((out / "summary.json").read_text())) is has
        assert ("forecast " in r.output) is has


def test_eb_shrink_drops_deviations_within_noise_and_keeps_large_ones():
    from promo_opt.learners.honest import eb_shrink

    assert eb_shrink(1.2, 1.0, 0.3) == 1.0
    assert eb_shrink(3.0, 1.0, 0.2) == pytest.approx(1.0 + 2.0 * (1 - 0.01))
    assert eb_shrink(0.5, 1.0, float("inf")) == 1.0


def _calibration_data(n, noise, seed):
    """Two arms, true uplift 0.02 +- 0.02 by x; raw model = truth + noise on the treated column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p0 = np.full(n, 0.1)
    p1 = p0 + 0.02 + 0.02 * np.tanh(x)
    arm = rng.integers(0, 2, size=n)
    y = (rng.random(n) < np.where(arm == 1, p1, p0)).astype(np.int64)
    raw = np.column_stack([p0, np.clip(p1 + rng.normal(scale=noise, size=n), 1e-4, 1)])
    return raw, arm, y


def test_uplift_calibration_shrinks_noisy_heterogeneity_and_leaves_a_right_model_alone():
    from promo_opt.learners.honest import UpliftCalibration

    raw, arm, y = _calibration_data(400_000, noise=0.05, seed=1)  # noise sd 2.5x the signal's
    cal = UpliftCalibration.fit(raw, arm, y)
    signal = 0.02 ** 2 * np.var(np.tanh(np.random.default_rng(0).normal(size=10**6)))
    total = signal + 0.05 ** 2
    assert cal.beta[1] == pytest.approx(signal / total, abs=0.05)  # the regression slope of truth on estimate
    # a right model: the slope's deviations from 1 are noise (unshrunk mean |beta - 1| is ~0.17 here)
    betas = np.array([UpliftCalibration.fit(*_calibration_data(20_000, noise=0.0, seed=s)).beta[1] for s in range(10)])
    assert (betas == 1.0).mean() >= 0.6 and np.abs(betas - 1).mean() < 0.08


def test_uplift_calibration_is_not_fooled_by_a_level_error_that_moves_with_the_uplift():
    """A smooth pooled model that puts the control level too high where it puts the uplift high (and too
    low where low): the regression of y - p_control on the estimate over the arm's rows alone takes the
    level error for missing heterogeneity and keeps a flattened model's slope near 1. The BLP on the
    control and arm rows sees through it and finds the true slope, 2 (the model halves every user's
    deviation from the mean uplift)."""
    from promo_opt.learners.honest import UpliftCalibration

    rng = np.random.default_rng(5)
    n = 400_000
    s = rng.normal(size=n)
    p0 = 0.2 + 0.05 * rng.uniform(-1, 1, n)  # the level varies independently of the uplift
    tau = 0.05 + 0.04 * np.tanh(s)
    arm = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(arm == 1, p0 + tau, p0)).astype(np.int64)
    tau_hat = 0.05 + 0.02 * np.tanh(s)  # half the true spread (the BLP slope's standard error is ~0.08 here)
    p0_hat = p0 + 0.02 * np.tanh(s)  # the level error the half-spread model makes up for
    raw = np.column_stack([p0_hat, p0_hat + tau_hat])
    cal = UpliftCalibration.fit(raw, arm, y)
    assert cal.beta[1] == pytest.approx(2.0, abs=0.25)
    on = arm == 1  # what the arm-only regression would have said: the two errors cancel, slope ~1
    x = tau_hat[on] - tau_hat[on].mean()
    naive = float((x * (y[on] - p0_hat[on])).sum() / (x * x).sum())
    assert abs(naive - 1.0) < 0.3
    calibrated = cal.apply(raw)
    assert np.corrcoef(calibrated[:, 1] - calibrated[:, 0], tau)[0, 1] > 0.99
    assert np.polyfit(calibrated[:, 1] - calibrated[:, 0], tau, 1)[0] == pytest.approx(1.0, abs=0.15)


def test_the_floor_is_held_on_the_forecast():
    """Revenue ratio 1.25, spend ratio 1: the model's returns are 80% of the truth's, so the allocator's
    floor on its expected ROI is min_roi / 1.25; the forecast of the policy then meets min_roi."""
    from promo_opt.pipeline import allocation_floor

    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    c = ForecastCorrection(ratio={**one, "incremental_revenue": 1.25}, raw_ratio=dict(one), ratio_se=dict(one))
    assert c.allocation_floor(1.5) == pytest.approx(1.2)
    assert ForecastCorrection(ratio={**one, "incremental_revenue": -0.3}, raw_ratio=dict(one),
                              ratio_se=dict(one)).allocation_floor(1.5) == 1.5  # no positive return measured
    d = {"applied": True, **c.as_dict()}
    assert allocation_floor(1.5, d) == pytest.approx(1.2)
    assert allocation_floor(None, d) is None and allocation_floor(1.5, None) == 1.5
    assert allocation_floor(1.5, {**d, "applied": False}) == 1.5


def _twin(revenue_ratio: float) -> ForecastCorrection:
    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    return ForecastCorrection(ratio={**one, "incremental_revenue": revenue_ratio}, raw_ratio=dict(one), ratio_se=dict(one))


def test_the_floor_is_searched_on_the_twin_it_leads_to():
    """generated_3's pattern: the twin at the planner's floor treats few users and returns 7x what the model
    promised, but a twin at a floor of 0.15 or less treats many more, who return what was promised. The
    ratio alone would drop the floor 7-fold; the search measures the twin there, finds the floor unsafe and
    keeps the lowest floor at which the twin meets min_roi: 0.15 (within the bisection's last step)."""
    from promo_opt.pipeline import FLOOR_STEPS, held_out_floor

    def measure_at(f):
        return _twin(7.0 if f >= 0.15 else 1.0)

    corr, tried = held_out_floor(0.1756, _twin(7.0), 0.1756, measure_at)
    floor = corr.allocation_floor(0.1756)
    assert 0.15 <= floor <= 0.15 * 1.07 and corr.ratio["incremental_revenue"] == 7.0
    assert tried[:2] == [0.1756, pytest.approx(0.1756 / 7)] and len(tried) == FLOOR_STEPS + 1
    assert ForecastCorrection.from_dict(corr.as_dict()).allocation_floor(1.0) == pytest.approx(floor / 0.1756)

    # a twin whose ratio does not depend on the floor (travel's): one step, the ratio's floor
    corr, tried = held_out_floor(1.7, _twin(1.4), 1.7, lambda f: _twin(1.4))
    assert corr.allocation_floor(1.7) == pytest.approx(1.7 / 1.4) and len(tried) == 2
    # a model that overstates returns: the floor rises to where the twin meets min_roi
    corr, _ = held_out_floor(1.0, _twin(0.8), 1.0, lambda f: _twin(0.8))
    assert corr.allocation_floor(1.0) == pytest.approx(1.25)
    # the twin cannot meet a lower floor: the search stops, the planner's floor (safe) is kept

    def infeasible(f):
        raise InfeasibleError("no policy meets it")

    corr, tried = held_out_floor(1.7, _twin(1.4), 1.7, infeasible)
    assert corr.allocation_floor(1.7) == pytest.approx(1.7) and tried == [1.7]


def test_allocate_plan_and_the_summary_hold_the_floor_on_the_forecast(run_out, small_campaign):
    """On a trained model: the allocation's forecast ROI sits on min_roi where the floor binds; the
    summary records the floor the allocator held, and the budget curve at the campaign's budget is the
    same policy (plan takes the same correction)."""
    from promo_opt import pipeline
    from promo_opt.config import load_config
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign)
    model = TrainedModel.load(run_out / "model", cfg)
    scores = pipeline.read_scores(run_out / "scores.parquet")
    corr = dict(model.metrics["forecast_correction"])
    corr["applied"] = True
    corr["ratio"] = {**corr["ratio"], "incremental_revenue": 1.3, "spend": 1.0}
    corr["by_budget"] = []  # these ratios at every budget (not the twins measured at other budgets)
    plain = pipeline.allocate(cfg, scores, min_roi=None, budget=1e12)
    floor = 1.1 * plain.summary["expected"]["roi"] * 1.3  # binds on the forecast (and harder on the model's numbers)
    o = pipeline.allocate(cfg, scores, min_roi=floor, budget=1e12, correction=corr)
    assert o.summary["min_roi"] == floor and o.summary["allocated_min_roi"] == pytest.approx(floor / 1.3)
    assert o.summary["forecast"]["roi"] == pytest.approx(floor, rel=1e-3)
    assert o.summary["expected"]["roi"] == pytest.approx(floor / 1.3, rel=1e-3)
    strict = pipeline.allocate(cfg, scores, min_roi=floor, budget=1e12)  # without the correction: the old floor
    assert strict.summary["allocated_min_roi"] == floor and strict.summary["expected"]["spend"] < o.summary["expected"]["spend"]
    curve = pipeline.plan(cfg, scores, [o.summary["expected"]["spend"] * 1.0001], min_roi=floor, correction=corr)
    assert curve["spend"].iloc[0] == pytest.approx(o.summary["expected"]["spend"], rel=1e-3)


def test_the_budget_is_held_on_the_forecast(run_out, small_campaign, capsys):
    """Spend ratio 1.25: the twin's users cost 1.25x what the model says, so the allocator holds the model's
    expected spend at budget / 1.25 and the forecast spend meets the budget instead of overspending it by a
    quarter. The list is the uncorrected list at budget / 1.25; the curve's point at the budget is that policy,
    under the planner's budget (the strategies it is compared with fill the same expected spend:
    ``test_targeting``). A spend ratio of 1 changes nothing."""
    from promo_opt import pipeline
    from promo_opt.config import load_config
    from promo_opt.evaluation.policies import compare_policies
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign)
    model = TrainedModel.load(run_out / "model", cfg)
    scores = pipeline.read_scores(run_out / "scores.parquet")
    b = cfg.constraints.budget
    corr = {**model.metrics["forecast_correction"], "applied": True, "by_budget": [], "floor_scale": None}
    corr["ratio"] = {**corr["ratio"], "incremental_revenue": 1.0, "spend": 1.25}
    o = pipeline.allocate(cfg, scores, correction=corr)
    plain = pipeline.allocate(cfg, scores, budget=b / 1.25)
    assert plain.summary["budget_use"]["limit"] == "budget"  # the budget binds, so where it is held matters
    assert o.summary["budget"] == b and o.summary["allocated_budget"] == pytest.approx(b / 1.25)
    assert (o.arm == plain.arm).all() and o.summary["expected"] == pytest.approx(plain.summary["expected"])
    assert b * 0.99 <= o.summary["forecast"]["spend"] <= b * (1 + 1e-9)
    assert o.summary["budget_use"]["limit"] == "budget" and o.summary["budget_use"]["share"] >= 0.99
    curve = pipeline.plan(cfg, scores, [0.5 * b, b], correction=corr)
    assert curve["budget"].tolist() == [0.5 * b, b]  # the planner's numbers, exactly
    assert curve["spend"].iloc[1] == pytest.approx(o.summary["expected"]["spend"], rel=1e-3)
    assert curve["forecast_spend"].iloc[1] == pytest.approx(o.summary["forecast"]["spend"], rel=1e-3)
    assert curve["spend"].iloc[0] <= 0.5 * b / 1.25 * (1 + 1e-9)
    assert o.allocated_budget == o.summary["allocated_budget"]
    from promo_opt.report.html import render_report  # the report names the held budget, as the CLI does

    assert "expected spend held at (budget on the forecast)" in render_report(
        o.summary, pipeline.budget_curve(cfg, o, scores, correction=corr), model.metrics)
    from promo_opt.cli import _print_summary

    _print_summary(o.summary, run_out)
    assert f"budget          {b:,.0f} on the forecast: the model's expected spend held at <= {b / 1.25:,.0f} " \
           "(held-out spend is 1.25x the model's)" in capsys.readouterr().out
    loose = pipeline.allocate(cfg, scores, budget=1e9, correction=corr)  # a budget that does not bind: no line
    assert loose.summary["budget_use"]["limit"] != "budget" and loose.summary["allocated_budget"] == pytest.approx(0.8e9)
    _print_summary(loose.summary, run_out)
    assert "on the forecast: the model's expected spend held at" not in capsys.readouterr().out
    assert compare_policies(cfg, model, o, n_boot=20, n_bands=2)["budget"] == b  # the planner's, as labelled
    one = {**corr, "ratio": {**corr["ratio"], "spend": 1.0}}
    same = pipeline.allocate(cfg, scores, correction=one)
    assert same.summary["allocated_budget"] == b and (same.arm == pipeline.allocate(cfg, scores).arm).all()


def test_plan_cli_holds_the_floor_on_the_models_forecast(run_out, small_campaign, tmp_path):
    """``plan --model`` curves what ``allocate --model`` allocates: with the model's own correction, the floor
    on the expected ROI is the one :func:`allocation_floor` gives (min_roi x r_spend / r_revenue, or the
    scale found on the twin) at every budget. The planner's floor is set where the held floor is 70% of the
    best expected ROI of any user, so that it binds and can be met."""
    import pandas as pd
    from conftest import invoke
    from promo_opt import pipeline
    from promo_opt.config import load_config
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign)
    corr = TrainedModel.load(run_out / "model", cfg).metrics["forecast_correction"]
    _, econ = pipeline.economics_from_scores(cfg, pipeline.read_scores(run_out / "scores.parquet"))
    best = float(np.nanmax(np.where(econ.spend[:, 1:] > 0, econ.incremental_revenue[:, 1:]
                                    / np.maximum(econ.spend[:, 1:], 1e-12), np.nan)))
    min_roi = float(f"{0.7 * best / pipeline.allocation_floor(1.0, corr):.3g}")
    floor = pipeline.allocation_floor(min_roi, corr)
    curves = {}
    for extra in ([], ["--model", run_out / "model"]):
        out = tmp_path / f"plan{len(extra)}"
        r = invoke("plan", small_campaign, "--scores", run_out / "scores.parquet", "--out", out, "--min-roi",
                   str(min_roi), "--budgets", "500,2000,8000", *extra)
        assert r.exit_code == 0, r.output
        curves[bool(extra)] = pd.read_csv(out / "plan.csv")
    held = curves[True]
    assert (held["roi"].dropna() >= floor - 1e-6).all()
    r = invoke("allocate", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path / "alloc",
               "--min-roi", str(min_roi), "--model", run_out / "model")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "alloc" / "summary.json").read_text())
    assert summary["min_roi"] == min_roi and summary["allocated_min_roi"] == pytest.approx(floor)
    assert (f"ROI floor       {min_roi:g} on the forecast" in r.output) is pipeline.floor_moved(min_roi, floor)
    if corr.get("applied") and pipeline.floor_moved(min_roi, floor):  # the correction moved the floor: the curves differ
        assert not np.allclose(held["spend"], curves[False]["spend"]) or (curves[False]["roi"] > min_roi + 1e-6).all()


def test_eb_shrink_all_pools_the_prior_over_three_or_more_arms():
    """Fewer than three deviations: each shrunk on its own. Three or more: one prior variance from all of
    them, which keeps a lone noisy deviation from stretching (the arms' slopes are mostly right) and keeps
    deviations that all arms share."""
    from promo_opt.learners.honest import eb_shrink, eb_shrink_all

    two = eb_shrink_all(np.array([3.0, 0.5]), np.ones(2), np.array([1.0, 1.0]))
    assert two.tolist() == [eb_shrink(3.0, 1.0, 1.0), eb_shrink(0.5, 1.0, 1.0)]
    assert eb_shrink_all(np.array([3.0, 2.0, 0.0]), np.ones(3), np.array([1.0, 0.0, 1.0]))[1] == 1.0  # se 0: target
    rng = np.random.default_rng(0)
    se = np.array([1.8, 1.2, 1.0, 1.1])
    err_pooled, err_alone = [], []
    for _ in range(2000):  # every arm's slope is right (1); its estimate is noise
        est = 1.0 + rng.normal(0, se)
        err_pooled.append(np.mean((eb_shrink_all(est, np.ones(4), se) - 1) ** 2))
        err_alone.append(np.mean([(eb_shrink(e, 1.0, s) - 1) ** 2 for e, s in zip(est, se)]))
    assert np.mean(err_pooled) < 0.6 * np.mean(err_alone)
    strong = eb_shrink_all(np.array([2.0, 2.1, 1.9, 2.05]), np.ones(4), np.full(4, 0.1))  # a shared flattening
    assert np.all(np.abs(strong - np.array([2.0, 2.1, 1.9, 2.05])) < 0.02)


def test_every_point_of_a_budget_curve_gets_the_forecast_its_allocation_gets(run_out, small_campaign, tmp_path):
    """The what-if curve forecasts as the targeting list does: at every budget, the forecast columns of
    ``plan`` (point, 90% intervals, net revenue interval, warning) are what ``allocate`` at that budget puts in
    ``summary.forecast`` for the same expected totals; the CLI's plan.csv and the run's plan.csv carry them,
    and a curve without the model's measurement has none."""
    import pandas as pd
    from conftest import invoke
    from promo_opt import pipeline
    from promo_opt.config import load_config
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign)
    corr = TrainedModel.load(run_out / "model", cfg).metrics["forecast_correction"]
    assert corr.get("applied") and corr.get("ratio_cov")
    scores = pipeline.read_scores(run_out / "scores.parquet")
    budgets = [0.0, 0.25 * cfg.constraints.budget, cfg.constraints.budget, 2.0 * cfg.constraints.budget]
    curve = pipeline.plan(cfg, scores, budgets, correction=corr)
    assert set(pipeline.FORECAST_COLUMNS) <= set(curve.columns)
    assert set(pipeline.FORECAST_COLUMNS).isdisjoint(pipeline.plan(cfg, scores, budgets).columns)
    n = 3000 - int(round(cfg.holdout.fraction * 3000))  # the treatable candidates
    for _, row in curve.iterrows():
        expected = {k: row[k] for k in ("incremental_conversions", "incremental_revenue", "spend")}
        one = pipeline.corrected_forecast(expected, corr, cfg.objective, row["budget"], n)
        for k in expected:
            assert row[f"forecast_{k}"] == pytest.approx(one[k], rel=1e-12, abs=1e-12)
            assert [row[f"forecast_{k}_lo90"], row[f"forecast_{k}_hi90"]] == pytest.approx(one["interval90"][k])
            assert row[f"forecast_{k}_lo90"] <= row[f"forecast_{k}"] <= row[f"forecast_{k}_hi90"]
        assert [row["forecast_net_revenue_lo90"], row["forecast_net_revenue_hi90"]] == pytest.approx(
            one["net_revenue_interval90"])
        assert bool(row["forecast_warning"]) is ("warning" in one)
    # the allocation at a budget: its summary's forecast is the curve's at that budget
    o = pipeline.allocate(cfg, scores, correction=corr)
    at = pipeline.plan(cfg, scores, [cfg.constraints.budget], correction=corr).iloc[0]
    assert o.summary["forecast"]["ratio"] == pytest.approx(corr["ratio"])  # the campaign's own twin at its budget
    assert at["forecast_incremental_conversions"] == pytest.approx(o.summary["forecast"]["incremental_conversions"], rel=1e-2)
    assert at["forecast_spend_hi90"] == pytest.approx(o.summary["forecast"]["interval90"]["spend"][1], rel=1e-2)
    for extra, has in (([], False), (["--model", run_out / "model"], True)):
        out = tmp_path / f"plan{len(extra)}"
        r = invoke("plan", small_campaign, "--scores", run_out / "scores.parquet", "--out", out, "--budgets",
                   "500,2000,8000", *extra)
        assert r.exit_code == 0, r.output
        assert ("forecast_incremental_conversions_lo90" in pd.read_csv(out / "plan.csv").columns) is has
    assert set(pipeline.FORECAST_COLUMNS) <= set(pd.read_csv(run_out / "plan.csv").columns)


def test_a_curve_point_warns_exactly_where_its_intervals_reach_zero():
    """``evidence_flags`` is the single rule of the summary's warning and the curve's: conversions' lower
    bound at or under zero, else (net revenue objective) the net revenue's; a plan that treats no one is not
    warned."""
    from promo_opt import pipeline

    conv, net = pipeline.evidence_flags([0, -1, 5, 5, 5], [0, 9, 9, 9, 9], [0, -3, -2, 4, -2], "net_revenue")
    assert conv.tolist() == [False, True, False, False, False] and net.tolist() == [False, False, True, False, True]
    conv, net = pipeline.evidence_flags([5], [9], [-2], "incremental_conversions")
    assert not conv[0] and not net[0]
    corr = ForecastCorrection(ratio={"incremental_conversions": 0.5, "incremental_revenue": 1.0, "spend": 1.0},
                              raw_ratio={"incremental_conversions": 0.5, "incremental_revenue": 1.0, "spend": 1.0},
                              ratio_se={"incremental_conversions": 0.4, "incremental_revenue": 0.2, "spend": 0.01},
                              ratio_cov=[[0.16, 0, 0], [0, 0.04, 0], [0, 0, 1e-4]])
    totals = {"incremental_conversions": np.array([0.0, 10.0, 100.0]), "incremental_revenue": np.array([0.0, 50.0, 400.0]),
              "spend": np.array([0.0, 20.0, 100.0])}
    lo, hi = corr.interval_arrays(totals)["incremental_conversions"]
    # 0.5 -/+ 1.645 x 0.4 reaches under zero at every treating point: the conversions do not show a gain
    assert lo[0] == hi[0] == 0 and (lo[1:] < 0).all()
    cols = pipeline.curve_forecast(totals, {"applied": True, **corr.as_dict()}, "incremental_conversions")
    assert cols["forecast_warning"].tolist() == [False, True, True]
    one = pipeline.corrected_forecast({k: float(v[2]) for k, v in totals.items()}, {"applied": True, **corr.as_dict()})
    assert one["interval90"]["incremental_conversions"] == pytest.approx([lo[2], hi[2]]) and "warning" in one


def test_a_budget_gets_the_ratios_of_the_twins_measured_around_it():
    """at_budget: the ratios and their covariance linear in log budget between the twins measured at the
    neighbouring budgets, the nearest twin's beyond them, the campaign's own at its budget; and a trained model
    carries twins at 0.25, 0.5, 1 and 2 times the campaign's budget, its own ratios at 1x."""
    def entry(b, r, v):
        return {"budget_per_user": b, "ratio": {k: r for k in TOTALS}, "raw_ratio": {k: r for k in TOTALS},
                "ratio_cov": (np.eye(3) * v).tolist()}

    one = {k: 1.0 for k in TOTALS}
    c = ForecastCorrection(ratio=dict(one), raw_ratio=dict(one), ratio_se={k: 0.1 for k in TOTALS},
                           ratio_cov=(np.eye(3) * 0.01).tolist(),
                           by_budget=[entry(1.0, 0.6, 0.04), entry(4.0, 1.0, 0.01)])
    assert c.at_budget(None) is c and c.at_budget(0.0) is c
    assert c.at_budget(0.5).ratio["spend"] == 0.6 and c.at_budget(9.0).ratio["spend"] == 1.0
    mid = c.at_budget(2.0)  # halfway in log budget
    assert mid.ratio["incremental_conversions"] == pytest.approx(0.8)
    assert mid.ratio_se["spend"] == pytest.approx(np.sqrt(0.025)) and mid.by_budget == []
    assert ForecastCorrection.from_dict(c.as_dict()).by_budget == c.by_budget
    # the intervals at a budget span this twin's and the local one's; without a budget, this twin's alone
    totals = {k: np.array([100.0]) for k in TOTALS}
    (ivs, net), local = c.intervals_at(totals, 0.5), c.at_budget(0.5)
    for k in TOTALS:
        lo = min(c.interval_arrays(totals)[k][0][0], local.interval_arrays(totals)[k][0][0])
        hi = max(c.interval_arrays(totals)[k][1][0], local.interval_arrays(totals)[k][1][0])
        assert (ivs[k][0][0], ivs[k][1][0]) == pytest.approx((lo, hi))
    mine, theirs = c.net_interval_arrays(totals), local.net_interval_arrays(totals)
    assert (net[0][0], net[1][0]) == pytest.approx((min(mine[0][0], theirs[0][0]), max(mine[1][0], theirs[1][0])))
    assert c.intervals_at(totals)[0]["spend"][0] == pytest.approx(c.interval_arrays(totals)["spend"][0])


def test_a_policy_that_leaves_budget_unspent_gets_one_forecast_at_every_budget():
    """Where something other than the budget stops the spending (a floor, a cap, the break-even), the policy is
    the same at every larger budget, and so is its forecast: its intervals span the twins measured around the
    spend it reaches (forecast spend: expected x the spend ratio), not around the budget it leaves unspent. Where
    the budget binds (forecast spend = budget), the budget's twins as before; one allocation and its curve point
    agree."""
    from promo_opt import pipeline
    from promo_opt.evaluation.forecast import policy_budget

    def entry(b, r, v):
        return {"budget_per_user": b, "ratio": {k: r for k in TOTALS}, "raw_ratio": {k: r for k in TOTALS},
                "ratio_cov": (np.eye(3) * v).tolist()}

    half = {**{k: 1.0 for k in TOTALS}, "spend": 0.5}  # the model's spend is twice the truth: forecast = expected / 2
    c = ForecastCorrection(ratio=dict(half), raw_ratio=dict(half), ratio_se={k: 0.1 for k in TOTALS},
                           ratio_cov=(np.eye(3) * 0.01).tolist(),
                           by_budget=[entry(1.0, 0.6, 0.04), entry(2.0, 0.9, 0.0025), entry(4.0, 1.0, 0.01),
                                      entry(8.0, 1.3, 0.09)])
    corr = {"applied": True, **c.as_dict()}
    n = 100
    # budgets 200, 400, 800: the first spends its budget (expected 400 = forecast 200), the others stop at 300
    curve = {"budget": np.array([200.0, 400.0, 800.0]), "incremental_conversions": np.array([10.0, 12.0, 12.0]),
             "incremental_revenue": np.array([50.0, 60.0, 60.0]), "spend": np.array([400.0, 600.0, 600.0])}
    assert policy_budget(curve["budget"], curve["spend"], c).tolist() == [200.0, 300.0, 300.0]
    cols = pipeline.curve_forecast(curve, corr, "incremental_conversions", n)
    for k in pipeline.FORECAST_COLUMNS:
        assert cols[k][1] == cols[k][2], k  # one policy, one forecast
    for i, key in enumerate((200.0, 300.0, 300.0)):  # one allocation at each budget: its point's figures
        one = pipeline.corrected_forecast({k: float(curve[k][i]) for k in TOTALS}, corr, None, curve["budget"][i], n)
        ivs = c.intervals_at({k: curve[k][i:i + 1] for k in TOTALS}, key / n)[0]
        for k in TOTALS:
            assert one["interval90"][k] == pytest.approx([ivs[k][0][0], ivs[k][1][0]])
            assert [cols[f"forecast_{k}_lo90"][i], cols[f"forecast_{k}_hi90"][i]] == pytest.approx(one["interval90"][k])
    # a policy that spends nothing at a positive budget (free arms only) gets the smallest twin, as one spending a cent
    free = {"incremental_conversions": 12.0, "incremental_revenue": 60.0, "spend": 0.0}
    cent = {**free, "spend": 0.01}
    assert policy_budget(800.0, 0.0, c) > 0 and policy_budget(0.0, 0.0, c) == 0
    ivs = [pipeline.corrected_forecast(t, corr, None, 800.0, n)["interval90"] for t in (free, cent)]
    for k in ("incremental_conversions", "incremental_revenue"):
        assert ivs[0][k] == pytest.approx(ivs[1][k])
    # the unspent budget's twins (at 8 per user: ratio 1.3) would have given another interval
    keyed_by_budget = c.intervals_at({k: curve[k][2:] for k in TOTALS}, 8.0)[0]["incremental_conversions"]
    assert cols["forecast_incremental_conversions_hi90"][2] < keyed_by_budget[1][0]


def test_a_trained_model_measures_its_twin_at_four_budgets(run_out, small_campaign):
    from promo_opt import pipeline
    from promo_opt.config import load_config
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign)
    corr = TrainedModel.load(run_out / "model", cfg).metrics["forecast_correction"]
    pts = corr["by_budget"]
    n = 3000 - int(round(cfg.holdout.fraction * 3000))
    assert [p["budget_per_user"] for p in pts] == pytest.approx([m * cfg.constraints.budget / n for m in (0.25, 0.5, 1, 2)])
    assert pts[2]["ratio"] == corr["ratio"] and pts[2]["ratio_cov"] == corr["ratio_cov"]
    c = ForecastCorrection.from_dict(corr)
    assert c.at_budget(cfg.constraints.budget / n).ratio == pytest.approx(corr["ratio"])
    # a list at a quarter of the budget: the campaign twin's point, intervals spanning both twins' exactly
    scores = pipeline.read_scores(run_out / "scores.parquet")
    o = pipeline.allocate(cfg, scores, budget=0.25 * cfg.constraints.budget, correction=corr)
    f, e = o.summary["forecast"], o.summary["expected"]
    assert f["ratio"] == pytest.approx(corr["ratio"])
    own, there = c.interval(e), c.at_budget(0.25 * cfg.constraints.budget / n).interval(e)
    for k in TOTALS:
        assert f["interval90"][k] == pytest.approx([min(own[k][0], there[k][0]), max(own[k][1], there[k][1])])
    assert there != own  # the quarter-budget twin measured something else


def _flattening_world(n, seed, flatten):
    """Randomized 2-arm data: 10% of the users respond strongly (uplift 0.05, true ROI 2 on a voucher costing
    0.25 per conversion), the rest barely (uplift 0.005, ROI 0.36). The model keeps ``flatten`` of each user's
    uplift and puts the rest at the mean: 0.15 puts the strong responders' expected ROI at 0.95, under the plain
    break-even, as a smoothing learner flattens a rare type."""
    rng = np.random.default_rng(seed)
    strong = rng.random(n) < 0.1
    tau = np.where(strong, 0.05, 0.005)
    p = np.column_stack([np.full(n, 0.05), 0.05 + tau])
    model = np.column_stack([p[:, 0], 0.05 + flatten * tau + (1 - flatten) * tau.mean()])
    arm = rng.integers(0, 2, size=n)
    y = (rng.random(n) < p[np.arange(n), arm]).astype(np.int64)
    cfg = CampaignConfig(name="t", objective="net_revenue", data={"train": "x.csv", "candidates": "y.csv"},
                         arms=[ArmConfig(name="control", control=True), ArmConfig(name="v", cost_per_conversion=0.25)],
                         constraints={"budget": 1e9})
    return cfg, p, model, arm, y


def test_the_net_revenue_break_even_is_searched_on_the_twin():
    """A model that flattens a rare strong type sees no user above the plain break-even, so the list treats
    no one where the strong responders pay twice their cost. The twin measured at weights under 1 shows the
    gain; the weight kept treats exactly the strong type (true net revenue > 0), not everyone (which loses
    money). A right model keeps the plain break-even: no weight gains on the held-out rows."""
    from promo_opt.evaluation.breakeven import COST_WEIGHTS, held_out_cost_weight

    n = 200_000
    for flatten, moves in ((0.15, True), (1.0, False)):
        cfg, p, model, arm, y = _flattening_world(n, 1, flatten)

        def measure_weight(c):
            return heldout_policy(cfg, model, arm, y, None, None, np.ones(n), n_candidates=n, cost_weight=c)

        weight, tried = held_out_cost_weight(measure_weight)
        true = compute_economics(p, np.ones(n), cfg.ordered_arms)
        if moves:
            assert measure_weight(1.0).arm.sum() == 0  # the plain break-even treats no one: both sides are tried
            assert [t["cost_weight"] for t in tried] == list(COST_WEIGHTS)
            assert 0.6 < weight < 0.95
            picked = measure_weight(weight).arm
            assert (picked == 1).sum() > 0 and true.totals(picked)["net_revenue"] > 0
            assert true.totals(measure_weight(0.5).arm)["net_revenue"] < 0  # everyone: a loss, not chosen
        else:  # one side only, the one the twin's ratio of returns to spend points to
            sides = {t["cost_weight"] < 1 for t in tried}
            assert weight == 1.0 and len(tried) == 4 and len(sides) == 1


def test_a_cost_weight_counts_only_where_its_twin_meets_the_floor():
    """With an ROI floor, a weight whose twin is not forecast to meet min_roi is skipped however much it gains;
    without gains beyond two standard errors, or where the moved twin itself loses money, the plain break-even
    stays."""
    from promo_opt.evaluation.heldout import HeldOutPolicy
    from promo_opt.evaluation.offpolicy import PolicyContributions
    from promo_opt.evaluation.breakeven import held_out_cost_weight

    n = 10_000
    noise = np.random.default_rng(0).normal(scale=0.01, size=n)  # the same rows' noise in every twin

    def twin(spend_per_row, roi):
        """A twin whose rows each spend ``spend_per_row`` and return ``roi`` times it, as the model expected."""
        spend = np.full(n, spend_per_row)
        rev = spend * roi + noise * spend_per_row
        realized = PolicyContributions(conversions=rev, revenue=rev, spend=spend)
        return HeldOutPolicy(arm=np.ones(n, dtype=np.int64), realized=realized,
                             expected={"incremental_conversions": float(rev.sum()), "incremental_revenue": float(rev.sum()),
                                       "spend": float(spend.sum())})

    # weight 0.71 gains most (net 0.6 a row against 0.25) but returns 1.15, under min_roi 1.2; the others gain
    # less (0.33 a row) at 1.22
    def measure(c):
        return twin(1.0, 1.25) if c == 1.0 else twin(4.0, 1.15) if abs(c - 2 ** -0.5) < 1e-9 else twin(1.5, 1.22)

    weight, tried = held_out_cost_weight(measure, min_roi=1.2)
    assert weight == pytest.approx(2 ** -0.25)  # of the weights that tie, the nearest to 1
    assert [t["floor_met"] for t in tried if abs(t["cost_weight"] - 2 ** -0.5) < 1e-9] == [False]
    weight, _ = held_out_cost_weight(measure)  # without a floor the largest sure gain wins
    assert weight == pytest.approx(2 ** -0.5)
    assert held_out_cost_weight(lambda c: twin(1.0, 1.25))[0] == 1.0  # no gain: the plain break-even
    # a sure gain over a twin that loses money, to a twin that still loses money: no gain over treating no one
    weight, tried = held_out_cost_weight(lambda c: twin(1.0, 0.5 if c == 1.0 else 0.8))
    assert weight == 1.0 and all(t["gain"] > 10 * t["se"] and not t["pays"] for t in tried)


def test_the_cost_weight_reaches_every_door(run_out, small_campaign, capsys):
    """The weight the twin found is held by the list, the curve, the summary and the CLI alike; it acts only
    under the objective net_revenue. With a budget too large to bind, the weight 0.8 treats users the plain
    break-even leaves out."""
    from promo_opt import pipeline
    from promo_opt.allocation import solve
    from promo_opt.config import load_config
    from promo_opt.economics import build_problem
    from promo_opt.model import TrainedModel

    cfg = load_config(small_campaign, **{"objective": "net_revenue", "constraints.budget": 1e9})
    model = TrainedModel.load(run_out / "model", cfg)
    scores = pipeline.read_scores(run_out / "scores.parquet")
    one = {**model.metrics["forecast_correction"], "applied": True, "by_budget": [], "floor_scale": None,
           "cost_weight": None}
    one["ratio"] = {**one["ratio"], "spend": 1.0}
    corr = {**one, "cost_weight": 0.8}
    o, plain = pipeline.allocate(cfg, scores, correction=corr), pipeline.allocate(cfg, scores, correction=one)
    assert o.summary["allocated_cost_weight"] == 0.8 and plain.summary["allocated_cost_weight"] == 1.0
    assert o.allocated_cost_weight == 0.8
    assert (o.arm != 0).sum() > (plain.arm != 0).sum()
    treat = ~o.holdout
    direct = solve(build_problem(o.econ.subset(treat), cfg, budget=o.allocated_budget, cost_weight=0.8), solver=cfg.solver)
    assert (o.arm[treat] == direct.arm).all()
    curve = pipeline.plan(cfg, scores, [1e9], correction=corr)
    assert curve["spend"].iloc[0] == pytest.approx(o.summary["expected"]["spend"], rel=1e-6)
    from promo_opt.service import plans

    cached = plans.build_frontier(cfg, run_out / "scores.parquet", None, corr)  # the service's /plans
    assert pipeline.reported_cost_weight(cfg.objective, cached.correction) == 0.8  # what /plans names
    assert plans.answer(cfg, cached, [1e9], 5)["spend"][0] == pytest.approx(o.summary["expected"]["spend"], rel=1e-6)
    report_curve = pipeline.budget_curve(cfg, o, scores, correction=corr)
    assert report_curve["spend"].max() == pytest.approx(o.summary["expected"]["spend"], rel=1e-6)
    from promo_opt.report.html import render_report

    assert "break-even: incremental revenue over cost held at" in render_report(o.summary, report_curve, model.metrics)
    assert "break-even" not in render_report(plain.summary, report_curve, model.metrics)
    from promo_opt.cli import _print_summary

    _print_summary(o.summary, run_out)
    assert "net revenue     held on the forecast: a user gets a promotion where its incremental revenue exceeds " \
           "0.8x its cost" in capsys.readouterr().out
    conv = load_config(small_campaign)  # objective conversions: the weight does not apply
    c = pipeline.allocate(conv, scores, correction={**corr, "ratio": one["ratio"]})
    assert "allocated_cost_weight" not in c.summary and c.allocated_cost_weight == 1.0
    assert pipeline.reported_cost_weight(conv.objective, corr) is None
    assert (c.arm == pipeline.allocate(conv, scores, correction=one).arm).all()


def test_simultaneous_z_lies_between_one_bound_and_bonferroni():
    """One statistic: the normal quantile. Eight copies of it: the same (one bound in disguise). Eight
    independent ones: the quantile of their maximum, Phi^-1(0.95^(1/8)) = 2.49 (Bonferroni's 2.50 just above)."""
    from scipy.stats import norm

    from promo_opt.evaluation.breakeven import simultaneous_z

    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 8))
    assert simultaneous_z(x[:, :1], 0.95, draws=2000) == pytest.approx(norm.ppf(0.95), abs=0.06)
    assert simultaneous_z(np.repeat(x[:, :1], 8, axis=1), 0.95, draws=2000) == pytest.approx(norm.ppf(0.95), abs=0.06)
    assert simultaneous_z(x, 0.95, draws=2000) == pytest.approx(norm.ppf(0.95 ** (1 / 8)), abs=0.08)
    assert simultaneous_z(np.zeros((100, 3)), 0.95) == pytest.approx(norm.ppf(0.95))  # no spread: one bound


def test_a_moved_break_even_is_kept_only_where_its_twin_describes_the_list():
    """The twin allocates one fold model's prediction per row, the list the fold models' smoother average. Where
    the list at the moved break-even spends per user what its twin did, the move stands; where the candidates'
    model is flatter and the list picks almost no one (generated_22's pattern), the twin measured another
    policy and the plain break-even is kept, with the reason."""
    from promo_opt.evaluation.breakeven import twin_unlike_list

    n = 200_000
    cfg, p, model, arm, y = _flattening_world(n, 1, 0.15)
    twin = heldout_policy(cfg, model, arm, y, None, None, np.ones(n), n_candidates=n, cost_weight=2 ** -0.5)
    assert twin.expected["spend"] > 0
    same = compute_economics(model, np.ones(n), cfg.ordered_arms)  # candidates like the training rows
    assert twin_unlike_list(cfg, twin, None, lambda: same, None, 2 ** -0.5) is None
    _, _, flatter, _, _ = _flattening_world(n, 1, 0.0)  # all at the mean uplift, ROI 0.64 < 0.71: no one picked
    why = twin_unlike_list(cfg, twin, None, lambda: compute_economics(flatter, np.ones(n), cfg.ordered_arms), None,
                           2 ** -0.5)
    assert why is not None and "did not measure the list's policy" in why
    assert twin_unlike_list(cfg, twin, None, None, None, 2 ** -0.5) is None  # nothing to compare with: kept
    # a budget that binds: the list is allocated at the budget held on the forecast, and compared there. At a
    # third of the twin's spend the planner's budget alone makes the list look a third of its twin; held at
    # three times that (a twin whose users cost a third of what the model says), it is its twin's size
    third = float(twin.expected["spend"]) / 3
    tight = cfg.model_copy(update={"constraints": cfg.constraints.model_copy(update={"budget": third})})
    assert "did not measure the list's policy" in twin_unlike_list(tight, twin, None, lambda: same, None, 2 ** -0.5)
    assert twin_unlike_list(tight, twin, None, lambda: same, None, 2 ** -0.5, budget=3 * third) is None


def test_training_under_net_revenue_searches_the_break_even_and_the_list_holds_it(small_campaign):
    """End to end: a model trained under net_revenue records the search (each weight's gain, its standard error,
    the simultaneous z, whether its twin pays and meets the floor), and the list holds the weight it kept."""
    from promo_opt import pipeline
    from promo_opt.config import load_config

    cfg = load_config(small_campaign, **{"objective": "net_revenue"})
    model = pipeline.train(cfg)
    corr = model.metrics["forecast_correction"]
    tried = corr["cost_weight_search"]
    assert tried and {"cost_weight", "gain", "se", "net_revenue", "net_revenue_se", "z", "pays", "floor_met"} <= set(tried[0])
    assert all(t["z"] >= 1.6 for t in tried)
    kept = corr["cost_weight"]
    assert kept is None or (kept in [t["cost_weight"] for t in tried if t["pays"] and t["floor_met"]]
                            and "cost_weight_dropped" not in corr)
    out = pipeline.allocate(cfg, pipeline.score_candidates(cfg, model), correction=corr)
    assert out.summary["allocated_cost_weight"] == (kept or 1.0)


def test_the_break_even_check_compares_twin_and_list_at_the_budget_the_list_is_allocated_at(small_campaign,
                                                                                           monkeypatch):
    """Training hands the check that the twin describes the list the budget held on the moved twin's forecast
    (the planner's budget x that twin's spend scale), the budget the list is then allocated at, not the planner's
    own. The weight is forced to move (0.8), every twin is made to measure its users 1.25x as costly as the model
    says (so the held budget is 0.8x the planner's), and the check is watched: the wiring is tested on its own."""
    from dataclasses import replace

    from promo_opt import pipeline
    from promo_opt.config import load_config

    measured = ForecastCorrection.from_heldout.__func__

    def costlier(cls, h, correct=True, calibration=None):
        c = measured(cls, h, correct, calibration)
        return replace(c, ratio={**c.ratio, "spend": 1.25})

    monkeypatch.setattr(ForecastCorrection, "from_heldout", classmethod(costlier))
    seen = {}

    def check(config, twin, weights, candidates_economics, floor, weight, budget=None):
        seen.update(weight=weight, budget=budget)
        return None  # alike: the move stands, so the moved twin's ratios are the ones recorded

    monkeypatch.setattr(pipeline, "held_out_cost_weight", lambda measure, min_roi, seed, tol: (0.8, ["forced"]))
    monkeypatch.setattr(pipeline, "twin_unlike_list", check)
    cfg = load_config(small_campaign, **{"objective": "net_revenue"})
    corr = pipeline.train(cfg).metrics["forecast_correction"]
    assert corr["cost_weight"] == 0.8 and seen["weight"] == 0.8
    held = pipeline.allocation_budget(cfg.constraints.budget, corr)
    assert held == pytest.approx(cfg.constraints.budget / 1.25)
    assert seen["budget"] == pytest.approx(held)
