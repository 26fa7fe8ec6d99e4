"""objective: long_term_value vs conversions and net_revenue: true long-run value at the same budget.

In every panel world (``scenarios/ltv/``) the ltv model is fitted on a simulated panel (one per
seed) and its ``ltv.json`` is written; a candidate population with known per-user conversion
probabilities under every arm and order values is then allocated under one budget with each
objective (the scores are the truth, so only the objective differs). Every policy is scored by
its TRUE long-run net value: incremental revenue x the arm's true multiplier (long_term /
immediate from the world's own recursion) minus spend.

    nice -n 19 .venv/bin/python benchmarks/ltv_objective.py [--seeds 5] [--customers 20000] \
        [--candidates 50000] [--out reports/ltv_objective]

``--segment``: one panel whose ``tier`` levels follow two worlds (habit, pull_forward; ``--customers``
each), fitted with ``ltv.segment: tier``; the candidates carry a tier (half each) and every policy is scored
with each user's TRUE tier multiplier. Compares ``long_term_value`` with the pooled multiplier against
``long_term_value`` with the per-tier ones (and conversions, net_revenue); writes ``<out>_segment.*``.
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
from promo_opt.ltv.simulate import available_panel_worlds, load_panel_world, segmented_panel  # noqa: E402
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


TIERS = {"habit": "habit", "pull": "pull_forward"}  # tier level -> panel world


def segment_runs(a, tmp: str) -> pd.DataFrame:
    """The --segment case: per seed, every objective (long_term_value pooled and per tier) at one budget."""
    worlds = {lv: load_panel_world(w) for lv, w in TIERS.items()}
    arm_names = worlds["habit"].arm_names
    true_m = {lv: np.array([1.0] + [w.true_values()[x]["long_term"] / w.true_values()[x]["immediate"]
                                    for x in arm_names[1:]]) for lv, w in worlds.items()}
    base = worlds["habit"].campaign_config("in-memory", boot=0)
    base["ltv"].update(segment="tier", segment_min_customers=min(1000, a.customers))
    rows = []
    for seed in range(a.seeds):
        t0 = time.perf_counter()
        cfg = parse_config({**base, "seed": seed})
        res = estimate_ltv(cfg, panel=segmented_panel(worlds, "tier", seed, a.customers))
        fit_s = time.perf_counter() - t0
        ltv_dir = Path(tmp) / f"segment-{seed}"
        write_ltv(res, ltv_dir)
        scores = candidates(a.candidates, seed)
        scores["tier"] = np.random.default_rng([seed, 78]).choice(list(TIERS), len(scores))
        p = scores[[f"p_{x}" for x in arm_names]].to_numpy()
        econ = compute_economics(p, scores["value"].to_numpy(), cfg.ordered_arms)
        budget = a.budget_share * float(econ.spend[:, -1].sum())
        M = np.stack([true_m[t] for t in scores["tier"]])
        habit = (scores["tier"] == "habit").to_numpy()
        for name, obj, seg in (("conversions", "conversions", None), ("net_revenue", "net_revenue", None),
                               ("long_term_value pooled", "long_term_value", None),
                               ("long_term_value per tier", "long_term_value", "tier")):
            raw = {**base, "seed": seed, "objective": obj, "constraints": {"budget": budget}}
            raw["ltv"] = {"values": str(ltv_dir / "ltv.json"), **({"segment": seg} if seg else {})}
            t1 = time.perf_counter()
            out = pipeline.allocate(parse_config(raw), scores)
            i = np.arange(len(out.arm))
            rev, spend = econ.incremental_revenue[i, out.arm], econ.spend[i, out.arm]
            rows.append({"seed": seed, "objective": name, "budget": budget, "spend": float(spend.sum()),
                         "habit_share_of_spend": float(spend[habit].sum() / spend.sum()) if spend.sum() else 0.0,
                         "true_long_run_net_value": float((rev * M[i, out.arm] - spend).sum()),
                         "immediate_net_revenue": float((rev - spend).sum()),
                         "fit_seconds": fit_s, "allocate_seconds": time.perf_counter() - t1,
                         **{f"multiplier_est_{lv}_{x}": float(s.arms[k].multiplier[0])
                            for s in res.segments for lv in [s.level] for k, x in enumerate(arm_names[1:])},
                         **{f"multiplier_est_pooled_{x}": float(res.arm(x).multiplier[0]) for x in arm_names[1:]},
                         **{f"multiplier_true_{lv}_{x}": float(true_m[lv][k + 1])
                            for lv in TIERS for k, x in enumerate(arm_names[1:])}})
        print(f"segment seed {seed} done ({fit_s:.1f} s to fit)", flush=True)
    return pd.DataFrame(rows)


def write_segment(a, runs: pd.DataFrame, seconds: float) -> None:
    summary = runs.groupby("objective", sort=False).agg(
        true_long_run_net_value=("true_long_run_net_value", "mean"),
        habit_share_of_spend=("habit_share_of_spend", "mean"),
        immediate_net_revenue=("immediate_net_revenue", "mean")).reset_index()
    piv = runs.pivot_table(index="seed", columns="objective", values="true_long_run_net_value")
    ratio = piv["long_term_value per tier"] / piv["long_term_value pooled"]
    settings = {**vars(a), "command": "python " + " ".join(sys.argv), "seconds": seconds,
                "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
                "per_tier_over_pooled_mean": float(ratio.mean()), "per_tier_over_pooled_min": float(ratio.min())}
    print(summary.to_string(index=False))
    print(f"per tier / pooled: mean {ratio.mean():.3f}, min {ratio.min():.3f}; {seconds:.0f} s; load {settings['load']}")
    write_json({"settings": settings, "summary": summary.to_dict(orient="records"), "runs": runs.to_dict(orient="records")},
               f"{a.out}_segment.json")
    est = runs.iloc[0]
    lines = ["# objective: long_term_value with per-tier multipliers (ltv.segment) vs the pooled multiplier", "",
             f"Command: `{settings['command']}`; {seconds:.0f} s; load after the run {settings['load']} "
             "(2 shared cores).", "",
             f"Panel: {a.customers:,} customers per tier x 52 weeks (tier habit: the habit world; tier pull: "
             f"pull_forward); {a.candidates:,} candidates, half per tier, known probabilities; budget "
             f"{a.budget_share:g} x the spend of 'everyone discount_20'. True long-run net value = incremental revenue "
             "x the user's TRUE tier multiplier - spend. Seed 0 discount_20 multipliers: estimated habit "
             f"{est['multiplier_est_habit_discount_20']:.3f}, pull {est['multiplier_est_pull_discount_20']:.3f}, "
             f"pooled {est['multiplier_est_pooled_discount_20']:.3f}; true habit "
             f"{est['multiplier_true_habit_discount_20']:.3f}, pull {est['multiplier_true_pull_discount_20']:.3f}.", "",
             "| objective | true long-run net value (mean) | habit tier's share of spend | immediate net revenue |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r.objective} | {r.true_long_run_net_value:,.0f} | {r.habit_share_of_spend:.0%} | "
              f"{r.immediate_net_revenue:,.0f} |" for r in summary.itertuples(index=False)]
    lines += ["", f"Per tier / pooled true long-run net value: mean {ratio.mean():.3f}, min over seeds {ratio.min():.3f}."]
    text = "\n".join(lines) + "\n"
    atomic_write(Path(f"{a.out}_segment.md"), lambda p: p.write_text(text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--candidates", type=int, default=50_000)
    ap.add_argument("--budget-share", type=float, default=0.3, help="budget as a share of 'everyone discount_20' spend")
    ap.add_argument("--worlds", default=",".join(available_panel_worlds()))
    ap.add_argument("--out", default="reports/ltv_objective")
    ap.add_argument("--segment", action="store_true", help="the per-tier case (ltv.segment) instead of the worlds")
    a = ap.parse_args()
    t_start = time.perf_counter()
    if a.segment:
        with tempfile.TemporaryDirectory() as tmp:
            runs = segment_runs(a, tmp)
        write_segment(a, runs, time.perf_counter() - t_start)
        return
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
