"""Winner's curse: expected vs realized incremental conversions and spend of the chosen policy,
without and with the cross-fitted uplift calibration (``model.calibrate``), in simulated worlds.

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
    out = pipeline.allocate(cfg, scores)
    truth = read_table(cfg.data.truth)
    d = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"], out.budget,
                            out.min_roi).as_dict()
    e, t = out.summary["expected"], d["policy_true"]
    return {"learner": model.metrics["selection"]["chosen"], "seconds": time.perf_counter() - t0,
            "expected_conversions": e["incremental_conversions"], "true_conversions": t["incremental_conversions"],
            "expected_spend": e["spend"], "true_spend": t["spend"], "budget": out.budget,
            "share_of_oracle": d["share_of_oracle"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default="travel,retail_vouchers")
    ap.add_argument("--learner", default="pooled")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--n-candidates", type=int, default=20000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default=str(ROOT / "reports" / "winners_curse"))
    args = ap.parse_args()
    rows = []
    for world in args.worlds.split(","):
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as d:
                path = load_world(world).write_campaign(d, seed=seed, n_train=args.n_train,
                                                        n_candidates=args.n_candidates)
                for cal in (False, True):
                    cfg = load_config(path, **{"model.learner": args.learner, "model.folds": args.folds,
                                               "model.calibrate": cal, "seed": seed})
                    r = {"world": world, "seed": seed, "calibrate": cal, **measure(cfg)}
                    rows.append(r)
                    print(f"{world:16s} seed {seed} calibrate={cal!s:5s} expected/true conv "
                          f"{r['expected_conversions'] / r['true_conversions']:.3f} spend "
                          f"{r['expected_spend'] / r['true_spend']:.3f} share of oracle {r['share_of_oracle']:.3f}",
                          flush=True)
    write_json({"command": " ".join(sys.argv), "rows": rows}, Path(args.out).with_suffix(".json"))
    lines = ["# Winner's curse: expected vs true (simulated) results of the chosen policy", "",
             f"`nice .venv/bin/python benchmarks/winners_curse.py {' '.join(sys.argv[1:])}`: learner "
             f"{args.learner}, {args.folds} folds, {args.n_train:,} past users, {args.n_candidates:,} candidates. "
             "calibrate = the cross-fitted Platt + uplift-slope calibration (promo_opt.learners.honest). Ratios "
             "expected/true: 1 = honest forecast, > 1 = overstated (the winner's curse).", "",
             "| world | seed | calibrate | expected conv | true conv | expected/true conv | expected spend | "
             "true spend | expected/true spend | true spend / budget | share of oracle |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['world']} | {r['seed']} | {r['calibrate']} | {r['expected_conversions']:.1f} | "
                     f"{r['true_conversions']:.1f} | {r['expected_conversions'] / r['true_conversions']:.3f} | "
                     f"{r['expected_spend']:.0f} | {r['true_spend']:.0f} | {r['expected_spend'] / r['true_spend']:.3f} | "
                     + (f"{r['true_spend'] / r['budget']:.3f}" if r["budget"] else "-")
                     + f" | {r['share_of_oracle']:.3f} |")
    for cal in (False, True):
        sel = [r for r in rows if r["calibrate"] == cal]
        gc = np.mean([abs(r["expected_conversions"] / r["true_conversions"] - 1) for r in sel])
        gs = np.mean([abs(r["expected_spend"] / r["true_spend"] - 1) for r in sel])
        lines.append(f"\ncalibrate={cal}: mean |expected/true - 1| conversions {gc:.3f}, spend {gs:.3f}")
    write_bytes(("\n".join(lines) + "\n").encode(), Path(args.out).with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
