"""Policy quality in the built-in simulated worlds: true value vs the oracle's, true spend vs budget.

For each world (default size: ~100k past users, ~50k candidates) it runs the product's pipeline
(``model.learner: auto`` with calibration) and, as the reference measured in the same run, a plain
T-learner (one LightGBM classifier per arm, default-ish settings, no calibration), and prints the
share of the oracle's true objective, true spend / budget, true ROI / floor, and expected / true.

    .venv/bin/python benchmarks/quality.py [--worlds travel,retail_vouchers] [--min-roi R] [--out reports/quality.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import load_training, read_table, write_json  # noqa: E402
from promo_opt.evaluation.truth import score_against_truth  # noqa: E402
from promo_opt.simulation import available_worlds, load_world  # noqa: E402


class PlainTLearner:
    """The baseline the issue names: per-arm LGBMClassifier(n_estimators=200), no calibration."""

    learner = "plain-tlearner"
    calibration_ = None

    def __init__(self, n_arms, seed=0):
        self.n_arms, self.seed = n_arms, seed

    def fit(self, X, arm, y):
        self.models_ = [lgb.LGBMClassifier(n_estimators=200, verbose=-1, n_jobs=2, random_state=self.seed)
                        .fit(X[arm == k], y[arm == k]) for k in range(self.n_arms)]
        return self

    def predict_proba(self, X):
        return np.column_stack([m.predict_proba(X)[:, 1] for m in self.models_])


def evaluate(cfg, model):
    scores = pipeline.score_candidates(cfg, model)
    out = pipeline.allocate(cfg, scores)
    truth = read_table(cfg.data.truth)
    rep = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"], out.budget, out.min_roi)
    d = rep.as_dict()
    return {"share_of_oracle": d["share_of_oracle"], "true_spend_vs_budget": d.get("true_spend_vs_budget"),
            "true_roi_vs_floor": d.get("true_roi_vs_floor"),
            "expected_vs_true_conversions": d["expected_vs_true"]["incremental_conversions"],
            "expected_vs_true_spend": d["expected_vs_true"]["spend"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default="travel,retail_vouchers,subscription_drift")
    ap.add_argument("--min-roi", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports/quality.json")
    args = ap.parse_args()
    rows = []
    for world in args.worlds.split(","):
        if world not in available_worlds():
            raise SystemExit(f"unknown world {world!r}; known: {available_worlds()}")
        with tempfile.TemporaryDirectory() as d:
            path = load_world(world).write_campaign(d, seed=args.seed)
            cfg = load_config(path, **{"constraints.min_roi": args.min_roi})
            t0 = time.perf_counter()
            model = pipeline.train(cfg)
            secs = time.perf_counter() - t0
            ours = evaluate(cfg, model)
            # the baseline: same preprocessing and value model, plain T-learner for the uplift
            data, _ = load_training(cfg)
            Z = model.preprocessor.transform(data.X)
            model.uplift = PlainTLearner(len(cfg.arm_names), seed=args.seed).fit(Z, data.arm, data.converted)
            base = evaluate(cfg, model)
        rows.append({"world": world, "objective": cfg.objective, "min_roi": args.min_roi,
                     "learner": model.metrics["selection"]["chosen"], "train_seconds": secs,
                     "ours": ours, "plain_tlearner": base})
        print(f"{world:20s} learner={rows[-1]['learner']:16s} train {secs:5.0f}s")
        for name in ("ours", "plain_tlearner"):
            r = rows[-1][name]
            fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
            print(f"  {name:15s} share of oracle {fmt(r['share_of_oracle'])}  true spend/budget {fmt(r['true_spend_vs_budget'])}"
                  f"  true ROI/floor {fmt(r['true_roi_vs_floor'])}  expected/true conv {fmt(r['expected_vs_true_conversions'])}"
                  f"  spend {fmt(r['expected_vs_true_spend'])}", flush=True)
    write_json({"seed": args.seed, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
