"""The what-if curve's forecast at budgets other than the campaign's (issue 16).

A planner picks the budget on the curve (``promo-opt plan``, ``/plans``, the web app's slider), and every
point carries the forecast an allocation at that budget gets (``pipeline.curve_forecast``): the model's
expected totals times the held-out ratios, with 90% intervals. Those ratios are measured on the twin at the
*campaign's* budget; the winner's curse is larger where fewer, more extreme users are picked, so they may not
transfer. This measures how far they do.

For every generated world (the same campaigns as ``benchmarks/generated_worlds.py``: seed = world index,
an ROI floor of 80% of the oracle's ROI in every third world) and size, the default config is trained once;
then the targeting list is allocated at 0.25, 0.5, 1, 2 and 4 times the campaign's budget and scored by the
world's truth: does each 90% interval (conversions, revenue, spend, net revenue) cover the true total, how
far is the point forecast, and is the run warned? The curve's own forecast at the list's expected spend is
checked against the list's (``curve_vs_list``, relative; they are the same rule on the same totals).

    PROMO_OPT_THREADS=1 OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/plan_forecast.py --worlds 30 \\
        --named travel,retail_vouchers,subscription_drift --sizes 20000 [--first 0] --out reports/plan_forecast_20k
    .venv/bin/python benchmarks/plan_forecast.py --summarize A.json,B.json --out reports/plan_forecast_100k

Writes ``<out>.json`` (one row per run and budget, appended as it goes) and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generated_worlds import floor_for, world_arguments, world_campaigns  # noqa: E402  (benchmarks/ is on the path when run as a script)
from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import read_table, write_bytes, write_json  # noqa: E402
from promo_opt.errors import PromoOptError  # noqa: E402
from promo_opt.evaluation.forecast import policy_budget  # noqa: E402
from promo_opt.evaluation.heldout import ForecastCorrection  # noqa: E402
from promo_opt.evaluation.truth import score_against_truth  # noqa: E402

KEYS = ("incremental_conversions", "incremental_revenue", "spend")
MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)


def one_world(world, seed: int, n_train: int, n_candidates: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as d:
        path = world.write_campaign(d, seed=seed, n_train=n_train, n_candidates=n_candidates)
        cfg = load_config(path)
        truth = read_table(cfg.data.truth)
        floor = floor_for(cfg, truth) if seed % 3 == 0 else 0.0
        cfg = load_config(path, **({"constraints.min_roi": floor} if floor > 0 else {}))
        base = {"world": world.name, "seed": seed, "n_train": n_train, "objective": cfg.objective,
                "min_roi": floor or None, "concept_drift": bool(world.spec.drift.logit_shift)}
        if not cfg.constraints.budget:
            return [{**base, "refused": "no budget"}]
        t0 = time.perf_counter()
        try:
            model = pipeline.train(cfg)
        except PromoOptError as err:
            return [{**base, "refused": str(err)}]
        scores = pipeline.score_candidates(cfg, model)
        corr = model.metrics.get("forecast_correction")
        base["seconds_train"] = time.perf_counter() - t0
        base["corrected"] = bool(corr and corr.get("applied") and any(abs(v - 1) > 1e-9 for v in corr["ratio"].values()))
        rows = []
        for m in MULTIPLES:
            budget = m * cfg.constraints.budget
            row = {**base, "multiple": m, "budget": budget}
            try:
                out = pipeline.allocate(cfg, scores, budget=budget, correction=corr)
            except PromoOptError as err:
                rows.append({**row, "refused": str(err)})
                continue
            f = out.summary.get("forecast")
            if f is None:
                rows.append({**row, "refused": "no forecast (no held-out measurement)"})
                continue
            rep = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"], out.budget,
                                      out.min_roi, forecast=f).as_dict()
            true = {k: rep["policy_true"][k] for k in KEYS}
            point = pipeline.plan(cfg, scores, [budget], min_roi=floor or None, correction=corr).iloc[0]
            # the same policy forecast by each twin alone: the campaign's (as before the twins by budget), and
            # the one interpolated at the policy's budget (min of the budget and its forecast spend); and the
            # product's hull with the twins interpolated at the planner's budget instead (before 7b800a6)
            c, n_treat = ForecastCorrection.from_dict(corr), len(out.ids) - int(out.holdout.sum())
            key = float(policy_budget(budget, out.summary["expected"]["spend"], c))
            single = pipeline.corrected_forecast(out.summary["expected"], {**corr, "by_budget": []}, cfg.objective)
            local = c.at_budget(key / n_treat)
            there = pipeline.corrected_forecast(out.summary["expected"], {**corr, **local.as_dict()}, cfg.objective)
            # the product's rule, its only local twin the one at the planner's budget
            old = c.at_budget(budget / n_treat).budget_entry(budget / n_treat)
            by_budget = pipeline.corrected_forecast(out.summary["expected"], {**corr, "by_budget": [old]},
                                                    cfg.objective, budget, n_treat)
            row.update({"expected": {k: out.summary["expected"][k] for k in KEYS}, "true": true,
                        **_scored(f, true), "campaign_twin_only": _scored(single, true),
                        "local_twin_only": _scored(there, true), "policy_budget": key,
                        "keyed_by_budget": _scored(by_budget, true),
                        "share_of_oracle": rep["share_of_oracle"],
                        "curve_vs_list": max(abs(point[f"forecast_{k}"] - f[k]) / max(abs(f[k]), 1e-9) for k in KEYS)})
            rows.append(row)
        return rows


def _scored(f: dict, true: dict) -> dict:
    """A forecast's figures and whether each 90% interval covers the truth."""
    net = true["incremental_revenue"] - true["spend"]
    lo, hi = f["net_revenue_interval90"]
    covers = {k: bool(f["interval90"][k][0] <= true[k] <= f["interval90"][k][1]) for k in KEYS}
    return {"forecast": {k: f[k] for k in KEYS}, "ratio": f["ratio"], "interval90": f["interval90"],
            "net_revenue_interval90": [lo, hi], "covers": {**covers, "net_revenue": bool(lo <= net <= hi)},
            "warning": f.get("warning")}


def _variants(r: dict) -> dict[str, dict]:
    """The forecasts of a row: the product's, the campaign's twin alone, the local twin alone. Rows of the run
    of 1ad3cc1 (the product then forecast with the local twin alone) get the product's hull of the two computed
    from their stored intervals, as ``ForecastCorrection.intervals_at`` forms it, the point the campaign twin's."""
    if "keyed_by_budget" in r:
        return {"product": r, "keyed by the planner's budget": r["keyed_by_budget"],
                "campaign's twin only": r["campaign_twin_only"], "local twin only": r["local_twin_only"]}
    if "local_twin_only" in r:
        return {"product": r, "campaign's twin only": r["campaign_twin_only"], "local twin only": r["local_twin_only"]}
    camp = r["campaign_twin_only"]
    iv = {k: [min(r["interval90"][k][0], camp["interval90"][k][0]), max(r["interval90"][k][1], camp["interval90"][k][1])]
          for k in KEYS}
    net = [min(r["net_revenue_interval90"][0], camp["net_revenue_interval90"][0]),
           max(r["net_revenue_interval90"][1], camp["net_revenue_interval90"][1])]
    hull = {**camp["forecast"], "ratio": camp["ratio"], "interval90": iv, "net_revenue_interval90": net}
    hull["warning"] = pipeline.evidence_warning(hull, r["objective"])
    return {"product": _scored(hull, r["true"]), "campaign's twin only": camp, "local twin only": r}


def summarize(rows: list[dict]) -> list[str]:
    lines = []
    for n in sorted({r["n_train"] for r in rows}):
        for label, pick in (("all runs", lambda r: True),
                            ("without a base-rate change no feature shows", lambda r: not r["concept_drift"])):
            part = [r for r in rows if r["n_train"] == n and pick(r) and "covers" in r]
            if not part:
                continue
            lines += [f"### {n:,} past users, {label}", "",
                      "| budget / campaign's | forecast | runs | 90% interval covers: conversions / revenue / spend / "
                      "net revenue | median \\|forecast/true - 1\\|: conversions / spend | warned | "
                      "largest \\|curve - list\\| / list |", "|---|---|---|---|---|---|---|"]
            for m in MULTIPLES:
                at = [r for r in part if r["multiple"] == m]
                if not at:
                    continue
                for how in ("product", "keyed by the planner's budget", "campaign's twin only", "local twin only"):
                    def get(r, how=how):
                        return _variants(r)[how]
                    if any(how not in _variants(r) for r in at):
                        continue
                    cov = " / ".join(f"{np.mean([get(r)['covers'][k] for r in at]):.2f}" for k in (*KEYS, "net_revenue"))
                    err = {k: [abs(get(r)["forecast"][k] / r["true"][k] - 1) for r in at if r["true"][k] > 1e-9]
                           for k in ("incremental_conversions", "spend")}
                    lines.append(f"| {m:g} | {how} | {len(at)} | {cov} | " + " / ".join(
                        f"{np.median(v) if v else float('nan'):.3f}" for v in err.values())
                        + f" | {sum(bool(get(r)['warning']) for r in at)} | {max(r['curve_vs_list'] for r in at):.1e} |")
            moved = [r for r in part if "policy_budget" in r and r["policy_budget"] < r["budget"] * (1 - 1e-3)]
            if moved:
                lines += ["", f"Lists that stop short of their budget (their forecast spend under it, so keyed by that "
                              f"spend): {len(moved)} of {len(part)} (by budget: " + ", ".join(
                                  f"{m:g}x {sum(r['multiple'] == m for r in moved)}" for m in MULTIPLES) + "); there, "
                              "conversions / revenue / spend / net revenue covered by the product "
                              + " / ".join(f"{np.mean([r['covers'][k] for r in moved]):.2f}" for k in (*KEYS, "net_revenue"))
                              + ", keyed by the planner's budget " + " / ".join(
                                  f"{np.mean([r['keyed_by_budget']['covers'][k] for r in moved]):.2f}"
                                  for k in (*KEYS, "net_revenue")) + "."]
            corrected = [r for r in part if r["corrected"]]
            by = [f"{m:g}x {np.mean([_variants(r)['product']['covers']['incremental_conversions'] for r in corrected if r['multiple'] == m]):.2f}"
                  for m in MULTIPLES if any(r["multiple"] == m for r in corrected)]
            lines += ["", f"Runs whose forecast the held-out ratios moved (not shrunk to 1): "
                          f"{len({(r['world'], r['seed']) for r in corrected})} of {len({(r['world'], r['seed']) for r in part})}"
                          + (f"; their conversions' coverage by budget: {', '.join(by)}" if by else "") + ".", ""]
    return lines


def _note(commands: list[str], rows: list[dict]) -> list[str]:
    refused = sorted({(r["world"], r["refused"][:100]) for r in rows if "refused" in r and "multiple" not in r})
    return ["# The what-if curve's forecast at other budgets (issue 16)", "",
            *[f"`{c}`" for c in commands], "",
            "Each run trains the default once and allocates at 0.25-4x the campaign's budget. Its forecast (the same "
            "figures every point of the what-if curve carries, `pipeline.curve_forecast`): the point from the held-out "
            "ratios of the campaign's twin, each 90% interval the hull of that twin's and the one of the twins measured "
            "at 0.25, 0.5, 1 and 2x the budget, interpolated at the policy's budget: the smaller of the list's budget "
            "and its forecast spend (product; before 7b800a6 at the list's budget, kept as a variant where the row has "
            "it). The same policy is also forecast by each twin alone. Rows of the run of 1ad3cc1 have the product "
            "computed from their stored intervals (`_variants`). Truth: each world's potential outcomes.", "",
            *summarize(rows),
            *([f"Refused before any budget ({len(refused)}): " + "; ".join(f"{w}: {why}" for w, why in refused), ""]
              if refused else [])]


def main() -> None:
    ap = argparse.ArgumentParser()
    world_arguments(ap, "20000")
    ap.add_argument("--out", default=str(ROOT / "reports" / "plan_forecast"))
    ap.add_argument("--summarize", default=None, help="comma-separated result JSON files: only write their combined --out.md")
    args = ap.parse_args()
    out = Path(args.out)
    if args.summarize:
        docs = [json.loads(Path(f).read_text()) for f in args.summarize.split(",")]
        rows = [r for d in docs for r in d["rows"]]
        write_bytes(("\n".join(_note([d["command"] for d in docs], rows)) + "\n").encode(), out.with_suffix(".md"))
        return
    worlds = world_campaigns(args)
    rows: list[dict] = []
    command = "PROMO_OPT_THREADS=1 OMP_NUM_THREADS=1 nice .venv/bin/python " + " ".join(sys.argv)
    for n in map(int, args.sizes.split(",")):
        for w, seed in worlds:
            got = one_world(w, seed, n, args.n_candidates)
            rows += got
            write_json({"command": command, "rows": rows}, out.with_suffix(".json"))
            for r in got:
                print(f"{w.name:18s} n={n:>7,} x{r.get('multiple', '-')!s:5s} "
                      + (f"refused: {r['refused'][:90]}" if "refused" in r else
                         f"covers {r['covers']} f/t conv {r['forecast']['incremental_conversions'] / r['true']['incremental_conversions'] if r['true']['incremental_conversions'] else float('nan'):.3f}"),
                      flush=True)
    lines = _note([command], rows)
    write_bytes(("\n".join(lines) + "\n").encode(), out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
