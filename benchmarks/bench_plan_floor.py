"""Plan points under a binding ROI floor: a cold ``solve_dual`` per point vs the cached ``FloorPath``.

One process, synthetic gains (no training, no browser, no HTTP): what the service does for a
slider move whose budget breaks the floor, cold (before issue 15) and warm (the ``FloorPath``
cached with the frontier). Both are timed on the same budgets, interleaved, so the ratio is
measured under the same load; the load average is recorded before and after.

Instance (float64, ``default_rng(seed)``), K = 4 arms (control + 3 discounts)::

    p0 ~ Beta(2, 20),  s ~ Normal(0.01, 0.02),  value ~ LogNormal(log 40, 0.8)
    p_k = clip(p0 + s * strength_k, 0, 1),  strength = (0, 1, 1.8, 3),  discount = (0, .05, .10, .20)
    gain = p_k - p_0,  spend = p_k * discount_k * value,  revenue = gain * value

ROI floor = ``--roi-factor`` (1.2) x the ROI of spending everything that pays, so it binds from
the budget ``B_0`` where the budget-only path first breaks it up to ``S_F``, the spend of the
floor-only optimum. Budgets are drawn uniformly in ``[B_0, 1.05 S_F]``.

    nice -n 10 .venv/bin/python benchmarks/bench_plan_floor.py                  # 1M users
    nice -n 10 .venv/bin/python benchmarks/bench_plan_floor.py --users 200000   # quick

Writes reports/bench_plan_floor[_<users>].json (and prints a summary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from promo_opt.allocation.dual import solve_dual  # noqa: E402
from promo_opt.allocation.floor_path import FloorPath, solve_point  # noqa: E402
from promo_opt.allocation.frontier import frontier_path, plan  # noqa: E402
from promo_opt.allocation.problem import AllocationProblem  # noqa: E402
from promo_opt.allocation.sorted_path import SortedFrontier  # noqa: E402

DISCOUNTS = np.array([0.0, 0.05, 0.10, 0.20])
STRENGTH = np.array([0.0, 1.0, 1.8, 3.0])


def make_instance(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gain, spend, revenue ``(n, 4)`` with column 0 = control (zeros): bench_allocation's generator, 4 arms."""
    from bench_allocation import synthetic_arrays

    return synthetic_arrays(n, seed, STRENGTH, DISCOUNTS)


def summary(seconds: list[float]) -> dict:
    a = np.asarray(seconds) * 1000
    return {"n": len(a), "median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--roi-factor", type=float, default=1.2)
    ap.add_argument("--cold-points", type=int, default=6, help="budgets timed both cold and warm")
    ap.add_argument("--warm-points", type=int, default=60, help="further budgets timed warm only")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    g, c, r = make_instance(args.users, args.seed)
    everything = solve_dual(AllocationProblem(g, c, r))
    min_roi = args.roi_factor * everything.roi
    problem = AllocationProblem(g, c, r, min_roi=min_roi)
    frontier = SortedFrontier.from_path(frontier_path(problem, g))  # what the service caches
    setup = time.perf_counter() - t0

    floor = FloorPath(problem, g)
    t0 = time.perf_counter()
    floor.point(frontier.max_useful_spend)  # the first budget breaking the floor builds the grid
    build = time.perf_counter() - t0
    b0 = floor.intervals[0].budget
    s_f = solve_dual(problem).spend  # floor-only optimum
    rng = np.random.default_rng(args.seed + 1)
    budgets = rng.uniform(b0, 1.05 * s_f, args.cold_points + args.warm_points)

    cold_s, warm_s, plan_cold_s, plan_warm_s, worst_rel, resolved = [], [], [], [], 0.0, 0
    names = [f"a{k}" for k in range(problem.n_arms)]
    for budget in budgets[: args.cold_points]:  # interleaved: same budgets, same load
        t = time.perf_counter()
        cold = solve_point(problem, g, budget)
        cold_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        warm = floor.point(budget)
        warm_s.append(time.perf_counter() - t)
        worst_rel = max(worst_rel, abs(warm["gain"] - cold["gain"]) / abs(cold["gain"]))
        t = time.perf_counter()  # the whole plan row as /plans computes it (one budget, DataFrame included)
        plan(problem, g, [budget], arm_names=names, path=frontier)
        plan_cold_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        row = plan(problem, g, [budget], arm_names=names, path=frontier, floor=floor)
        plan_warm_s.append(time.perf_counter() - t)
        resolved += int(row["resolved"].sum())
    for budget in budgets[args.cold_points:]:
        t = time.perf_counter()
        floor.point(budget)
        warm_s.append(time.perf_counter() - t)
    load_after = os.getloadavg()

    sizes = [iv.free.size for iv in floor.intervals]
    out = {
        "command": "python benchmarks/bench_plan_floor.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": args.users, "arms": problem.n_arms, "min_roi": min_roi, "roi_factor": args.roi_factor,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "threads_env": os.environ.get("PROMO_OPT_THREADS"),
                    "load_before": load_before, "load_after": load_after},
        "binding_range": {"b0": b0, "floor_only_spend": s_f, "max_useful_spend": frontier.max_useful_spend},
        "floor_path": {"build_seconds": build, "intervals": len(sizes), "free_users_median": int(np.median(sizes)),
                       "free_users_max": int(max(sizes)), "cold_fallbacks": floor.cold_points},
        "setup_seconds": setup,
        "point": {"cold_solve_dual": summary(cold_s), "warm_floor_path": summary(warm_s),
                  "ratio_median_cold_over_warm": float(np.median(cold_s) / np.median(warm_s[: len(cold_s)]))},
        "plan_row": {"cold": summary(plan_cold_s), "warm": summary(plan_warm_s), "rows_resolved": resolved,
                     "ratio_median_cold_over_warm": float(np.median(plan_cold_s) / np.median(plan_warm_s))},
        "worst_relative_objective_difference": worst_rel,
    }
    print(json.dumps(out, indent=2))
    path = Path(args.out) if args.out else ROOT / "reports" / (
        "bench_plan_floor.json" if args.users == 1_000_000 else f"bench_plan_floor_{args.users // 1000}k.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
