"""How much the past campaign allows: the share of the oracle a learner that knows each world's form reaches.

For every campaign of ``benchmarks/generated_worlds.py`` (world k with campaign seed k, the named worlds after
them, the same budgets and ROI floors, the same past users), :mod:`promo_opt.simulation.known_form` fits the
world's own response model (every term, threshold and latent type given; only the coefficients estimated, by
maximum likelihood started at the truth; the features before they went missing; the true order values) and the
exact allocator picks the policy its predictions make best at the campaign's budget and floor, taken at face
value. The truth scores it as it scores the product. Its share of the oracle is a reference for what a
campaign of that size allows: the product's learners know none of the form. The product's figures on the same
campaigns are read from its result files (``--product``).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/known_form.py --worlds 30 \\
        --named travel,retail_vouchers,subscription_drift --sizes 20000,100000 --out reports/known_form
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generated_worlds import floor_for, product_runs, read_runs, world_arguments, world_campaigns  # noqa: E402  (benchmarks/ is on the path)

from promo_opt import pipeline  # noqa: E402
from promo_opt.allocation import solve  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import load_candidates, read_table, write_bytes, write_json  # noqa: E402
from promo_opt.economics import build_problem, campaign_economics  # noqa: E402
from promo_opt.evaluation.truth import score_against_truth  # noqa: E402
from promo_opt.simulation.bounds import candidates_of  # noqa: E402
from promo_opt.simulation.known_form import fit  # noqa: E402



def one_run(world, seed: int, sizes: list[int], n_candidates: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:  # the campaign's config, candidates and truth (not its past users)
        path = world.write_campaign(d, seed=seed, n_train=1000, n_candidates=n_candidates)
        cfg = load_config(path)
        truth = read_table(cfg.data.truth)
        floor = floor_for(cfg, truth) if seed % 3 == 0 else 0.0
        cfg = load_config(path, **({"constraints.min_roi": floor} if floor > 0 else {}))
        ids = load_candidates(cfg, []).ids
        cand = candidates_of(world, seed, n_candidates)
        if list(cand.features["user_id"]) != list(ids):
            raise SystemExit(f"{world.name}: the candidates are not in the order they were drawn in")
        treat = ~pipeline.holdout_mask(len(ids), cfg.holdout.fraction, cfg.seed)
        s_train, s_real, _ = world.campaign_seeds(seed)
        for n in sizes:
            t0 = time.perf_counter()
            train = world.sample(n, seed=s_train, population="train")  # the past users write_campaign writes at n
            past = world.realize(train, seed=s_real)
            arm = past["arm"].map({a: k for k, a in enumerate(world.arm_names)}).to_numpy()
            y = past[world.outcome_column].to_numpy(dtype=np.float64)
            model = fit(world, train, arm, (y > 0).astype(np.float64) if world.spec.outcome_type == "amount" else y)
            p = model.predict(cand)
            econ = campaign_economics(cfg, p, cand.true_value)
            row = {"world": world.name, "seed": seed, "n_train": n, "outcome_type": world.spec.outcome_type,
                   "min_roi": floor or None,
                   "concept_drift": bool(world.spec.drift.logit_shift), "converged": model.converged,
                   "iterations": model.iterations}
            res = solve(build_problem(econ.subset(treat), cfg, budget=cfg.constraints.budget, min_roi=floor or None),
                        solver="dual")
            full = np.zeros(len(ids), dtype=np.int64)
            full[treat] = res.arm
            rep = score_against_truth(cfg, ids, full, treat, truth, econ.totals(full), cfg.constraints.budget,
                                      floor or None).as_dict()
            row.update({k: rep.get(k) for k in ("objective", "share_of_oracle", "true_spend_vs_budget",
                                                "true_roi_vs_floor")},
                       oracle_true=rep["oracle_true"], policy_true=rep["policy_true"],
                       seconds=time.perf_counter() - t0)
            rows.append(row)
    return rows


def _shares(rows):
    return [r["share_of_oracle"] for r in rows if r.get("share_of_oracle") is not None
            and r["oracle_true"][r["objective"]] > 0]


def _note(command: str, rows: list[dict], product: dict, sources: list[str]) -> list[str]:
    lines = ["# How much the past campaign allows: a learner that knows each world's form (issue 16)", "", f"`{command}`",
             "", "Every campaign of `benchmarks/generated_worlds.py` (same worlds, seeds, budgets, floors and past users). "
             "The known-form learner (`promo_opt/simulation/known_form.py`) is given each world's response model "
             "except its coefficients, the features before they went missing and the true order values; its "
             "predictions are allocated at face value by the exact allocator. The product's shares are from "
             + ", ".join(f"`{s}`" for s in sources) + " (runs it refused are left out of the pairs, as its report leaves them out).", ""]
    for n in sorted({r["n_train"] for r in rows}):
        for label, pick in (("all runs", lambda r: True), ("no ROI floor", lambda r: not r["min_roi"]),
                            ("with an ROI floor", lambda r: bool(r["min_roi"])),
                            ("no floor, no base-rate change no feature shows",
                             lambda r: not r["min_roi"] and not r["concept_drift"])):
            part = [r for r in rows if r["n_train"] == n and pick(r)]
            kf = _shares(part)
            pairs = [(r["share_of_oracle"], product[(r["world"], n)]) for r in part
                     if (r["world"], n) in product and r.get("share_of_oracle") is not None
                     and r["oracle_true"][r["objective"]] > 0]
            floors = [r["true_roi_vs_floor"] >= 1 for r in part if r.get("true_roi_vs_floor") is not None]
            d = np.array([a - b for a, b in pairs])
            lines += [f"### {n:,} past users, {label} ({len(kf)} runs where the oracle gains)", "",
                      "| measure | value |", "|---|---|",
                      f"| known form: share of the oracle, mean (median, 10th percentile) | {np.mean(kf):.3f} "
                      f"({np.median(kf):.3f}, {np.quantile(kf, 0.1):.3f}) |" if kf else "| known form | - |",
                      "| the product on the same runs, mean; known form minus product, paired (runs) | "
                      + (f"{np.mean([b for _, b in pairs]):.3f}; {d.mean():+.3f} +- {d.std(ddof=1) / np.sqrt(len(d)):.3f} "
                         f"({len(d)})" if len(d) > 1 else "-") + " |",
                      "| known form: ROI floor met in truth | "
                      + (f"{np.mean(floors):.2f} ({len(floors)} runs)" if floors else "-") + " |", ""]
    lines += ["| world | past users | outcome | objective | floor | concept drift | known form: share | product: share | "
              "known form: true ROI / floor | known form: spend / budget | iterations |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v):
        return "-" if v is None else f"{v:.3f}"

    for r in rows:
        lines.append(f"| {r['world']} | {r['n_train']:,} | {r['outcome_type']} | {r['objective']} | {f(r['min_roi'])} | "
                     f"{r['concept_drift']} | {f(r['share_of_oracle'])} | {f(product.get((r['world'], r['n_train'])))} | "
                     f"{f(r['true_roi_vs_floor'])} | {f(r['true_spend_vs_budget'])} | {r['iterations']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    world_arguments(ap, "20000,100000")
    ap.add_argument("--out", default=str(ROOT / "reports" / "known_form"))
    product_runs(ap)
    args = ap.parse_args()
    worlds = world_campaigns(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    command = "OMP_NUM_THREADS=1 nice .venv/bin/python " + " ".join(sys.argv)
    sources, runs = read_runs(args.product)
    product = {(r["world"], r["n_train"]): r.get("share_of_oracle") for r in runs
               if "refused" not in r}  # as the product's report counts them
    rows: list[dict] = []
    out = Path(args.out)
    for w, seed in worlds:
        got = one_run(w, seed, sizes, args.n_candidates)
        rows += got
        write_json({"command": command, "rows": rows}, out.with_suffix(".json"))
        for r in got:
            print(f"{w.name:18s} n={r['n_train']:>8,} share {r['share_of_oracle'] if r['share_of_oracle'] is not None else float('nan'):.3f} "
                  f"product {product.get((w.name, r['n_train'])) if product.get((w.name, r['n_train'])) is not None else float('nan'):.3f} "
                  f"{r['seconds']:.0f}s", flush=True)
    rows.sort(key=lambda r: r["n_train"])
    write_json({"command": command, "rows": rows}, out.with_suffix(".json"))
    write_bytes(("\n".join(_note(command, rows, product, sources)) + "\n").encode(), out.with_suffix(".md"))


if __name__ == "__main__":
    main()
