"""A budget curve under an arm cap: each point searched to a proof against each stopped at ``CAPPED_GAP``.

``plan`` under arm caps or segment budgets is the exact allocation at each budget (``pipeline.capped_plan``).
Proving each point optimal can take most of ``auto``'s time limit where SCIP keeps finding slightly better
policies; the curve stops each search at a relative gap of ``pipeline.CAPPED_GAP`` (1e-4) instead. This benchmark
trains the default model on Artea's randomized campaign (``../shared/data/artea``, ``trans_after`` as a count
outcome, a coupon of 5 per transaction) with ``max_users: 300`` on the coupon, then computes the 9-point curve
both ways in the same process and reports seconds, each point's incremental conversions and certified gap, and
the load average before and after.

    PROMO_OPT_THREADS=1 .venv/bin/python benchmarks/capped_plan.py [--out reports/capped_plan.json]

Takes about 7 minutes (the proofs dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402

ARTEA = ROOT.parent / "shared" / "data" / "artea"


def artea_capped(d: Path) -> Path:
    """Artea's campaign as a promo-opt config: the coupon capped at 300 users, a budget of 2,000."""
    raw = {"name": "artea-capped",
           "data": {"train": str(ARTEA / "artea-a_b-experiment.csv"), "candidates": str(ARTEA / "artea-next-campaign.csv"),
                    "id": "id", "treatment": "test_coupon", "outcome": "trans_after", "outcome_type": "count"},
           "arms": [{"name": "0", "control": True}, {"name": "1", "cost_per_conversion": 5, "max_users": 300}],
           "constraints": {"budget": 2000}}
    path = d / "artea_capped.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "reports" / "capped_plan.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(artea_capped(Path(d)))
        t = time.perf_counter()
        model = pipeline.train(cfg)
        scores = pipeline.score_candidates(cfg, model)
        trained = time.perf_counter() - t
    corr = model.metrics.get("forecast_correction")
    out = {"campaign": "artea, max_users 300 on the coupon", "train_seconds": trained, "load_before": os.getloadavg()}
    gap = pipeline.CAPPED_GAP
    for name, limit in (("proved", None), ("gap_limit", gap)):
        pipeline.CAPPED_GAP = limit
        t = time.perf_counter()
        curve = pipeline.plan(cfg, scores, correction=corr)
        out[name] = {"gap_limit": limit, "seconds": time.perf_counter() - t, "budget": curve["budget"].tolist(),
                     "incremental_conversions": curve["incremental_conversions"].tolist(),
                     "gap": curve["gap"].tolist()}
        print(f"{name}: {out[name]['seconds']:.1f} s, certified gaps up to {max(out[name]['gap']):.2e}", flush=True)
    pipeline.CAPPED_GAP = gap
    a, b = out["proved"]["incremental_conversions"], out["gap_limit"]["incremental_conversions"]
    out["max_relative_difference"] = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b) if x)
    out["speedup"] = out["proved"]["seconds"] / out["gap_limit"]["seconds"]
    out["load_after"] = os.getloadavg()
    print(f"speedup {out['speedup']:.1f}x; conversions within {out['max_relative_difference']:.1e} of the proved curve")
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
