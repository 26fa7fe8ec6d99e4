"""End to end through the CLI on a small simulated world, step by step, determinism, errors."""

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import invoke, write_config


def test_run_writes_every_output(run_out, small_campaign):
    for f in ("targets.csv", "summary.json", "report.html", "scores.parquet", "plan.csv", "model/model.joblib",
              "model/metrics.json", "model/model.json"):
        assert (run_out / f).is_file(), f
    t = pd.read_csv(run_out / "targets.csv")
    assert list(t.columns) == ["user_id", "arm", "holdout", "p_control", "p_arm", "incremental_conversions",
                               "expected_cost", "incremental_revenue"]
    assert len(t) == 3000 and t["user_id"].is_unique
    assert (t.loc[t["holdout"], "arm"] == "control").all()
    assert t["holdout"].sum() == round(0.05 * 3000)
    s = json.loads((run_out / "summary.json").read_text())
    assert s["expected"]["spend"] <= s["budget"] * (1 + 1e-9)
    assert s["expected"]["spend"] == pytest.approx(t["expected_cost"].sum())
    assert s["gap"] < 1e-3 and s["solver"] == "dual"
    assert sum(s["users_per_arm"].values()) == 3000
    # the truth is known: the policy must be real, not noise (small data, so a loose floor)
    assert s["truth"]["share_of_oracle"] > 0.5
    assert 0.7 < s["truth"]["true_spend_vs_budget"] <= 1.1
    html = (run_out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "oracle" in html  # + policy comparison, budget band, Qini curves


def test_steps_one_at_a_time_and_allocate_reads_only_scores(small_campaign, tmp_path, run_out):
    model, scores, alloc = tmp_path / "model", tmp_path / "scores.parquet", tmp_path / "alloc"
    assert invoke("train", small_campaign, "--out", model).exit_code == 0
    assert invoke("score", small_campaign, "--model", model, "--out", scores).exit_code == 0
    # a team allocating from scores made elsewhere: the data paths are not opened
    import shutil

    d = tmp_path / "only-config"
    d.mkdir()
    shutil.copy(small_campaign, d / "campaign.yaml")
    r = invoke("allocate", d / "campaign.yaml", "--scores", scores, "--out", alloc, "--budget", 5000)
    assert r.exit_code == 0, r.output
    s = json.loads((alloc / "summary.json").read_text())
    assert s["budget"] == 5000 and s["expected"]["spend"] <= 5000 + 1e-6
    # same config and seed as `run`: the scores are byte-identical
    a = pd.read_parquet(scores)
    b = pd.read_parquet(run_out / "scores.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_allocate_is_deterministic(small_campaign, run_out, tmp_path):
    for name in ("a", "b"):
        assert invoke("allocate", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path / name).exit_code == 0
    assert (tmp_path / "a" / "targets.csv").read_bytes() == (tmp_path / "b" / "targets.csv").read_bytes()
    # run's list is allocate's with the model: the budget (and any floor) held on its corrected forecast
    assert invoke("allocate", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path / "m",
                  "--model", run_out / "model").exit_code == 0
    assert (tmp_path / "m" / "targets.csv").read_bytes() == (run_out / "targets.csv").read_bytes()


def test_plan_command(small_campaign, run_out, tmp_path):
    r = invoke("plan", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path, "--budget-range", "0:20000:5")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "plan.csv")
    assert p["budget"].tolist() == [0, 5000, 10000, 15000, 20000]
    assert (p["spend"] <= p["budget"] + 1e-6).all()
    assert p["incremental_conversions"].is_monotonic_increasing
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"
    r = invoke("plan", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path, "--budgets", "1e3,x")
    assert r.exit_code == 2 and "--budgets expects numbers" in r.output
    # under an arm cap: an exact allocation at each budget, held on the model's forecast as 'allocate --model' holds it
    raw = yaml.safe_load(small_campaign.read_text())
    arm = raw["arms"][-1]["name"]
    raw["arms"][-1]["max_users"] = 40
    capped = tmp_path / "capped.yaml"
    capped.write_text(yaml.safe_dump(raw, sort_keys=False))
    r = invoke("plan", capped, "--scores", run_out / "scores.parquet", "--out", tmp_path / "c", "--budgets", "0,2000,8000",
               "--model", run_out / "model")
    assert r.exit_code == 0, r.output
    assert "each budget is an exact allocation" in r.output
    p = pd.read_csv(tmp_path / "c" / "plan.csv")
    assert p["budget"].tolist() == [0, 2000, 8000] and (p[f"users_{arm}"] <= 40).all() and (p["gap"] < 1e-3).all()
    assert p[f"users_{arm}"].iloc[-1] == 40  # the cap binds
    a = invoke("allocate", capped, "--scores", run_out / "scores.parquet", "--out", tmp_path / "a", "--budget", "2000",
               "--model", run_out / "model")
    assert a.exit_code == 0, a.output
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    # the same budget held alike; the plan's point stops at a gap of 1e-4 (pipeline.CAPPED_GAP), allocate proves
    assert p["forecast_spend"].iloc[1] == pytest.approx(s["forecast"]["spend"], rel=1e-4)
    assert p["incremental_conversions"].iloc[1] == pytest.approx(s["expected"]["incremental_conversions"], rel=2e-4)


def test_user_errors_exit_2_and_leave_nothing(campaign_copy, tmp_path):
    d, raw = campaign_copy
    raw["arms"] = [a for a in raw["arms"] if a["name"] != "pct20"]
    out = tmp_path / "out"
    r = invoke("run", write_config(d, raw), "--out", out)
    assert r.exit_code == 2
    assert "arm(s) ['pct20'] that the config does not name" in r.output
    assert not out.exists()


def test_unattainable_roi_floor_is_a_clear_error(small_campaign, run_out, tmp_path):
    r = invoke("allocate", small_campaign, "--scores", run_out / "scores.parquet", "--out", tmp_path / "x", "--min-roi", 1e6)
    assert r.exit_code == 2
    assert "above the best ROI any user x arm reaches" in r.output
    assert not (tmp_path / "x").exists()


def test_scores_file_checked(small_campaign, run_out, tmp_path):
    s = pd.read_parquet(run_out / "scores.parquet").drop(columns=["p_pct10"])
    s.to_parquet(tmp_path / "bad.parquet")
    r = invoke("allocate", small_campaign, "--scores", tmp_path / "bad.parquet", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "missing column(s) ['p_pct10']" in r.output


def test_model_for_other_arms_refused(campaign_copy, run_out, tmp_path):
    d, raw = campaign_copy
    raw["arms"].append({"name": "pct30", "discount": 0.3})
    r = invoke("score", write_config(d, raw), "--model", run_out / "model", "--out", tmp_path / "s.parquet")
    assert r.exit_code == 2 and "was trained on arms" in r.output
