"""Winner's curse: expected vs realized incremental conversions and spend of the chosen policy,
without and with the cross-fitted uplift calibration (``model.calibrate``), and the forecast
corrected by the policy's held-out-fold twin (``summary.forecast``,
:mod:`promo_opt.evaluation.heldout`), in simulated worlds.

The allocator picks the users whose estimated uplift is largest, so estimation noise is selected
for: what the model expects of its own policy overstates what the policy really does. In the
simulated worlds the truth is known, so "realized" here is the policy's TRUE incremental
conversions and spend (``score_against_truth``); the oracle's share is reported alongside.
A ratio expected/true of 1 is an honest forecast; > 1 is the curse.

    nice .venv/bin/python benchmarks/winners_curse.py [--worlds travel,retail_vouchers] [--learner pooled]
        [--n-train 30000] [--n-candidates 20000] [--seeds 0,1]

Writes reports/winners_curse.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import read_table, write_bytes, write_json  # noqa: E402
from promo_opt.evaluation.truth import score_against_truth  # noqa: E402
from promo_opt.simulation import load_world  # noqa: E402


def measure(cfg) -> dict:
    t0 = time.perf_counter()
    model = pipeline.train(cfg)
    scores = pipeline.score_candidates(cfg, model)
    out = pipeline.allocate(cfg, scores, correction=model.metrics["forecast_correction"])
    truth = read_table(cfg.data.truth)
    d = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"], out.budget,
                            out.min_roi, forecast=out.summary.get("forecast")).as_dict()
    e, t, f = out.summary["expected"], d["policy_true"], out.summary["forecast"]
    return {"learner": model.metrics["selection"]["chosen"], "seconds": time.perf_counter() - t0,
            "expected_conversions": e["incremental_conversions"], "true_conversions": t["incremental_conversions"],
            "forecast_conversions": f["incremental_conversions"], "forecast_spend": f["spend"],
            "expected_spend": e["spend"], "true_spend": t["spend"], "budget": out.budget,
            "share_of_oracle": d["share_of_oracle"], "ratio": f["ratio"],
            "raw_ratio": model.metrics["forecast_correction"]["raw_ratio"],
            "ratio_se": model.metrics["forecast_correction"]["ratio_se"],
            "true_spend_vs_budget": d.get("true_spend_vs_budget"), "expected_vs_true": d["expected_vs_true"],
            "forecast_vs_true": d["forecast_vs_true"]}


def _gap(rows, num: str, den: str) -> float:
    return float(np.mean([abs(r[num] / r[den] - 1) for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default="travel,retail_vouchers,subscription_drift")
    ap.add_argument("--learners", default="pooled,tlearner")
    ap.add_argument("--calibrate", default="false,true", help="model.calibrate settings to compare")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--n-candidates", type=int, default=20000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default=str(ROOT / "reports" / "winners_curse"))
    args = ap.parse_args()
    cals = [c.strip().lower() == "true" for c in args.calibrate.split(",")]
    rows = []
    for world in args.worlds.split(","):
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as d:
                path = load_world(world).write_campaign(d, seed=seed, n_train=args.n_train,
                                                        n_candidates=args.n_candidates)
                for learner in args.learners.split(","):
                    for cal in cals:
                        cfg = load_config(path, **{"model.learner": learner, "model.folds": args.folds,
                                                   "model.calibrate": cal, "seed": seed})
                        r = {"world": world, "seed": seed, "calibrate": cal, **measure(cfg)}
                        r["chosen"], r["learner"] = r["learner"], learner  # auto's pick, and the setting
                        rows.append(r)
                        print(f"{world:18s} seed {seed} {learner:10s} calibrate={cal!s:5s} conv expected/true "
                              f"{r['expected_conversions'] / r['true_conversions']:.3f} forecast/true "
                              f"{r['forecast_conversions'] / r['true_conversions']:.3f}; spend expected/true "
                              f"{r['expected_spend'] / r['true_spend']:.3f} forecast/true "
                              f"{r['forecast_spend'] / r['true_spend']:.3f}; oracle {r['share_of_oracle']:.3f}",
                              flush=True)
    write_json({"command": " ".join(sys.argv), "rows": rows}, Path(args.out).with_suffix(".json"))
    lines = ["# Winner's curse: expected and corrected forecast vs true (simulated) results of the chosen policy", "",
             f"`nice .venv/bin/python benchmarks/winners_curse.py {' '.join(sys.argv[1:])}`: {args.folds} folds, "
             f"{args.n_train:,} past users, {args.n_candidates:,} candidates per world and seed. "
             "expected = the model's own totals for its policy; forecast = expected x the shrunk realized/expected "
             "ratios of the same policy on held-out training folds (promo_opt.evaluation.heldout); true = the "
             "world's potential outcomes. calibrate = the cross-fitted Platt + uplift-slope calibration "
             "(promo_opt.learners.honest). Ratios: 1 = honest, > 1 = overstated (the winner's curse).", "",
             "| world | seed | learner | calibrate | true conv | expected/true conv | forecast/true conv | "
             "expected/true spend | forecast/true spend | true spend / budget | share of oracle |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['world']} | {r['seed']} | {r['learner']} | {r['calibrate']} | {r['true_conversions']:.1f} | "
                     f"{r['expected_conversions'] / r['true_conversions']:.3f} | "
                     f"{r['forecast_conversions'] / r['true_conversions']:.3f} | "
                     f"{r['expected_spend'] / r['true_spend']:.3f} | {r['forecast_spend'] / r['true_spend']:.3f} | "
                     + (f"{r['true_spend'] / r['budget']:.3f}" if r["budget"] else "-")
                     + f" | {r['share_of_oracle']:.3f} |")
    lines += ["", "Mean |ratio - 1| over worlds and seeds (0 = honest forecast):", "",
              "| learner | calibrate | runs | conv: expected | conv: forecast | spend: expected | spend: forecast | "
              "mean share of oracle |", "|---|---|---|---|---|---|---|---|"]
    for learner in args.learners.split(","):
        for cal in cals:
            sel = [r for r in rows if r["learner"] == learner and r["calibrate"] == cal]
            if sel:
                lines.append(f"| {learner} | {cal} | {len(sel)} | {_gap(sel, 'expected_conversions', 'true_conversions'):.3f} | "
                             f"{_gap(sel, 'forecast_conversions', 'true_conversions'):.3f} | "
                             f"{_gap(sel, 'expected_spend', 'true_spend'):.3f} | {_gap(sel, 'forecast_spend', 'true_spend'):.3f} | "
                             f"{np.mean([r['share_of_oracle'] for r in sel]):.3f} |")
    write_bytes(("\n".join(lines) + "\n").encode(), Path(args.out).with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
