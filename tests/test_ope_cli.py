"""evaluate / measure / sample-size through the CLI on a small simulated campaign whose truth is known,
and the policy comparison that run writes into summary.json and report.html."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from promo_opt.cli import app
from promo_opt.config import load_config
from promo_opt.evaluation.truth import truth_economics
from promo_opt.simulation.outcomes import simulate_outcomes
from tests.conftest import invoke

runner = CliRunner()


@pytest.fixture(scope="module")
def ran(small_campaign, run_out):
    """The session's run on the small campaign, plus a randomized holdout slice of its candidates
    (features, random arms, outcomes) written beside it."""
    out = run_out
    cfg = load_config(small_campaign)
    truth = pd.read_parquet(cfg.data.truth)
    cand = pd.read_csv(cfg.data.candidates)
    rows = simulate_outcomes(cfg, truth, cand["user_id"].to_numpy(), seed=11)
    holdout = cand.merge(rows, on="user_id")
    holdout.to_csv(out / "holdout.csv", index=False)
    return cfg, out, truth


def _true_totals(cfg, truth, targets, rows=None):
    arm = targets["arm"].map({a: k for k, a in enumerate(cfg.arm_names)}).to_numpy()
    econ = truth_economics(cfg, targets["user_id"].to_numpy(), truth)
    if rows is not None:
        econ, arm = econ.subset(rows), arm[rows]
    return econ.totals(arm)


def test_evaluate_writes_the_schema_and_covers_the_truth(ran, small_campaign, tmp_path):
    cfg, out, truth = ran
    r = invoke("evaluate", small_campaign, "--targets", out / "targets.csv", "--holdout-data", out / "holdout.csv",
               "--model", out / "model", "--out", tmp_path, "--boot", 500)
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "evaluation.json").read_text())
    for est in ("ips", "snips", "dr"):
        assert set(ev[est]) >= {"incremental_conversions", "incremental_revenue", "spend"}
        for q in ("incremental_conversions", "incremental_revenue", "spend"):
            assert set(ev[est][q]) == {"estimate", "ci_low", "ci_high"}
            assert ev[est][q]["ci_low"] <= ev[est][q]["estimate"] <= ev[est][q]["ci_high"]
    assert ev["n"] == 3000 and ev["dr_outcome_model"].startswith("trained model")
    # one draw of the holdout: a 95% interval misses 1 time in 20 (coverage itself is pinned in test_ope),
    # so here the truth must be within 3.3 standard errors (half-width / 1.96): a 1-in-1000 miss
    true = _true_totals(cfg, truth, pd.read_csv(out / "targets.csv"))
    for est in ("ips", "snips", "dr"):
        for q in ("incremental_conversions", "spend", "incremental_revenue"):
            iv = ev[est][q]
            se = (iv["ci_high"] - iv["ci_low"]) / 3.92
            assert abs(iv["estimate"] - true[q]) < 3.3 * se, (est, q, iv, true[q])
    assert ev["expected"]["spend"] == pytest.approx(pd.read_csv(out / "targets.csv")["expected_cost"].sum())


def test_evaluate_errors_are_one_line(ran, small_campaign, tmp_path):
    cfg, out, _ = ran
    pd.read_csv(out / "holdout.csv").drop(columns="arm").to_csv(tmp_path / "h.csv", index=False)
    r = runner.invoke(app, ["evaluate", str(small_campaign), "--targets", str(out / "targets.csv"),
                            "--holdout-data", str(tmp_path / "h.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "missing column(s) ['arm']" in r.output
    assert not (tmp_path / "o" / "evaluation.json").exists()


def test_measure_recovers_the_realized_effect(ran, small_campaign, tmp_path):
    cfg, out, truth = ran
    targets = pd.read_csv(out / "targets.csv")
    arm = targets["arm"].map({a: k for k, a in enumerate(cfg.arm_names)}).to_numpy()
    realized = simulate_outcomes(cfg, truth, targets["user_id"].to_numpy(), arm=arm, seed=12)
    realized.drop(columns="arm").to_csv(tmp_path / "realized.csv", index=False)
    r = invoke("measure", small_campaign, "--targets", out / "targets.csv", "--outcomes", tmp_path / "realized.csv",
               "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m" / "measurement.json").read_text())
    assert m["n_holdout"] == targets["holdout"].sum() == 150 and m["n_policy_group"] == 2850
    true = _true_totals(cfg, truth, targets, ~targets["holdout"].to_numpy())
    for q in ("incremental_conversions", "incremental_revenue", "spend"):  # within 3.3 standard errors, as above
        iv = m["realized"][q]
        assert abs(iv["estimate"] - true[q]) < 3.3 * (iv["ci_high"] - iv["ci_low"]) / 3.92, (q, iv, true[q])
    # spend is observed, not estimated: the interval is tight around the truth
    assert abs(m["realized"]["spend"]["estimate"] / true["spend"] - 1) < 0.1
    assert set(m["expected_within_interval"]) == {"incremental_conversions", "incremental_revenue", "spend", "roi"}


def test_measure_without_holdout_rows_is_an_error(ran, small_campaign, tmp_path):
    cfg, out, truth = ran
    targets = pd.read_csv(out / "targets.csv")
    targets.assign(holdout=False).to_csv(tmp_path / "t.csv", index=False)
    simulate_outcomes(cfg, truth, targets["user_id"].to_numpy(), seed=1).to_csv(tmp_path / "r.csv", index=False)
    r = runner.invoke(app, ["measure", str(small_campaign), "--targets", str(tmp_path / "t.csv"),
                            "--outcomes", str(tmp_path / "r.csv"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "no row has holdout = true" in r.output


def test_sample_size_has_the_power_it_claims():
    """The holdout fraction returned, checked by simulating 20,000 campaigns and z-testing each."""
    from promo_opt.evaluation.measure import holdout_fraction_needed

    res = holdout_fraction_needed(100_000, 0.10, 0.01)
    assert 0.07 < res.holdout_fraction < 0.09
    nh = res.holdout_users
    nt = 100_000 - nh
    rng = np.random.default_rng(0)
    a, b = rng.binomial(nt, 0.11, 20_000) / nt, rng.binomial(nh, 0.10, 20_000) / nh
    pooled = (a * nt + b * nh) / 100_000
    z = (a - b) / np.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nh))
    assert abs((np.abs(z) > 1.959964).mean() - 0.80) < 0.015
    r = invoke("sample-size", "--users", 1000, "--base-rate", 0.1, "--uplift", 0.005)
    assert r.exit_code == 1 and "not reachable" in r.output


def test_run_compares_policies_at_the_same_budget(ran):
    cfg, out, truth = ran
    s = json.loads((out / "summary.json").read_text())
    comp = s["policy_comparison"]
    names = [r["policy"] for r in comp["rows"]]
    assert names[:5] == ["optimized", "everyone pct5", "everyone pct10", "everyone pct20", "random"]
    assert "response model" in names and any(n.startswith("best single arm (") for n in names)
    assert comp["scored_by"].startswith("simulated truth")
    opt = comp["rows"][0]
    for k in ("incremental_conversions", "spend", "incremental_revenue"):
        assert opt[k] == pytest.approx(s["truth"]["policy_true"][k])
    html = (out / "report.html").read_text()
    assert "Policy comparison at the same budget" in html and "Budget curve with confidence band" in html
    bands = comp["budget_bands"]
    assert len(bands) == 11 and bands[0]["budget"] == 0 and bands[-1]["budget"] == pytest.approx(2 * s["budget"])
    assert bands[0]["incremental_conversions"] == bands[0]["incremental_conversions_ci_high"] == 0.0  # spends nothing
    for b in bands:
        assert b["incremental_conversions_ci_low"] <= b["incremental_conversions"] <= b["incremental_conversions_ci_high"]
        assert b["expected_spend"] <= b["budget"] * (1 + 1e-6) + 1e-6


def test_baselines_stay_within_the_budget_by_expected_spend(small_campaign):
    from promo_opt.economics import compute_economics
    from promo_opt.evaluation.policies import baseline_policies

    cfg = load_config(small_campaign)
    rng = np.random.default_rng(0)
    p = np.clip(rng.uniform(0.02, 0.2, (400, 1)) + rng.uniform(-0.02, 0.08, (400, 4)) * [0, 1, 1, 1], 0, 1)
    econ = compute_economics(p, rng.uniform(50, 400, 400), cfg.ordered_arms)
    pols = baseline_policies(econ, cfg, np.zeros(400, dtype=int), 300.0, None, seed=0)
    rows = np.arange(400)
    for name, arm in pols.items():
        assert econ.spend[rows, arm].sum() <= 300.0 + 1e-6, name
    best = next(n for n in pols if n.startswith("best single arm"))
    assert len(set(pols[best]) - {0}) == 1 and set(pols["everyone pct10"]) <= {0, 2}
    k = int(max(pols["response model"]))
    got = pols["response model"] == k
    assert p[got, k].min() >= p[~got, k].max()  # the most likely buyers, nobody else
