"""Arm caps and segment budgets: SCIP's search in rounds against one search to ``auto``'s time limit.

SCIP often has its final policy within a second and then spends any time limit failing to prove a small gap.
``solve_mip`` therefore searches in rounds (``exact.STALL_FIRST_ROUND`` s, each next one ``STALL_GROWTH`` x
longer and started from the last incumbent) and stops at the first round that finds nothing better. This
benchmark solves the same problems both ways under ``auto``'s limit (``EXACT_TIME_LIMIT``, 120 s) and reports
seconds, objective and certified gap of each:

* ``generated_662``: the allocation problem of a campaign a crash sweep met (generated world 662, 3,000 past
  users and 3,000 candidates, the default config with ``max_users: 78`` on promo2, ``max_spend: 10079.1`` on
  promo3 and budgets per level of ``x05``), as ``pipeline.allocate`` builds it from the trained model;
* ``synthetic_20k``: 20,000 users x 3 promotions, uniform gains and costs, a budget and a cap on one arm.

    PROMO_OPT_THREADS=1 .venv/bin/python benchmarks/mip_rounds.py [--out reports/mip_rounds.json]

Takes about 5 minutes (the single searches run to their limit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.allocation import EXACT_TIME_LIMIT, exact  # noqa: E402
from promo_opt.allocation.problem import AllocationProblem, ArmCap  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.simulation.generator import random_world  # noqa: E402


def capped_campaign(directory) -> Path:
    """Write the campaign the crash sweep met into ``directory`` and return its config: generated world 662, 3,000
    past users and 3,000 candidates, ``max_users: 78`` on promo2, ``max_spend: 10079.1`` on promo3 and a budget
    for every level of ``x05`` (also ``tests/test_generated_campaigns.py``)."""
    path = random_world(662).write_campaign(directory, seed=662, n_train=3000, n_candidates=3000)
    raw = yaml.safe_load(path.read_text())
    arms = {a["name"]: a for a in raw["arms"]}
    arms["promo2"]["max_users"] = 78
    arms["promo3"]["max_spend"] = 10079.1
    raw["data"]["segment"] = "x05"
    raw["constraints"]["segment_budgets"] = {"l0": 7833.35, "l1": 12947.24, "l2": 10767.34}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def campaign_problem() -> AllocationProblem:
    """The problem ``pipeline.allocate`` hands the MIP for :func:`capped_campaign`."""
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(capped_campaign(d))
        model = pipeline.train(cfg)
        scores = pipeline.score_candidates(cfg, model)
        got = {}
        real = exact.solve_mip

        def capture(problem, **kw):
            got["problem"] = problem
            raise StopIteration

        exact.solve_mip = capture
        try:
            pipeline.allocate(cfg, scores, correction=model.metrics.get("forecast_correction"))
        except StopIteration:
            pass
        finally:
            exact.solve_mip = real
        return got["problem"]


def synthetic_problem(n: int = 20_000) -> AllocationProblem:
    rng = np.random.default_rng(0)
    gain = np.c_[np.zeros(n), rng.uniform(0, 1, (n, 3))]
    spend = np.c_[np.zeros(n), rng.uniform(0.5, 2, (n, 3))]
    return AllocationProblem(gain=gain, spend=spend, revenue=np.zeros_like(gain), budget=0.2 * spend.sum() / 3,
                             min_roi=None, arm_caps=(ArmCap(arm=1, max_users=n // 10, max_spend=None),))


def one_search(problem: AllocationProblem, time_limit: float) -> dict:
    """The search before the rounds: ``solve_mip`` with a first round as long as the limit, so one SCIP search to
    the limit, certified the same way."""
    first = exact.STALL_FIRST_ROUND
    exact.STALL_FIRST_ROUND = time_limit
    try:
        return rounds(problem, time_limit)
    finally:
        exact.STALL_FIRST_ROUND = first


def rounds(problem: AllocationProblem, time_limit: float) -> dict:
    t0 = time.perf_counter()
    a = exact.solve_mip(problem, time_limit=time_limit)
    return {"seconds": time.perf_counter() - t0, "objective": a.objective, "gap": a.gap, "status": a.status,
            "reason": a.solver_reason}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "reports" / "mip_rounds.json"))
    args = ap.parse_args()
    rows = []
    for name, make in (("generated_662", campaign_problem), ("synthetic_20k", synthetic_problem)):
        problem = make()
        row = {"problem": name, "users": problem.n_users, "arms": problem.n_arms, "load_before": os.getloadavg()[0],
               "one_search": one_search(problem, EXACT_TIME_LIMIT), "rounds": rounds(problem, EXACT_TIME_LIMIT)}
        rows.append(row)
        o, r = row["one_search"], row["rounds"]
        print(f"{name}: one search {o['seconds']:.1f}s objective {o['objective']:.6f} gap {o['gap']:.2e} | rounds "
              f"{r['seconds']:.1f}s objective {r['objective']:.6f} gap {r['gap']:.2e} ({r['status']})", flush=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "time_limit": EXACT_TIME_LIMIT,
                                          "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
