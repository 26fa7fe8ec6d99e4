"""``learner: auto`` against every single learner, scored by the truth of simulated worlds.

For each world and seed, the same campaign (past users, candidates, budget) is run once per
learner setting through the product's pipeline (train -> score -> allocate); the allocated
policy is scored against the world's potential outcomes. Reported per world: the true objective
as a share of the oracle's (same constraints), and for auto the paired difference to the best
single learner of that world (chosen after the fact, so the comparison favours the single
learner) with its standard error over seeds.

    nice .venv/bin/python benchmarks/learners_worlds.py [--worlds travel,retail_vouchers,subscription_drift,generated_17]
        [--learners pooled_smooth,pooled,...] [--seeds 0,1,2] [--n-train 30000] [--n-candidates 20000] [--folds 5]

Writes reports/learners_worlds.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import write_bytes, write_json  # noqa: E402
from promo_opt.learners.registry import auto_candidates  # noqa: E402
from promo_opt.simulation import load_world  # noqa: E402
from promo_opt.simulation.generator import random_world  # noqa: E402
from winners_curse import measure  # noqa: E402  (train -> score -> allocate -> truth, one campaign)


def world_named(name: str):
    """A scenario world by name, or ``generated_N``: world N of the generator (as benchmarks/generated_worlds.py)."""
    head, _, tail = name.rpartition("_")
    return random_world(int(tail)) if head == "generated" and tail.isdigit() else load_world(name)


def one(cfg) -> dict:
    r = measure(cfg)
    return {"chosen": r["learner"], "seconds": r["seconds"], "share_of_oracle": r["share_of_oracle"],
            "true_spend_vs_budget": r["true_spend_vs_budget"], "expected_vs_true": r["expected_vs_true"],
            "forecast_vs_true": r["forecast_vs_true"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", default="travel,retail_vouchers,subscription_drift")
    ap.add_argument("--learners", default=",".join(auto_candidates() + ["causalml_s", "causalml_t", "causalml_x"]))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--n-candidates", type=int, default=20000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "reports" / "learners_worlds"))
    args = ap.parse_args()
    settings = ["auto", *args.learners.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for world in args.worlds.split(","):
        for seed in seeds:
            with tempfile.TemporaryDirectory() as d:
                path = world_named(world).write_campaign(d, seed=seed, n_train=args.n_train,
                                                        n_candidates=args.n_candidates)
                for learner in settings:
                    cfg = load_config(path, **{"model.learner": learner, "model.folds": args.folds, "seed": seed})
                    r = {"world": world, "seed": seed, "learner": learner, **one(cfg)}
                    rows.append(r)
                    print(f"{world:18s} seed {seed} {learner:16s} share of oracle {r['share_of_oracle']:.3f} "
                          f"({r['seconds']:.0f}s{', chose ' + r['chosen'] if learner == 'auto' else ''})", flush=True)
    write_json({"command": " ".join(sys.argv), "rows": rows}, Path(args.out).with_suffix(".json"))

    lines = ["# auto vs every single learner in simulated worlds (true value of the allocated policy)", "",
             f"`nice .venv/bin/python benchmarks/learners_worlds.py {' '.join(sys.argv[1:])}`: {args.n_train:,} past "
             f"users, {args.n_candidates:,} candidates, {args.folds} folds, seeds {args.seeds}. Cells: mean share of "
             "the oracle's true objective over seeds (the oracle knows the true probabilities and faces the same "
             "constraints).", "",
             "| learner | " + " | ".join(args.worlds.split(",")) + " | mean |",
             "|---|" + "---|" * (len(args.worlds.split(",")) + 1)]
    worlds = args.worlds.split(",")
    share = {(r["world"], r["seed"], r["learner"]): r["share_of_oracle"] for r in rows}
    for learner in settings:
        vals = [np.mean([share[w, s, learner] for s in seeds]) for w in worlds]
        lines.append(f"| {learner} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |")
    lines += ["", "auto minus the best single learner of each world (picked after the fact), paired by seed:", "",
              "| world | best single | auto - best | standard error | within 2 SE |", "|---|---|---|---|---|"]
    for w in worlds:
        best = max(args.learners.split(","), key=lambda nm: np.mean([share[w, s, nm] for s in seeds]))
        diff = np.array([share[w, s, "auto"] - share[w, s, best] for s in seeds])
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        lines.append(f"| {w} | {best} | {diff.mean():+.3f} | {se:.3f} | {bool(diff.mean() >= -2 * se)} |")
    auto_picks = [r["chosen"] for r in rows if r["learner"] == "auto"]
    lines += ["", "auto's picks: " + ", ".join(f"{r['world']}/{r['seed']}: {r['chosen']}" for r in rows
                                               if r["learner"] == "auto"),
              "", f"Total seconds: {sum(r['seconds'] for r in rows):.0f} ({len(auto_picks)} auto runs)"]
    write_bytes(("\n".join(lines) + "\n").encode(), Path(args.out).with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
