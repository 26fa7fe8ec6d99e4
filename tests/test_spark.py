"""The Spark engine (local[2]) against the single-machine engine on the same scores.

Same arms for the same users, the same objective and certificate (bound, gap) within 1e-9
relative; the same budget curve; the same scores; atomic output that leaves nothing behind on
failure. The distributed path is forced on small data by lowering the number of users that the
dual solves directly, on both engines alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt import pipeline
from promo_opt.allocation import dual
from promo_opt.config import SparkConfig, load_config, parse_config
from promo_opt.errors import DataError, InfeasibleError, PromoOptError
from promo_opt.spark.session import java_available

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'promo-opt[spark]')")
if not java_available():
    pytest.skip("Spark needs Java: no JAVA_HOME and no 'java' on the PATH", allow_module_level=True)

pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
              pytest.mark.filterwarnings("ignore:toPandas attempted Arrow optimization:UserWarning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

from promo_opt.spark import allocate as spark_allocate  # noqa: E402
from promo_opt.spark import plan as spark_plan  # noqa: E402
from promo_opt.spark.output import write_parquet_atomic  # noqa: E402
from promo_opt.spark.session import spark_session  # noqa: E402

N = 12_000
DIRECT = 1_000  # users solved directly; above it, both engines take the reduced (distributed) path
ARMS = [{"name": "control", "control": True}, {"name": "pct5", "discount": 0.05},
        {"name": "pct10", "discount": 0.10}, {"name": "mail", "cost_per_send": 0.3},
        {"name": "voucher", "cost_per_conversion": 8.0}]


@pytest.fixture(scope="session")
def spark():
    session = spark_session(SparkConfig(master="local[2]", conf={
        "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "2500"}))
    yield session
    session.stop()


def make_config(**constraints):
    raw = {"name": "synthetic", "data": {"id": "user_id", "value": "order_value"}, "arms": ARMS,
           "constraints": constraints, "holdout": {"fraction": 0.1}, "seed": 5}
    return parse_config(raw)


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Scores of N users: heterogeneous lifts, some negative, and order values."""
    rng = np.random.default_rng(11)
    base = rng.beta(2, 20, N)
    lift = rng.uniform(-0.01, 0.08, (N, 4)) * np.array([0.5, 1.0, 0.3, 0.8])
    p = np.clip(np.column_stack([base, base[:, None] + lift]), 0, 1)
    df = pd.DataFrame({"user_id": rng.permutation(N * 3)[:N].astype(np.int64), "value": rng.lognormal(4, 0.5, N)})
    for k, arm in enumerate(make_config().arm_names):
        df[f"p_{arm}"] = p[:, k]
    path = tmp_path_factory.mktemp("scores") / "scores.parquet"
    df.to_parquet(path, row_group_size=3000)  # several input splits, read in file order
    return path, df


@pytest.fixture
def reduced_everywhere(monkeypatch):
    """The single-machine dual takes its reduced path above DIRECT users, like the Spark run."""
    monkeypatch.setitem(dual.solve_dual.__kwdefaults__, "direct_limit", DIRECT)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("objective,constraints", [
    ("conversions", {"budget": 900.0, "min_roi": 4.0}),  # both bind
    pytest.param("conversions", {"budget": 1500.0}, marks=pytest.mark.slow),
    ("net_revenue", {"min_roi": 6.0}),  # ROI floor alone
])
def test_distributed_allocation_equals_single_machine(spark, scores_file, reduced_everywhere, tmp_path,
                                                      objective, constraints) -> None:
    from promo_opt.evaluation.heldout import ForecastCorrection

    path, scores = scores_file
    cfg = make_config(**constraints).model_copy(update={"objective": objective})
    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    # a model whose held-out returns beat its expectations by 10% and whose users cost 20% more than it says:
    # both engines hold the floor and the budget on the forecast
    # and, under net_revenue, whose twin found the break-even at 0.84x the cost
    corr = {"applied": True, **ForecastCorrection(ratio={**one, "incremental_revenue": 1.1, "spend": 1.2},
                                                  raw_ratio=dict(one), ratio_se=dict(one), cost_weight=0.84).as_dict()}
    local = pipeline.allocate(cfg, scores, correction=corr)
    out = spark_allocate.allocate(spark, cfg, spark.read.parquet(str(path)), str(tmp_path / "targets.parquet"),
                                  direct_limit=DIRECT, partitions=3, correction=corr)
    s, ls = out.summary, local.summary
    assert s["min_roi"] == ls["min_roi"] == constraints.get("min_roi")
    assert s["allocated_min_roi"] == ls["allocated_min_roi"]
    assert ls["allocated_min_roi"] == (pytest.approx(constraints["min_roi"] * 1.2 / 1.1) if "min_roi" in constraints else None)
    assert s["budget"] == ls["budget"] == constraints.get("budget")
    assert s["allocated_budget"] == ls["allocated_budget"]
    assert ls["allocated_budget"] == (pytest.approx(constraints["budget"] / 1.2) if "budget" in constraints else None)
    assert s.get("allocated_cost_weight") == ls.get("allocated_cost_weight") == (0.84 if objective == "net_revenue" else None)
    # what stops the spending, and the warning where it is under half the budget, as on one machine
    if "budget" in constraints:
        use, luse = s["budget_use"], ls["budget_use"]
        assert use["share"] == pytest.approx(luse["share"], rel=1e-9)
        assert {k: v for k, v in use.items() if k != "share"} == {k: v for k, v in luse.items() if k != "share"}
    else:
        assert "budget_use" not in s and "budget_use" not in ls
    assert s["reduction"].startswith("reduced") and "free users" in s["reduction"]
    assert ls["solver"] == s["solver"] == "dual"
    targets = pd.read_parquet(tmp_path / "targets.parquet")
    assert len(targets) == N
    targets = targets.set_index("user_id").loc[local.targets["user_id"]]
    np.testing.assert_array_equal(targets["arm"].astype(str).to_numpy(), local.targets["arm"].to_numpy())
    np.testing.assert_array_equal(targets["holdout"].to_numpy(), local.targets["holdout"].to_numpy())
    np.testing.assert_allclose(targets["expected_cost"].to_numpy(), local.targets["expected_cost"].to_numpy(), rtol=1e-15)
    for key in ("incremental_conversions", "incremental_revenue", "spend"):
        assert rel(s["expected"][key], ls["expected"][key]) < 1e-9, key
    assert rel(s["lp_upper_bound"], ls["lp_upper_bound"]) < 1e-9
    assert abs(s["gap"] - ls["gap"]) < 1e-9
    assert s["users_per_arm"] == ls["users_per_arm"]
    assert s["n_fractional_rounded"] == ls["n_fractional_rounded"]
    assert s["multipliers"] == pytest.approx(ls["multipliers"], rel=1e-9, abs=1e-15)
    assert sum(v > 0 for v in s["users_per_arm"].values()) >= 3  # a real allocation, not all-control
    names = [p["name"] for p in s["spark"]["passes"]]
    assert names[:2] == ["count rows", "number rows, check ids unique"] and "dual bound" in names
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp directories left


def test_distributed_guarantee_mode_equals_single_machine(spark, scores_file, reduced_everywhere, tmp_path) -> None:
    """constraints.min_roi_confidence on the distributed path: the floor raised as one machine raises it
    (the same policy, floor and probability), not the plain floor."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    path, scores = scores_file
    cfg = make_config(min_roi=6.0, min_roi_confidence=0.9)
    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    cov = [[0.0, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 0.0, 0.0009]]  # revenue ratio se 0.1, spend 0.03
    corr = {"applied": True, **ForecastCorrection(ratio=dict(one), raw_ratio=dict(one), ratio_se=dict(one),
                                                  ratio_cov=cov).as_dict()}
    local = pipeline.allocate(cfg, scores, correction=corr)
    out = spark_allocate.allocate(spark, cfg, spark.read.parquet(str(path)), str(tmp_path / "targets.parquet"),
                                  direct_limit=DIRECT, partitions=3, correction=corr)
    s, ls = out.summary, local.summary
    assert s["reduction"].startswith("reduced")
    g, lg = s["roi_guarantee"], ls["roi_guarantee"]
    assert lg["plain_floor_probability"] < 0.9 <= lg["achieved_probability"] and lg["allocated_min_roi"] > 6.0
    for k in ("achieved_probability", "plain_floor_probability", "allocated_min_roi"):
        assert g[k] == pytest.approx(lg[k], rel=1e-9), k
    assert s["allocated_min_roi"] == pytest.approx(ls["allocated_min_roi"], rel=1e-12)
    targets = pd.read_parquet(tmp_path / "targets.parquet").set_index("user_id").loc[local.targets["user_id"]]
    np.testing.assert_array_equal(targets["arm"].astype(str).to_numpy(), local.targets["arm"].to_numpy())
    assert rel(s["expected"]["spend"], ls["expected"]["spend"]) < 1e-9


def test_plan_in_guarantee_mode_on_both_paths_equals_single_machine(spark, scores_file, reduced_everywhere) -> None:
    """The guarantee's floor is held once: the direct path used to hand the held floor back to the core's plan,
    which held it again without the model's measurement and refused ("needs the model's held-out measurement")."""
    from promo_opt.evaluation.heldout import ForecastCorrection

    path, scores = scores_file
    cfg = make_config(min_roi=6.0, min_roi_confidence=0.9)
    one = {"incremental_conversions": 1.0, "incremental_revenue": 1.0, "spend": 1.0}
    cov = [[0.0, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 0.0, 0.0009]]
    corr = {"applied": True, **ForecastCorrection(ratio=dict(one), raw_ratio=dict(one), ratio_se=dict(one),
                                                  ratio_cov=cov).as_dict()}
    budgets = [0.0, 300.0, 1000.0, 6000.0]
    local = pipeline.plan(cfg, scores, budgets, correction=corr)
    assert local["roi"].iloc[-1] > 6.0 * 1.05  # the guarantee's floor, not the plain one, binds at large budgets
    for limit in (None, DIRECT):  # the direct path (all users collected) and the distributed one
        curve, _ = spark_plan.plan(spark, cfg, spark.read.parquet(str(path)), budgets, direct_limit=limit, n_bins=64,
                                   correction=corr)
        for col in ("spend", "incremental_conversions", "roi"):
            np.testing.assert_allclose(curve[col].to_numpy(dtype=float), local[col].to_numpy(dtype=float), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{col}, direct_limit {limit}")


def test_plan_refuses_a_floor_no_user_reaches_on_both_paths(spark, scores_file, reduced_everywhere) -> None:
    """As allocate refuses it: a curve of zeros at every budget would not say why."""
    path, scores = scores_file
    cfg = make_config(min_roi=1e6)
    msg = "min_roi 1e\\+06 is above the best ROI any user x arm reaches"
    with pytest.raises(InfeasibleError, match=msg):
        pipeline.plan(cfg, scores, [100.0])
    for limit in (None, DIRECT):
        with pytest.raises(InfeasibleError, match=msg):
            spark_plan.plan(spark, cfg, spark.read.parquet(str(path)), [100.0], direct_limit=limit, n_bins=64)


def test_small_problem_is_collected_and_solved_by_the_core(spark, scores_file, tmp_path) -> None:
    """Below the direct limit the engine does what one machine does: identical, bit for bit."""
    path, scores = scores_file
    cfg = make_config(budget=700.0, min_roi=5.0)
    local = pipeline.allocate(cfg, scores)
    out = spark_allocate.allocate(spark, cfg, spark.read.parquet(str(path)), str(tmp_path / "t.parquet"))
    assert out.summary["lp_upper_bound"] == local.summary["lp_upper_bound"]
    assert out.summary["expected"] == local.summary["expected"]
    got = pd.read_parquet(tmp_path / "t.parquet").set_index("user_id").loc[local.targets["user_id"]]
    np.testing.assert_array_equal(got["arm"].astype(str).to_numpy(), local.targets["arm"].to_numpy())


def test_plan_equals_single_machine(spark, scores_file, reduced_everywhere) -> None:
    """Budget curve with an ROI floor that forces re-solved rows, on the distributed path."""
    path, scores = scores_file
    cfg = make_config(budget=1000.0, min_roi=5.0)
    budgets = [0.0, 300.0, 1000.0, 2500.0, 6000.0, 40000.0]
    local = pipeline.plan(cfg, scores, budgets)
    curve, passes = spark_plan.plan(spark, cfg, spark.read.parquet(str(path)), budgets, direct_limit=DIRECT,
                                    n_bins=64)
    assert any(p["name"] == "slope bins: sums" for p in passes)
    assert local["resolved"].any() and (~local["resolved"]).sum() >= 3
    assert list(curve.columns) == list(local.columns)
    pd.testing.assert_series_equal(curve["resolved"], local["resolved"])
    users = [c for c in local.columns if c.startswith("users_")]
    np.testing.assert_array_equal(curve[users].to_numpy(), local[users].to_numpy())
    for col in ("spend", "incremental_conversions", "incremental_revenue", "objective", "marginal_gain_per_unit"):
        np.testing.assert_allclose(curve[col].to_numpy(), local[col].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=col)
    # with a model's held-out measurement both engines hold the same floor and forecast every point alike
    from promo_opt.evaluation.heldout import ForecastCorrection

    ones = {k: 1.0 for k in ("incremental_conversions", "incremental_revenue", "spend")}
    corr = {"applied": True, **ForecastCorrection(
        ratio={**ones, "incremental_conversions": 0.8, "spend": 1.2}, raw_ratio={**ones, "incremental_conversions": 0.75},
        ratio_se={k: 0.1 for k in ones}, ratio_cov=(np.eye(3) * 0.01).tolist()).as_dict()}
    local = pipeline.plan(cfg, scores, budgets, correction=corr)
    curve, _ = spark_plan.plan(spark, cfg, spark.read.parquet(str(path)), budgets, direct_limit=DIRECT, n_bins=64,
                               correction=corr)
    assert list(curve.columns) == list(local.columns) and set(pipeline.FORECAST_COLUMNS) <= set(curve.columns)
    assert curve["budget"].tolist() == local["budget"].tolist() == budgets  # each budget held at budget / 1.2
    assert (curve["spend"] <= curve["budget"] / 1.2 * (1 + 1e-9)).all() and curve["spend"].iloc[2] > 1000.0 / 1.2 * 0.99
    for col in ("spend", "incremental_conversions"):
        np.testing.assert_allclose(curve[col].to_numpy(), local[col].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=col)
    for col in pipeline.FORECAST_COLUMNS:
        np.testing.assert_allclose(curve[col].to_numpy(dtype=float), local[col].to_numpy(dtype=float), rtol=1e-9,
                                   atol=1e-12, err_msg=col)
    # under net_revenue both engines hold the break-even the twin found (0.84x the cost): more users than at 1
    net = make_config(budget=1000.0).model_copy(update={"objective": "net_revenue"})  # no floor: the break-even binds
    weighted = {**corr, "cost_weight": 0.84}
    local = pipeline.plan(net, scores, budgets, correction=weighted)
    curve, _ = spark_plan.plan(spark, net, spark.read.parquet(str(path)), budgets, direct_limit=DIRECT, n_bins=64,
                               correction=weighted)
    for col in ("spend", "incremental_conversions", "objective"):
        np.testing.assert_allclose(curve[col].to_numpy(), local[col].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=col)
    assert local["spend"].iloc[-1] > pipeline.plan(net, scores, budgets, correction=corr)["spend"].iloc[-1]


def test_infeasible_roi_floor_and_bad_scores_name_the_problem(spark, scores_file, tmp_path) -> None:
    path, scores = scores_file
    with pytest.raises(InfeasibleError, match="min_roi 1e\\+06 is above the best ROI"):
        spark_allocate.allocate(spark, make_config(budget=100.0, min_roi=1e6), spark.read.parquet(str(path)),
                                str(tmp_path / "t.parquet"), direct_limit=DIRECT)
    bad = scores.copy()
    bad.loc[N - 5, "p_pct10"] = 1.5
    bad.to_parquet(tmp_path / "bad.parquet")
    msg = r"column 'p_pct10' row \d+ is 1.5; expected a probability in \[0, 1\] \(row numbers from input row \d+\)"
    with pytest.raises(DataError, match=msg):
        spark_allocate.allocate(spark, make_config(budget=100.0), spark.read.parquet(str(tmp_path / "bad.parquet")),
                                str(tmp_path / "t.parquet"), direct_limit=DIRECT)
    dup = scores.copy()
    dup.loc[N - 1, "user_id"] = dup.loc[0, "user_id"]
    dup.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="column 'user_id' has repeated ids"):
        spark_allocate.allocate(spark, make_config(budget=100.0), spark.read.parquet(str(tmp_path / "dup.parquet")),
                                str(tmp_path / "t.parquet"))
    assert not (tmp_path / "t.parquet").exists()


def test_side_constraints_beyond_the_exact_limit_are_refused(spark, scores_file, tmp_path, monkeypatch) -> None:
    path, _ = scores_file
    raw_arms = [dict(a) for a in ARMS]
    raw_arms[2]["max_users"] = 100
    cfg = parse_config({"data": {"id": "user_id", "value": "order_value"}, "arms": raw_arms,
                        "constraints": {"budget": 500.0}})
    monkeypatch.setattr(spark_allocate, "EXACT_AUTO_LIMIT", 1000)
    with pytest.raises(PromoOptError, match="need the exact single-machine solver"):
        spark_allocate.allocate(spark, cfg, spark.read.parquet(str(path)), str(tmp_path / "t.parquet"))
    assert not (tmp_path / "t.parquet").exists()
    with pytest.raises(PromoOptError, match="need the exact single-machine solver"):
        spark_plan.plan(spark, cfg, spark.read.parquet(str(path)), [500.0])


def test_plan_under_caps_is_the_cores_exact_plan(spark, scores_file, tmp_path) -> None:
    """Arm caps on Spark: the scores collected and planned by the core (an exact allocation per budget), the same
    curve as one machine's; a Spark run's report curve used to stop there ("plan covers the budget and the ROI
    floor") after training, scoring and allocating."""
    _, scores = scores_file
    small = tmp_path / "small.parquet"
    scores.iloc[:1500].to_parquet(small)
    raw_arms = [dict(a) for a in ARMS]
    raw_arms[2]["max_users"] = 30
    cfg = parse_config({"data": {"id": "user_id", "value": "order_value"}, "arms": raw_arms,
                        "constraints": {"budget": 300.0}, "holdout": {"fraction": 0.1}, "seed": 5})
    budgets = [0.0, 300.0, 900.0]
    local = pipeline.plan(cfg, scores.iloc[:1500], budgets)
    curve, passes = spark_plan.plan(spark, cfg, spark.read.parquet(str(small)), budgets)
    assert any(p["name"] == "collect on the driver" for p in passes)
    assert list(curve.columns) == list(local.columns) and "gap" in curve
    assert (curve["users_pct10"] <= 30).all() and curve["users_pct10"].iloc[-1] == 30  # the cap binds
    for col in ("spend", "incremental_conversions", "users_pct10"):
        np.testing.assert_allclose(curve[col].to_numpy(dtype=float), local[col].to_numpy(dtype=float), rtol=1e-9,
                                   err_msg=col)


def test_failed_write_leaves_the_previous_output_untouched(spark, tmp_path) -> None:
    dest = str(tmp_path / "out.parquet")
    first = spark.createDataFrame(pd.DataFrame({"arm": ["a", "b"] * 50, "x": np.arange(100.0)}))
    write_parquet_atomic(spark, first, dest, ["arm"])
    assert (tmp_path / "out.parquet" / "_SUCCESS").exists()

    def explode(it):
        from pyspark import TaskContext

        for b in it:
            if TaskContext.get().partitionId() == 3:
                raise DataError("forced failure in partition 3")
            yield b

    failing = spark.range(0, 4000, numPartitions=4).selectExpr("cast(id % 3 as string) as arm", "cast(id as double) as x")
    with pytest.raises(Exception, match="forced failure in partition 3"):
        write_parquet_atomic(spark, failing.mapInPandas(explode, failing.schema), dest, ["arm"])
    back = pd.read_parquet(dest)
    assert len(back) == 100 and sorted(back["x"]) == list(np.arange(100.0))  # the old output, whole
    assert os.listdir(tmp_path) == ["out.parquet"]  # no temporary directory left behind


def test_scoring_on_spark_equals_the_local_scorer(spark, small_campaign, tmp_path) -> None:
    from promo_opt.spark import score as spark_score

    cfg = load_config(small_campaign, **{"model.learner": "pooled", "model.folds": 2})
    model = pipeline.train(cfg)
    local = pipeline.score_candidates(cfg, model)
    cands = pd.read_csv(cfg.data.candidates)
    cands.to_parquet(tmp_path / "cands.parquet", row_group_size=700)
    got = spark_score.score(spark, cfg, model, spark.read.parquet(str(tmp_path / "cands.parquet"))).toPandas()
    assert list(got.columns) == list(local.columns)
    np.testing.assert_array_equal(got[cfg.data.id].to_numpy(), local[cfg.data.id].to_numpy())
    for col in local.columns[1:]:
        np.testing.assert_allclose(got[col].to_numpy(), local[col].to_numpy(), rtol=1e-12, err_msg=col)


def test_cli_allocate_and_plan_with_engine_spark(spark, scores_file, tmp_path) -> None:
    from typer.testing import CliRunner

    from promo_opt.cli import app

    path, scores = scores_file
    cfg_path = tmp_path / "campaign.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "name": "synthetic", "data": {"id": "user_id", "value": "order_value"}, "arms": ARMS,
        "constraints": {"budget": 800.0}, "holdout": {"fraction": 0.1}, "seed": 5,
        "spark": {"master": "local[2]", "scores": str(path), "partition_by": ["arm", "holdout"]}}))
    runner = CliRunner()
    res = runner.invoke(app, ["allocate", str(cfg_path), "--scores", str(path), "--out", str(tmp_path / "o"),
                              "--engine", "spark"])
    assert res.exit_code == 0, res.output
    assert "spark passes" in res.output
    local = pipeline.allocate(load_config(cfg_path), scores)
    got = pd.read_parquet(tmp_path / "o" / "targets.parquet")
    assert sorted(p.name for p in (tmp_path / "o" / "targets.parquet").iterdir() if p.is_dir()) == [
        f"arm={a}" for a in sorted(a for a, n in local.summary["users_per_arm"].items() if n)]
    assert (got["arm"].astype(str).value_counts().to_dict()
            == {a: n for a, n in local.summary["users_per_arm"].items() if n})
    res = runner.invoke(app, ["plan", str(cfg_path), "--scores", str(path), "--out", str(tmp_path / "p"),
                              "--budgets", "0,800", "--engine", "spark"])
    assert res.exit_code == 0, res.output
    curve = pd.read_csv(tmp_path / "p" / "plan.csv")
    local_curve = pipeline.plan(load_config(cfg_path), scores, [0.0, 800.0])
    np.testing.assert_allclose(curve["objective"], local_curve["objective"], rtol=1e-9)
    res = runner.invoke(app, ["allocate", str(cfg_path), "--scores", str(path), "--out", str(tmp_path / "o"),
                              "--engine", "dask"])
    assert res.exit_code == 2 and "--engine 'dask': expected 'local' or 'spark'" in res.output


@pytest.mark.slow
def test_cli_run_with_engine_spark_matches_the_local_stages(spark, campaign_copy, tmp_path) -> None:
    """run --engine spark on the simulated campaign (CSV candidates) = local scoring + allocation."""
    from typer.testing import CliRunner

    from promo_opt.cli import app
    from promo_opt.model import TrainedModel
    from tests.conftest import write_config

    d, raw = campaign_copy
    raw["model"] = {"learner": "pooled", "folds": 2}
    raw["spark"] = {"master": "local[2]"}
    cfg_path = write_config(d, raw)
    res = CliRunner().invoke(app, ["run", str(cfg_path), "--out", str(tmp_path / "o"), "--engine", "spark"])
    assert res.exit_code == 0, res.output
    summary = yaml.safe_load((tmp_path / "o" / "summary.json").read_text())
    cfg = load_config(cfg_path)
    model = TrainedModel.load(tmp_path / "o" / "model", cfg)
    local = pipeline.allocate(cfg, pipeline.score_candidates(cfg, model),
                              correction=model.metrics["forecast_correction"])
    assert summary["users_per_arm"] == local.summary["users_per_arm"]
    for k in ("incremental_conversions", "spend"):  # the same corrected forecast and truth check
        assert rel(summary["forecast"][k], local.summary["forecast"][k]) < 1e-9
    from promo_opt.data import read_table
    from promo_opt.evaluation.truth import score_against_truth

    truth = score_against_truth(cfg, local.ids, local.arm, ~local.holdout, read_table(cfg.data.truth),
                                local.summary["expected"], local.budget, local.min_roi).as_dict()
    assert rel(summary["truth"]["share_of_oracle"], truth["share_of_oracle"]) < 1e-9
    assert rel(summary["lp_upper_bound"], local.summary["lp_upper_bound"]) < 1e-9
    assert (tmp_path / "o" / "targets.parquet" / "_SUCCESS").exists()
    assert len(pd.read_csv(tmp_path / "o" / "plan.csv")) == 41


def test_a_run_refused_after_scoring_leaves_the_previous_outputs_as_they_were(spark, campaign_copy, tmp_path) -> None:
    """A Spark run that trains and scores and is then refused (an ROI floor no user reaches, found at the
    allocation) writes nothing: the previous run's outputs stay, and no staged scores or list are left beside
    them. Before, the model and the scores of the refused run replaced the previous ones."""
    from promo_opt.errors import UnreachableFloor
    from promo_opt.spark import engine
    from tests.conftest import write_config

    d, raw = campaign_copy
    raw["model"] = {"learner": "pooled", "folds": 2}
    raw["spark"] = {"master": "local[2]"}
    raw["constraints"]["min_roi"] = 1e6
    cfg = load_config(write_config(d, raw))
    out = tmp_path / "o"
    before = {"summary.json": '{"previous": true}', "scores.parquet/part-0": "old scores",
              "targets.parquet/part-0": "old list", "model/model.joblib": "old model"}
    for name, text in before.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(UnreachableFloor, match="best ROI any user x arm reaches"):
        engine.run(cfg, out, spark=spark)
    after = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert after == before
