"""Coverage, bias and RMSE of the off-policy estimators (IPS, SNIPS, DR) in the simulated worlds.

For each world a fixed policy and a DR outcome model are fitted once on a separate sample; then
``--reps`` replications each draw a fresh past campaign of ``--n`` users (randomized, or logged
with known propensities in ``confounded_logs``), evaluate the policy with 95% Poisson-bootstrap
intervals and compare with the sample's exact true totals (see ``promo_opt/evaluation/coverage.py``).

    nice .venv/bin/python benchmarks/ope_coverage.py [--reps 300] [--n 5000] [--boot 400] \
        [--worlds travel,retail_vouchers,subscription_drift,confounded_logs] [--out reports/ope_coverage]

Writes ``<out>.json`` (summary and settings) and ``<out>.md`` (the tables).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promo_opt.data import atomic_write, write_json  # noqa: E402
from promo_opt.evaluation.coverage import coverage_study  # noqa: E402
from promo_opt.simulation import load_world  # noqa: E402

WORLDS = "travel,retail_vouchers,subscription_drift,confounded_logs"


def markdown(summary, settings: dict) -> str:
    lines = ["# Off-policy evaluation: coverage of the 95% intervals, bias and RMSE", "",
             f"Command: `{settings['command']}`  ",
             f"{settings['reps']} replications per world, {settings['n']:,} users each, {settings['boot']} bootstrap "
             f"replicates; {settings['seconds']:.0f} s. `rel_bias` and `rel_rmse` are relative to the mean true value. "
             "`dr` uses a model fitted on a separate sample; `dr_means` cross-fitted per-arm means.", ""]
    for world, g in summary.groupby("world", sort=False):
        lines += [f"## {world}", "", "| estimator | quantity | true mean | coverage | bias | rel. bias | RMSE | rel. RMSE | mean CI width |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in g.itertuples(index=False):
            lines.append(f"| {r.estimator} | {r.quantity} | {r.true_mean:,.4g} | {r.coverage:.1%} | {r.bias:,.4g} | "
                         f"{r.rel_bias:+.1%} | {r.rmse:,.4g} | {r.rel_rmse:.1%} | {r.mean_ci_width:,.4g} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--boot", type=int, default=400)
    ap.add_argument("--worlds", default=WORLDS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports/ope_coverage")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import pandas as pd

    parts = []
    for name in a.worlds.split(","):
        t = time.perf_counter()
        _, summ = coverage_study(load_world(name), reps=a.reps, n=a.n, n_boot=a.boot, seed=a.seed)
        parts.append(summ)
        write_json({"partial": True, "summary": pd.concat(parts).to_dict(orient="records")},
                   Path(a.out).with_suffix(".partial.json"))  # progress survives an interrupted run
        cov = summ.pivot_table(index="estimator", columns="quantity", values="coverage", sort=False)
        print(f"{name} ({time.perf_counter() - t:.0f} s): coverage of the 95% intervals\n{cov.to_string(float_format='%.3f')}",
              flush=True)
    summary = pd.concat(parts, ignore_index=True)
    settings = {"reps": a.reps, "n": a.n, "boot": a.boot, "worlds": a.worlds.split(","), "seed": a.seed,
                "seconds": time.perf_counter() - t0,
                "command": "nice .venv/bin/python benchmarks/ope_coverage.py " + " ".join(sys.argv[1:])}
    out = Path(a.out)
    write_json({"settings": settings, "summary": summary.to_dict(orient="records"),
                "coverage_range": [float(np.min(summary["coverage"])), float(np.max(summary["coverage"]))]},
               out.with_suffix(".json"))
    text = markdown(summary, settings)
    atomic_write(out.with_suffix(".md"), lambda p: p.write_text(text))
    Path(a.out).with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"written to {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
