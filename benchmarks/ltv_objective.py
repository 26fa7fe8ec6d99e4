"""objective: long_term_value vs conversions and net_revenue: true long-run value at the same budget.

In every panel world (``scenarios/ltv/``) the ltv model is fitted on a simulated panel (one per
seed) and its ``ltv.json`` is written; a candidate population with known per-user conversion
probabilities under every arm and order values is then allocated under one budget with each
objective (the scores are the truth, so only the objective differs). Every policy is scored by
its TRUE long-run net value: incremental revenue x the arm's true multiplier (long_term /
immediate from the world's own recursion) minus spend.

    nice -n 19 .venv/bin/python benchmarks/ltv_objective.py [--seeds 5] [--customers 20000] \
        [--candidates 50000] [--out reports/ltv_objective]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import parse_config  # noqa: E402
from promo_opt.data import atomic_write, write_json  # noqa: E402
from promo_opt.economics import compute_economics  # noqa: E402
from promo_opt.ltv.simulate import available_panel_worlds, load_panel_world  # noqa: E402
from promo_opt.ltv.valuation import estimate_ltv, write_ltv  # noqa: E402

OBJECTIVES = ("conversions", "net_revenue", "long_term_value")


def candidates(n: int, seed: int) -> pd.DataFrame:
    """Per-user truth: a small arm with cheap uplift and a big arm with a larger, costlier one."""
    rng = np.random.default_rng([seed, 77])
    p0 = rng.uniform(0.02, 0.12, n)
    u5 = rng.gamma(2.0, 0.008, n)
    u20 = u5 * rng.uniform(1.2, 3.5, n) + rng.gamma(1.5, 0.01, n)
    return pd.DataFrame({"user_id": np.arange(n), "value": rng.lognormal(np.log(80), 0.5, n),
                         "p_control": p0, "p_discount_5": np.minimum(p0 + u5, 1), "p_discount_20": np.minimum(p0 + u20, 1)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--candidates", type=int, default=50_000)
    ap.add_argument("--budget-share", type=float, default=0.3, help="budget as a share of 'everyone discount_20' spend")
    ap.add_argument("--worlds", default=",".join(available_panel_worlds()))
    ap.add_argument("--out", default="reports/ltv_objective")
    a = ap.parse_args()
    t_start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in a.worlds.split(","):
            w = load_panel_world(world)
            truth = w.true_values()
            m_true = np.array([1.0] + [truth[arm]["long_term"] / truth[arm]["immediate"] for arm in w.arm_names[1:]])
            base = w.campaign_config("in-memory", boot=0)
            for seed in range(a.seeds):
                cfg = parse_config({**base, "seed": seed})
                res = estimate_ltv(cfg, panel=w.simulate(seed, a.customers))
                ltv_dir = Path(tmp) / f"{world}-{seed}"
                write_ltv(res, ltv_dir)
                scores = candidates(a.candidates, seed)
                arms = cfg.ordered_arms
                p = scores[[f"p_{x}" for x in cfg.arm_names]].to_numpy()
                econ = compute_economics(p, scores["value"].to_numpy(), arms)
                budget = a.budget_share * float(econ.spend[:, -1].sum())
                for obj in OBJECTIVES:
                    raw = {**base, "seed": seed, "objective": obj, "constraints": {"budget": budget}}
                    raw["ltv"] = {"values": str(ltv_dir / "ltv.json")}
                    c = parse_config(raw)
                    out = pipeline.allocate(c, scores)
                    rows_i = np.arange(len(out.arm))
                    rev = econ.incremental_revenue[rows_i, out.arm]
                    spend = econ.spend[rows_i, out.arm]
                    rows.append({"world": world, "seed": seed, "objective": obj, "budget": budget,
                                 "spend": float(spend.sum()),
                                 "true_long_run_net_value": float((rev * m_true[out.arm] - spend).sum()),
                                 "immediate_net_revenue": float((rev - spend).sum()),
                                 "incremental_conversions": float(econ.incremental_conversions[rows_i, out.arm].sum()),
                                 **{f"users_{x}": int((out.arm == k).sum()) for k, x in enumerate(cfg.arm_names)},
                                 **{f"multiplier_est_{x}": float(res.arm(x).multiplier[0]) for x in cfg.arm_names[1:]},
                                 **{f"multiplier_true_{x}": float(m_true[k + 1]) for k, x in enumerate(cfg.arm_names[1:])}})
                print(f"{world} seed {seed} done", flush=True)
    runs = pd.DataFrame(rows)
    piv = runs.pivot_table(index=["world", "seed"], columns="objective", values="true_long_run_net_value")
    summary = pd.DataFrame({
        "ltv_minus_conversions_mean": (piv["long_term_value"] - piv["conversions"]).groupby("world").mean(),
        "ltv_over_conversions_mean": (piv["long_term_value"] / piv["conversions"]).groupby("world").mean(),
        "ltv_minus_net_revenue_mean": (piv["long_term_value"] - piv["net_revenue"]).groupby("world").mean(),
        "ltv_over_net_revenue_mean": (piv["long_term_value"] / piv["net_revenue"]).groupby("world").mean(),
        "ltv_beats_conversions_share": (piv["long_term_value"] > piv["conversions"]).groupby("world").mean(),
        "ltv_beats_or_ties_net_revenue_share": (piv["long_term_value"] >= piv["net_revenue"] * (1 - 1e-3)).groupby("world").mean(),
    }).reset_index()
    settings = {**vars(a), "command": "python " + " ".join(sys.argv), "seconds": time.perf_counter() - t_start,
                "load": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    print(summary.to_string(index=False))
    write_json({"settings": settings, "summary": summary.to_dict(orient="records"), "runs": runs.to_dict(orient="records")},
               f"{a.out}.json")
    lines = ["# objective: long_term_value vs conversions / net_revenue (true long-run net value, same budget)", "",
             f"Command: `{settings['command']}`; {settings['seconds']:.0f} s; load after the run {settings['load']} "
             "(2 shared cores, nice 19).", "",
             "True long-run net value = sum over users of incremental revenue x the chosen arm's TRUE multiplier minus "
             "spend. The multipliers used by `long_term_value` are estimated from one simulated panel per seed.", "",
             "| world | LTV − conversions | LTV / conversions | LTV − net_revenue | LTV / net_revenue | LTV beats conversions | LTV ≥ net_revenue |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples(index=False):
        lines.append(f"| {r.world} | {r.ltv_minus_conversions_mean:,.0f} | {r.ltv_over_conversions_mean:.3f} | "
                     f"{r.ltv_minus_net_revenue_mean:,.0f} | {r.ltv_over_net_revenue_mean:.3f} | "
                     f"{r.ltv_beats_conversions_share:.0%} | {r.ltv_beats_or_ties_net_revenue_share:.0%} |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(f"{a.out}.md"), lambda p: p.write_text(text))


if __name__ == "__main__":
    main()
