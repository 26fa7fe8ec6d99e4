"""Spark engine benchmark: local mode on this machine against the single-machine engine.

    .venv/bin/python benchmarks/bench_spark.py --users 1000000            # one size
    .venv/bin/python benchmarks/bench_spark.py --users 250000 1000000      # several (per-size rows)

Data: the ``travel`` world with a fifth arm (a 30% discount) so every user has 5 arms; a model
(pooled LightGBM, 2 folds) trained on 20,000 simulated past users; ``--users`` candidates drawn
from the world in chunks into one Parquet file (row groups of 100k). Per size, the same data
goes through both engines:

* score: ``pipeline.score_candidates`` on the whole table vs the Spark scorer (broadcast model,
  ``mapInPandas``) writing partitioned Parquet;
* allocate: ``pipeline.allocate`` vs the Spark dual on the *same* scores file (the local engine's
  scores, one Parquet file, so both see the same rows in the same order); the arms are compared
  user by user. Budget: 30% of the spend of giving everyone the dearest arm (the world's default);
  ROI floor: 1.2 x the ROI of the budget-only policy, so both constraints bind;
* plan: ``pipeline.plan`` vs the Spark budget curve, 21 budgets from 0 to twice the campaign's.

Results: ``reports/bench_spark.json`` (and ``.md``): seconds per stage and engine, the passes of
the Spark run with their times, the agreement checks, rows per second per core.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.simulation.world import parse_world  # noqa: E402

log = logging.getLogger("bench_spark")


def five_arm_world():
    """The travel world plus a 30% discount arm (5 arms: control + 4 discounts)."""
    raw = yaml.safe_load((ROOT / "scenarios" / "travel.yaml").read_text())
    raw["arms"].append({"name": "pct30", "discount": 0.30})
    lift = {"price_sensitive": 1.7, "would_book_anyway": 0.07, "indifferent": 0.05}
    for t in raw["types"]:
        t["arm_lift"]["pct30"] = lift[t["name"]]
    return parse_world(raw, source="travel + pct30")


def write_candidates(world, n: int, path: Path, chunk: int = 250_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        f = world.sample(m, seed=1000 + i, population="candidates").features
        f["user_id"] = np.arange(start, start + m, dtype=np.int64)
        table = pa.Table.from_pandas(f, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    writer.close()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def one_size(n: int, work: Path, cfg, model, spark, partitions: int, plan: bool = True) -> dict:
    from promo_opt.data import prepare_candidates
    from promo_opt.spark import allocate as sa
    from promo_opt.spark import plan as sp
    from promo_opt.spark import score as ss
    from promo_opt.spark.output import write_parquet_atomic

    cands_path = work / f"candidates_{n}.parquet"
    _, t_gen = timed(lambda: write_candidates(five_arm_world(), n, cands_path))
    log.info("n=%d: candidates written in %.1fs", n, t_gen)
    row = {"users": n, "arms": len(cfg.arm_names), "partitions": partitions}

    # score
    cands = pd.read_parquet(cands_path)
    scores, row["local_score_s"] = timed(lambda: pipeline.score_candidates(
        cfg, model, prepare_candidates(cfg, cands, model.features)))
    cands = None  # free it before Spark runs (the lambda above has run)
    scores_path = work / f"scores_{n}.parquet"
    scores.to_parquet(scores_path, row_group_size=100_000)
    sdf = spark.read.parquet(str(cands_path)).repartition(partitions)
    frame = ss.score(spark, cfg, model, sdf)
    _, row["spark_score_s"] = timed(lambda: write_parquet_atomic(spark, frame, str(work / f"spark_scores_{n}"), ()))
    log.info("score: local %.1fs, spark %.1fs", row["local_score_s"], row["spark_score_s"])

    # allocate: the same scores file for both engines; the ROI floor 1.2 x the budget-only ROI, so it binds
    roi = pipeline.allocate(cfg, scores).summary["expected"]["roi"]
    cfg = cfg.model_copy(update={"constraints": cfg.constraints.model_copy(update={"min_roi": round(1.2 * roi, 4)})})
    row["budget"], row["min_roi"] = cfg.constraints.budget, cfg.constraints.min_roi
    local, row["local_allocate_s"] = timed(lambda: pipeline.allocate(cfg, scores))
    targets = str(work / f"targets_{n}")
    out, row["spark_allocate_s"] = timed(lambda: sa.allocate(spark, cfg, spark.read.parquet(str(scores_path)), targets,
                                                             partitions=partitions))
    got = pd.read_parquet(targets, columns=["user_id", "arm"])
    got = got.set_index("user_id")["arm"].astype(str).reindex(local.targets["user_id"]).to_numpy()
    s, ls = out.summary, local.summary
    row.update({
        "same_arm_every_user": bool((got == local.targets["arm"].to_numpy()).all()),
        "users_with_other_arm": int((got != local.targets["arm"].to_numpy()).sum()),
        "objective_rel_diff": abs(s["expected"]["incremental_conversions"] - ls["expected"]["incremental_conversions"])
        / max(abs(ls["expected"]["incremental_conversions"]), 1e-12),
        "bound_rel_diff": abs(s["lp_upper_bound"] - ls["lp_upper_bound"]) / max(abs(ls["lp_upper_bound"]), 1e-12),
        "gap_local": ls["gap"], "gap_spark": s["gap"], "reduction": s.get("reduction"),
        "spark_passes": s["spark"]["passes"],
    })
    log.info("allocate: local %.1fs, spark %.1fs, same arms: %s", row["local_allocate_s"], row["spark_allocate_s"],
             row["same_arm_every_user"])

    if not plan:
        return row
    # plan
    budgets = np.linspace(0.0, 2.0 * cfg.constraints.budget, 21)
    lp, row["local_plan_s"] = timed(lambda: pipeline.plan(cfg, scores, budgets))
    (sc, plan_passes), row["spark_plan_s"] = timed(lambda: sp.plan(spark, cfg, spark.read.parquet(str(scores_path)),
                                                                   budgets, partitions=partitions))
    users = [c for c in lp.columns if c.startswith("users_")]
    row["plan_same_counts"] = bool((lp[users].to_numpy() == sc[users].to_numpy()).all())
    row["plan_objective_max_rel_diff"] = float(np.max(np.abs(lp["objective"] - sc["objective"])
                                                      / np.maximum(np.abs(lp["objective"]), 1e-12)))
    row["spark_plan_passes"] = plan_passes
    log.info("plan: local %.1fs, spark %.1fs", row["local_plan_s"], row["spark_plan_s"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--rows-per-partition", type=int, default=250_000)
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--plan-up-to", type=int, default=5_000_000,
                    help="run the plan stage only for sizes up to this many users (it re-reads the scores 21x)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_spark.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)

    from promo_opt.config import SparkConfig
    from promo_opt.spark.session import spark_session

    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    world = five_arm_world()
    cfg_path = world.write_campaign(work / "campaign", seed=7, n_train=20_000, n_candidates=10_000)
    base = load_config(cfg_path, **{"model.learner": "pooled", "model.folds": 2})
    model, t_train = timed(lambda: pipeline.train(base))
    spark, t_start = timed(lambda: spark_session(SparkConfig(master="local[2]", conf={
        "spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": "8",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000"})))
    rows = []
    for n in args.users:
        cfg = base.model_copy(update={"constraints": base.constraints.model_copy(
            update={"budget": base.constraints.budget * n / 10_000})})
        rows.append(one_size(n, work, cfg, model, spark, max(2, n // args.rows_per_partition),
                             plan=n <= args.plan_up_to))
        rows[-1]["peak_rss_gb_driver_python"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    spark.stop()
    report = {
        "command": "benchmarks/bench_spark.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load_start, "load_average_at_end": os.getloadavg(), "note": "2 cores; see the load averages"},
        "master": "local[2]", "train_seconds": t_train, "spark_start_seconds": t_start,
        "sizes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    lines = ["| users | stage | local s | spark s | spark/local |", "|---|---|---|---|---|"]
    for r in rows:
        for st in ("score", "allocate", "plan"):
            if f"local_{st}_s" not in r:
                continue
            a, b = r[f"local_{st}_s"], r[f"spark_{st}_s"]
            lines.append(f"| {r['users']:,} | {st} | {a:.1f} | {b:.1f} | {b / a:.1f}x |")
    lines += ["", "| users | peak RSS of the driver's Python (GB) |", "|---|---|"]
    lines += [f"| {r['users']:,} | {r['peak_rss_gb_driver_python']:.1f} |" for r in rows]
    lines += ["", "| users | same arm for every user | objective rel. diff | bound rel. diff | gap | reduction |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['users']:,} | {r['same_arm_every_user']} | {r['objective_rel_diff']:.1e} | "
                     f"{r['bound_rel_diff']:.1e} | {r['gap_spark']:.1e} | {r['reduction']} |")
    for r in rows:
        lines += ["", f"Spark allocation passes at {r['users']:,} users:", "", "| pass | seconds | info |", "|---|---|---|"]
        for p in r["spark_passes"]:
            info = {k: v for k, v in p.items() if k not in ("pass", "name", "seconds")}
            lines.append(f"| {p['pass']}. {p['name']} | {p['seconds']:.1f} | {info or ''} |")
    md = "\n".join(["# Spark engine benchmark", "", f"`{report['command']}` (local[2], 1-minute load average "
                    f"{load_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} cores)", ""] + lines) + "\n"
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
