"""What the issue-16 forecast targets allow at all: the efficiency bound over the generated worlds.

For every campaign of ``benchmarks/generated_worlds.py`` (world k with campaign seed k, the named worlds after
them, the same budgets and ROI floors), the oracle's policy (perfect knowledge, same budget and floor) is
forecast by the best estimator there can be (:mod:`promo_opt.simulation.bounds`: the semiparametric efficiency
bound, with the true propensities, density ratio and the features before they went missing). Its chance to land
within ±10% of the true incremental conversions, to get the spend within ±5%, and the coverage of a calibrated
90% interval, averaged over the runs, bound what any product can reach on these campaigns from ``n`` past users.
No learner is trained: the bound needs only the truth. Takes about 20 seconds.

    .venv/bin/python benchmarks/forecast_bounds.py --worlds 30 --named travel,retail_vouchers,subscription_drift \\
        --sizes 20000,100000,1000000 --out reports/forecast_bounds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generated_worlds import (bound_targets, floor_for, own_se, product_runs, read_runs, spends_budget,  # noqa: E402
                              within, world_arguments, world_campaigns)  # noqa: E402  (benchmarks/ is on the path as a script)

from promo_opt import pipeline  # noqa: E402
from promo_opt.allocation import solve  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import load_candidates, read_table, write_bytes, write_json  # noqa: E402
from promo_opt.economics import build_problem  # noqa: E402
from promo_opt.evaluation.truth import truth_economics  # noqa: E402
from promo_opt.simulation.bounds import forecast_bound  # noqa: E402



def oracle_bound(world, seed: int, sizes: list[int], n_candidates: int) -> list[dict]:
    """The bound of the oracle's policy of campaign ``seed`` at each size (the candidates, budget and floor do
    not depend on the number of past users)."""
    with tempfile.TemporaryDirectory() as d:
        path = world.write_campaign(d, seed=seed, n_train=1000, n_candidates=n_candidates)
        cfg = load_config(path)
        truth = read_table(cfg.data.truth)
        floor = floor_for(cfg, truth) if seed % 3 == 0 else 0.0
        cfg = load_config(path, **({"constraints.min_roi": floor} if floor > 0 else {}))
        ids = load_candidates(cfg, []).ids
        econ = truth_economics(cfg, ids, truth)
        treat = ~pipeline.holdout_mask(len(ids), cfg.holdout.fraction, cfg.seed)
        res = solve(build_problem(econ.subset(treat), cfg, budget=cfg.constraints.budget, min_roi=floor or None),
                    solver="dual")
    arm = np.zeros(len(ids), dtype=np.int64)
    arm[treat] = res.arm
    spend = float(econ.totals(arm)["spend"])
    binds = spend >= 0.99 * cfg.constraints.budget
    base = forecast_bound(world, seed, sizes[0], n_candidates, arm)
    rows = []
    for n in sizes:
        rows.append({"world": world.name, "seed": seed, "n_train": n, "outcome_type": world.spec.outcome_type,
                     "min_roi": floor or None, "budget_binds": bool(binds),
                     "concept_drift": bool(world.spec.drift.logit_shift), **bound_targets(base.at(n))})
    return rows


def _mean(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return (float(np.mean(v)) if v else float("nan")), len(v)


def _note(command: str, rows: list[dict]) -> list[str]:
    lines = ["# What the forecast targets allow: the efficiency bound over the generated worlds (issue 16)", "",
             f"`{command}`", "",
             "The oracle's policy of every campaign of `benchmarks/generated_worlds.py` (same worlds, seeds, budgets, "
             "floors), forecast by the best estimator from the past campaign that assumes nothing about how the "
             "outcome varies with the features and arms: the nonparametric efficiency bound "
             "(`promo_opt/simulation/bounds.py`), with the true propensities, density ratio and features before "
             "they went missing given. Each figure is the mean over runs of that estimator's probability, an upper "
             "bound on the expected share of runs such a forecast reaches. A learner that pools the arms can do "
             "better where the pooling holds (the product's spend forecasts do: see the run-by-run tables), but "
             "nothing estimated from the past campaign escapes the miss that a base-rate change no feature shows "
             "forces on it (`bias`).", ""]
    for n in sorted({r["n_train"] for r in rows}):
        for label, pick in (("all runs", lambda r: True),
                            ("without a base-rate change no feature shows", lambda r: not r["concept_drift"])):
            part = [r for r in rows if r["n_train"] == n and pick(r)]
            c10, n10 = _mean(part, "conv_within10")
            s5, n5 = _mean([r for r in part if r["budget_binds"]], "spend_within5")
            cov, _ = _mean(part, "conv_cover90")
            rel = [r["relative_se"]["incremental_conversions"] for r in part
                   if r["relative_se"]["incremental_conversions"] is not None]
            lines += [f"### {n:,} past users, {label} ({len(part)} runs)", "",
                      "| measure | bound (runs) | target |", "|---|---|---|",
                      f"| point forecast of conversions within ±10% | {c10:.2f} ({n10}) | 0.80 |",
                      f"| spend within ±5% (runs whose budget binds the oracle) | {s5:.2f} ({n5}) | 0.80 |",
                      f"| a calibrated 90% interval covers the conversions | {cov:.2f} ({n10}) | 0.85 |",
                      f"| relative standard error of the best forecast of conversions: median (10th-90th percentile) | "
                      f"{np.median(rel):.3f} ({np.percentile(rel, 10):.3f}-{np.percentile(rel, 90):.3f}) | |", ""]
    lines += ["| world | past users | outcome | floor | concept drift | rel. se conv | bias conv / total | P(conv ±10%) | "
              "rel. se spend | bias spend / total | P(spend ±5%) | coverage 90% | outside support |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, p=3):
        return "-" if v is None else f"{v:.{p}f}"

    for r in rows:
        t = r["total"]
        bias = {k: (r["identified"][k] - t[k]) / abs(t[k]) if t[k] else None for k in t}
        lines.append(f"| {r['world']} | {r['n_train']:,} | {r['outcome_type']} | {f(r['min_roi'])} | {r['concept_drift']} | "
                     f"{f(r['relative_se']['incremental_conversions'])} | {f(bias['incremental_conversions'])} | "
                     f"{f(r['conv_within10'])} | {f(r['relative_se']['spend'])} | {f(bias['spend'])} | "
                     f"{f(r['spend_within5'])} | {f(r['conv_cover90'])} | {r['outside_support']:.3f} |")
    return lines


def _against(rows: list[dict], product: list[dict], sources: list[str]) -> list[str]:
    """The product's measured figures next to the bound's on exactly the same runs (the bound for the oracle's
    policy; the product's own policy differs, most where a floor or a refusal makes it spend less)."""
    bound = {(r["world"], r["n_train"]): r for r in rows}
    lines = ["## The product against the bound, run by run", "",
             "The product's runs: " + ", ".join(f"`{s}`" for s in sources) + ". Each fraction is over the same "
             "runs for both (runs the product allocated; spend: runs whose policy spends its budget, as in the "
             "generated-worlds report). `se ratio`: the product's standard error (its 90% interval's half-width / "
             "1.645) over the bound's, both relative to the total.", ""]
    for n in sorted({r["n_train"] for r in product}):
        got = [(r, bound[(r["world"], n)]) for r in product if r["n_train"] == n and "refused" not in r
               and (r["world"], n) in bound]
        if not got:  # a size the bound was not computed at
            continue
        conv = [(within(r, "incremental_conversions", 0.1), b["conv_within10"]) for r, b in got
                if within(r, "incremental_conversions", 0.1) is not None and b["conv_within10"] is not None]
        binding = [(r, b) for r, b in got if spends_budget(r)]
        spend = [(abs(r["true_spend_vs_budget"] - 1) <= 0.05, b["spend_within5"]) for r, b in binding
                 if b["spend_within5"] is not None]
        cover = [(r["interval90_covers"]["incremental_conversions"], b["conv_cover90"]) for r, b in got
                 if r.get("interval90_covers") and b["conv_cover90"] is not None]
        moved = [r["world"] for r, b in binding if b["total"]["spend"]
                 and abs(b["identified"]["spend"] / b["total"]["spend"] - 1) > 0.05]
        missed = [r["world"] for r, b in binding if abs(r["true_spend_vs_budget"] - 1) > 0.05]
        far = [(r["world"], b["bias_se"]) for r, b in got if b["bias_se"] is not None and abs(b["bias_se"]) > 3]
        ratio = {k: [own_se(r, k) / b["relative_se"][k] for r, b in got
                     if own_se(r, k) and b["relative_se"][k]] for k in ("incremental_conversions", "spend")}
        lines += [f"### {n:,} past users", "",
                  f"Of the {len(binding)} runs whose policy spends its budget, {len(moved)} are in worlds whose base rate "
                  f"moves the spend by more than 5% without any feature showing it ({', '.join(moved) or 'none'}): every "
                  f"forecast made from the past campaign is centred more than 5% away from their true spend, so at "
                  f"most {(len(binding) - len(moved)) / max(len(binding), 1):.2f} of the runs can be expected to land "
                  f"within 5% of the budget. The product misses "
                  f"{len(missed)} ({', '.join(missed) or 'none'}), "
                  + ("all of them among those." if set(missed) <= set(moved) else "some outside those.")
                  + f" Calibrated 90% intervals cannot cover runs whose conversions the same change moves by more "
                  f"than 3 standard errors of the best forecast: {', '.join(f'{w} ({z:+.1f})' for w, z in far) or 'none'}.",
                  "", "| measure | product, measured | bound, same runs | runs |", "|---|---|---|---|"]
        for label, pairs in (("point forecast of conversions within ±10%", conv),
                             ("true spend within ±5% of the budget", spend),
                             ("90% interval covers the conversions", cover)):
            lines.append(f"| {label} | {np.mean([a for a, _ in pairs]):.2f} | {np.mean([b for _, b in pairs]):.2f} | {len(pairs)} |")
        for k, label in (("incremental_conversions", "conversions"), ("spend", "spend")):
            v = ratio[k] or [float("nan")]
            lines.append(f"| se ratio, {label}: median (min-max) | {np.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) | | {len(v)} |")
        lines += ["", "| world | product conv error | bound rel. se conv | se ratio conv | product spend error | "
                      "bound bias spend | bound rel. se spend | se ratio spend |", "|---|---|---|---|---|---|---|---|"]

        def f(v, p=3, sign=""):
            return "-" if v is None else f"{v:{sign}.{p}f}"

        for r, b in got:
            t, fc = r["policy_true"], r["forecast"]
            err = {k: fc[k] / t[k] - 1 if fc.get(k) is not None and abs(t[k]) > 1e-9 else None
                   for k in ("incremental_conversions", "spend")}
            sc, ss = own_se(r, "incremental_conversions"), own_se(r, "spend")
            rc, rs = b["relative_se"]["incremental_conversions"], b["relative_se"]["spend"]
            bias = (b["identified"]["spend"] - b["total"]["spend"]) / b["total"]["spend"] if b["total"]["spend"] else None
            lines.append(f"| {r['world']} | {f(err['incremental_conversions'], sign='+')} | {f(rc)} | "
                         f"{f(sc / rc if sc and rc else None, 2)} | {f(err['spend'], sign='+')} | {f(bias, sign='+')} | "
                         f"{f(rs)} | {f(ss / rs if ss and rs else None, 2)} |")
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    world_arguments(ap, "20000,100000,1000000")
    ap.add_argument("--out", default=str(ROOT / "reports" / "forecast_bounds"))
    product_runs(ap)
    args = ap.parse_args()
    worlds = world_campaigns(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    command = ".venv/bin/python " + " ".join(sys.argv)
    rows: list[dict] = []
    for w, seed in worlds:
        got = oracle_bound(w, seed, sizes, args.n_candidates)
        rows += got
        for r in got:
            print(f"{w.name:18s} n={r['n_train']:>8,} rel se {r['relative_se']['incremental_conversions'] or float('nan'):.3f} "
                  f"P10 {r['conv_within10'] if r['conv_within10'] is not None else float('nan'):.2f} "
                  f"spend5 {r['spend_within5'] if r['spend_within5'] is not None else float('nan'):.2f}", flush=True)
    rows.sort(key=lambda r: r["n_train"])
    out = Path(args.out)
    write_json({"command": command, "rows": rows}, out.with_suffix(".json"))
    sources, product = read_runs(args.product)
    lines = _note(command, rows) + [""] + (_against(rows, product, sources) if product else [])
    write_bytes(("\n".join(lines) + "\n").encode(), out.with_suffix(".md"))


if __name__ == "__main__":
    main()
