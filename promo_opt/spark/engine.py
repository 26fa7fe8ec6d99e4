"""The stages of a campaign on Spark, as the CLI's ``--engine spark`` calls them.

Inputs and outputs come from the config's ``spark:`` section (Parquet paths or ``table:<name>``),
else from the command line; results are typed, and written atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from promo_opt import pipeline
from promo_opt.config import CampaignConfig
from promo_opt.data import write_json, write_table
from promo_opt.errors import ConfigError
from promo_opt.model import TrainedModel
from promo_opt.spark import allocate as _allocate
from promo_opt.spark import plan as _plan
from promo_opt.spark import score as _score
from promo_opt.spark.output import discard, promote, staging_path, write_parquet_atomic
from promo_opt.spark.session import input_ref, read_input, spark_session, user_errors

log = logging.getLogger(__name__)


def _session(config: CampaignConfig):
    return spark_session(config.spark, app_name=f"promo-opt {config.name}")


def score(config: CampaignConfig, model: TrainedModel, out: str | None = None, spark=None) -> tuple[str, int]:
    """Score the candidates on Spark into Parquet ``out`` (default ``spark.scores``); (path, rows)."""
    spark = spark or _session(config)
    dest = str(out or config.spark.scores or "")
    if not dest:
        raise ConfigError("no output for the scores: give --out or set spark.scores")
    cands = read_input(spark, input_ref(config, "candidates"), "candidates", config.spark.partitions)
    frame = _score.score(spark, config, model, cands)
    t0 = time.perf_counter()
    with user_errors():
        n = write_parquet_atomic(spark, frame, dest, (), check=lambda tmp: spark.read.parquet(tmp).count())
    log.info("scored %d candidates into %s in %.2fs", n, dest, time.perf_counter() - t0)
    return dest, int(n)


def allocate(config: CampaignConfig, scores: str | None, out: Path, spark=None,
             correction: dict | None = None) -> _allocate.SparkAllocationOutcome:
    """Allocate from a scores table; the targeting list (partitioned Parquet) and summary.json.
    ``correction``: the model's winner's-curse correction (adds the summary's ``forecast``)."""
    spark = spark or _session(config)
    outcome = _allocation(config, str(scores) if scores else input_ref(config, "scores"),
                          config.spark.targets or str(Path(out) / "targets.parquet"), spark, correction)
    write_json(outcome.summary, Path(out) / "summary.json")
    return outcome


def _allocation(config: CampaignConfig, scores: str, targets: str, spark,
                correction: dict | None) -> _allocate.SparkAllocationOutcome:
    """The allocation of the scores table ``scores`` into the list at ``targets``, its summary with the
    forecast (written by the caller)."""
    outcome = _allocate.allocate(spark, config, read_input(spark, scores, "scores"), targets, correction=correction)
    s = outcome.summary
    treatable = max(int(s["n_candidates"]) - int(s["holdout_size"]), 1)
    forecast = pipeline.corrected_forecast(s["expected"], correction, config.objective, s.get("budget"), treatable)
    if forecast is not None:
        outcome.summary["forecast"] = forecast
    return outcome


def truth_check(config: CampaignConfig, targets_path: str, summary: dict) -> dict:
    """The simulated-truth check of :func:`promo_opt.pipeline.run` on the Spark targeting list.

    Simulated worlds are small enough to read the list (id, arm, holdout) into memory; the oracle
    faces the budget and ROI floor (and arm caps), not segment budgets.
    """
    from promo_opt.data import read_table
    from promo_opt.evaluation.ope import policy_from_targets
    from promo_opt.evaluation.truth import score_against_truth

    id_col = config.data.id
    t = pd.read_parquet(targets_path, columns=[id_col, "arm", "holdout"])
    ids = t[id_col].to_numpy()
    arm = policy_from_targets(config, t, ids, what=f"targets {targets_path}")
    report = score_against_truth(config, ids, arm, ~t["holdout"].to_numpy(dtype=bool),
                                 read_table(config.data.truth, "truth"), summary["expected"], summary["budget"],
                                 summary["min_roi"], forecast=summary.get("forecast"))
    return report.as_dict()


def plan(config: CampaignConfig, scores: str | None, out: Path, budgets=None, spark=None,
         correction: dict | None = None) -> pd.DataFrame:
    """The budget curve from a scores table (the caller writes it); the passes go to plan_passes.json."""
    spark = spark or _session(config)
    ref = str(scores) if scores else input_ref(config, "scores")
    curve, passes = _plan.plan(spark, config, read_input(spark, ref, "scores"), budgets, correction=correction)
    write_json({"engine": "spark", "passes": passes}, Path(out) / "plan_passes.json")
    return curve


@dataclass
class SparkRunResult:
    summary: dict
    curve: pd.DataFrame
    out: Path


def run(config: CampaignConfig, out: Path, spark=None) -> SparkRunResult:
    """Train on this machine, then score, allocate and plan on Spark; the outputs land only when all succeeded.

    Outputs in ``out``: model/, scores.parquet/ (unless spark.scores), targets.parquet/ (unless
    spark.targets), plan.csv, summary.json, report.html. The scores and the list are written to hidden paths
    beside their destinations (:func:`promo_opt.spark.output.staging_path`) and moved there after the last
    stage; a refusal on the way (an ROI floor no user reaches, arm caps beyond the exact solver's size)
    deletes them and leaves every destination as it was, as the local ``run`` does. On a simulated world
    (``data.truth``) the truth check of the local engine is added (:func:`truth_check`), unless segment
    budgets are set (its oracle does not model them here).
    """
    from promo_opt.data import write_bytes
    from promo_opt.report.html import render_report

    out = Path(out)
    input_ref(config, "candidates")  # a missing or unreadable input fails before the training
    t = {}
    t0 = time.perf_counter()
    model = pipeline.train(config)
    t["train"] = time.perf_counter() - t0
    spark = spark or _session(config)
    dests = {"scores": config.spark.scores or str(out / "scores.parquet"),
             "targets": config.spark.targets or str(out / "targets.parquet")}
    staged = {k: staging_path(spark, d) for k, d in dests.items()}
    correction = model.metrics.get("forecast_correction")
    try:
        t0 = time.perf_counter()
        score(config, model, staged["scores"], spark)
        t["score"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        outcome = _allocation(config, staged["scores"], staged["targets"], spark, correction)
        t["allocate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        budgets = pipeline.report_budgets(config, outcome.summary["budget"])
        curve, plan_passes = _plan.plan(spark, config, read_input(spark, staged["scores"], "scores"), budgets,
                                        min_roi=outcome.summary["min_roi"], n_points=41, correction=correction)
        t["plan"] = time.perf_counter() - t0
        summary = dict(outcome.summary)
        summary["learner"] = model.metrics["selection"]["chosen"]
        summary["spark"] = {**summary["spark"], "plan_passes": plan_passes, "targets": dests["targets"]}
        if config.data.truth is not None and not config.constraints.segment_budgets:
            t0 = time.perf_counter()
            summary["truth"] = truth_check(config, staged["targets"], summary)
            t["truth"] = time.perf_counter() - t0
        summary["seconds"] = {**t, "total": sum(t.values())}
        html = render_report(summary, curve, model.metrics)
    except BaseException:
        for path in staged.values():
            discard(spark, path)
        raise
    for k, path in staged.items():
        promote(spark, path, dests[k])
    model.save(out / "model", config)
    write_table(curve, out / "plan.csv")
    write_json(summary, out / "summary.json")
    write_bytes(html.encode(), out / "report.html")
    return SparkRunResult(summary=summary, curve=curve, out=out)
