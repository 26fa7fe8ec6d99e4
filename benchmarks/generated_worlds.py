"""The default decision path over worlds no one tuned to (issue 16).

For every generated world (:mod:`promo_opt.simulation.generator`, seeds 0..N-1) and every size of
past campaign, the default config runs train -> score -> allocate, and the policy is scored by the
world's truth:

* share of the oracle (the best allocation with perfect knowledge, same budget and floor);
* the forecast: |forecast / true - 1| for incremental conversions and spend, and whether the
  90% interval (``summary.forecast.interval90``) covers the true totals;
* true spend / budget, true ROI / floor (worlds given a floor), drift detected;
* guarantee mode (worlds given a floor): the same model allocated with
  ``constraints.min_roi_confidence: 0.9``; does the true ROI meet the floor?
* ``--baseline``: the pre-issue-16 auto on the same campaign (``model.race: false``, 10 folds, no
  drift reweighting), paired.

The ROI floor, where given (every third world), is 80% of the oracle's ROI at the budget without a
floor, so that it binds but can be met.

    nice .venv/bin/python benchmarks/generated_worlds.py --worlds 30 --sizes 20000,100000 \\
        [--n-candidates 20000] [--baseline] [--out reports/generated_worlds]

Writes ``<out>.json`` (one row per run, appended as it goes, so a long run can be read early) and
``<out>.md``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.allocation import solve  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import read_table, write_bytes, write_json  # noqa: E402
from promo_opt.economics import build_problem  # noqa: E402
from promo_opt.errors import PromoOptError  # noqa: E402
from promo_opt.evaluation.truth import score_against_truth, truth_economics  # noqa: E402
from promo_opt.simulation.bounds import forecast_bound  # noqa: E402
from promo_opt.simulation.generator import random_world  # noqa: E402
from promo_opt.simulation import load_world  # noqa: E402

KEYS = ("incremental_conversions", "incremental_revenue", "spend")


def floor_for(cfg, truth) -> float:
    """80% of the oracle's ROI at the campaign's budget without a floor (0 when it has no spend)."""
    from promo_opt.data import load_candidates

    ids = load_candidates(cfg, []).ids
    econ = truth_economics(cfg, ids, truth)
    res = solve(build_problem(econ, cfg, budget=cfg.constraints.budget, min_roi=None), solver="dual")
    t = econ.totals(res.arm)
    return round(0.8 * t["roi"], 4) if t["spend"] > 0 and np.isfinite(t["roi"]) and t["roi"] > 0 else 0.0


def signal_z(cfg, truth) -> float:
    """How visible the promotions' effects are in the past campaign: the largest |true average effect|
    of a promotion on the candidates, in standard errors of the past campaign's difference in means
    (the per-arm outcome variances and counts of ``train.csv``). Under about 2, no learner can tell from
    the data whether any promotion works, and a share of the oracle there says more about luck than
    about the learner; the benchmark reports it per run and splits the share by it."""
    train = read_table(cfg.data.train)
    y = train[cfg.data.outcome].astype(float)
    g = y.groupby(train[cfg.data.treatment].astype(str))
    var, cnt = g.var(), g.count()
    ctrl = next(a.name for a in cfg.arms if a.control)
    z = []
    for a in cfg.arms:
        if a.control or a.name not in cnt:
            continue
        ate = float((truth[f"p_{a.name}"] - truth[f"p_{ctrl}"]).mean())
        se = float(np.sqrt(var[ctrl] / cnt[ctrl] + var[a.name] / cnt[a.name]))
        z.append(abs(ate) / se if se > 0 else float("inf"))
    return max(z) if z else float("nan")


def _signal_of(row: dict, n_candidates: int) -> float:
    """:func:`signal_z` of an earlier run's campaign, rewritten from its world, seed and size."""
    name = row["world"]
    world = random_world(int(name.split("_")[1])) if name.startswith("generated_") else load_world(name)
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(world.write_campaign(d, seed=row["seed"], n_train=row["n_train"], n_candidates=n_candidates))
        return signal_z(cfg, read_table(cfg.data.truth))


def bound_targets(b) -> dict:
    """A :class:`~promo_opt.simulation.bounds.ForecastBound` with the best forecast's chances at the issue's
    targets: conversions within ±10%, a calibrated 90% interval covering them, spend within ±5% (None for a
    total of zero), and how far the invisible base-rate change moves the conversions, in standard errors."""
    treats, se = b.total["incremental_conversions"] != 0, b.se["incremental_conversions"]
    return {**b.as_dict(), "conv_within10": b.within("incremental_conversions", 0.10) if treats else None,
            "conv_cover90": b.coverage("incremental_conversions") if treats else None,
            "bias_se": b.bias("incremental_conversions") / se if treats and se > 0 else None,
            "spend_within5": b.within("spend", 0.05) if b.total["spend"] else None}


def bound_row(world, seed: int, n_train: int, n_candidates: int, ids, arm) -> dict:
    """The efficiency bound of the run's own policy (:mod:`promo_opt.simulation.bounds`): what the best
    forecast from the same past campaign could reach, next to what the product's did."""
    return bound_targets(forecast_bound(world, seed, n_train, n_candidates, arm, ids=ids))


def score(cfg, model, scores, truth, bound=None, **alloc) -> dict:
    """``bound``: ``(ids, arm) -> dict``, the efficiency bound of the allocated policy (``row["bound"]``)."""
    out = pipeline.allocate(cfg, scores, correction=model.metrics.get("forecast_correction"), **alloc)
    rep = score_against_truth(cfg, out.ids, out.arm, ~out.holdout, truth, out.summary["expected"], out.budget,
                              out.min_roi, forecast=out.summary.get("forecast")).as_dict()
    f = out.summary.get("forecast") or {}
    row = {"share_of_oracle": rep["share_of_oracle"], "objective": rep["objective"],
           "policy_true": rep["policy_true"], "oracle_true": rep["oracle_true"], "expected": out.summary["expected"],
           "forecast": {k: f.get(k) for k in KEYS}, "interval90": f.get("interval90"),
           "net_revenue_interval90": f.get("net_revenue_interval90"), "forecast_warning": f.get("warning"),
           "interval90_covers": rep.get("interval90_covers"), "true_spend_vs_budget": rep.get("true_spend_vs_budget"),
           "true_roi_vs_floor": rep.get("true_roi_vs_floor"), "roi_guarantee": out.summary.get("roi_guarantee"),
           "allocated_budget": out.summary.get("allocated_budget")}
    if bound is not None:
        row["bound"] = bound(out.ids, out.arm)
    return row


def one_run(world, seed: int, n_train: int, n_candidates: int, baseline: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = world.write_campaign(d, seed=seed, n_train=n_train, n_candidates=n_candidates)
        cfg = load_config(path)
        truth = read_table(cfg.data.truth)
        floor = floor_for(cfg, truth) if seed % 3 == 0 else 0.0
        over = {"constraints.min_roi": floor} if floor > 0 else {}
        cfg = load_config(path, **over)
        row = {"world": world.name, "seed": seed, "n_train": n_train, "outcome_type": world.spec.outcome_type,
               "budget": cfg.constraints.budget,
               "objective": cfg.objective, "arms": len(cfg.arm_names), "min_roi": floor or None,
               "drifted_world": bool(world.spec.drift.shift or world.spec.drift.logit_shift),
               "concept_drift": bool(world.spec.drift.logit_shift), "signal_z": signal_z(cfg, truth),
               "load_before": os.getloadavg()[0]}
        t0 = time.perf_counter()
        try:
            model = pipeline.train(cfg)
        except PromoOptError as err:  # a refusal (e.g. drift beyond the training data's support) is a result
            row.update({"refused": str(err), "seconds_train": time.perf_counter() - t0})
            return row
        row["seconds_train"] = time.perf_counter() - t0
        ev = model.metrics.get("evidence") or {}
        row["evidence_z"] = max((abs(a["z"]) for a in (ev.get("arms") or {}).values()), default=None)
        row["evidence_warning"] = ev.get("warning")
        t1 = time.perf_counter()
        scores = pipeline.score_candidates(cfg, model)
        row["seconds_score"] = time.perf_counter() - t1
        try:
            row.update(score(cfg, model, scores, truth,
                             bound=lambda ids, arm: bound_row(world, seed, n_train, n_candidates, ids, arm)))
        except PromoOptError as err:  # e.g. the model sees no policy that meets the floor: a clear refusal
            row.update({"refused": str(err), "seconds_total": time.perf_counter() - t0})
            return row
        row["seconds_total"] = time.perf_counter() - t0
        sel = model.metrics["selection"]
        row.update({"learner": sel["chosen"], "race": sel.get("race", {}).get("eliminated", {}),
                    "threads": model.metrics.get("threads"), "drift": {k: (model.metrics.get("drift") or {}).get(k)
                                                                      for k in ("auc", "shifted", "action")}})
        if floor > 0:
            g = load_config(path, **over, **{"constraints.min_roi_confidence": 0.9})
            try:
                row["guarantee"] = score(g, model, scores, truth)
            except PromoOptError as err:
                row["guarantee"] = {"refused": str(err)}
        if baseline:
            b = load_config(path, **over, **{"model.race": False, "model.folds": 10, "drift.reweight": False})
            t2 = time.perf_counter()
            bm = pipeline.train(b)
            bs = pipeline.score_candidates(b, bm)
            try:
                row["baseline"] = {**score(b, bm, bs, truth), "learner": bm.metrics["selection"]["chosen"],
                                   "seconds_total": time.perf_counter() - t2}
            except PromoOptError as err:
                row["baseline"] = {"refused": str(err)}
        return row


def _attainable(rows, key, tol):
    """The share of runs within ±tol that the runs' own 90% intervals allow: each interval read as a normal
    forecast error of sd = half-width / 1.645 (relative to the forecast), P(|error| <= tol) averaged. Where
    the intervals cover at their nominal rate, no point forecast from the same information does much better."""
    from scipy.stats import norm

    p = [2 * norm.cdf(tol / se) - 1 for se in (own_se(r, key) for r in rows) if se]
    return float(np.mean(p)) if p else float("nan")


def own_se(r: dict, key: str) -> float | None:
    """A run's own standard error of ``key``, relative to its forecast: its 90% interval's half-width / 1.645."""
    fc, iv = r["forecast"].get(key), (r.get("interval90") or {}).get(key)
    return (iv[1] - iv[0]) / 2 / 1.645 / fc if fc and fc > 0 and iv and iv[1] > iv[0] else None


def within(r: dict, key: str, tol: float) -> bool | None:
    """Whether a run's point forecast of ``key`` is within ±tol of the truth (None without one, or at a true 0)."""
    if r["forecast"].get(key) is None or abs(r["policy_true"][key]) <= 1e-9:
        return None
    return abs(r["forecast"][key] / r["policy_true"][key] - 1) <= tol


def spends_budget(r: dict) -> bool:
    """The run's policy is expected to spend its budget (so its true spend is measured against the budget)."""
    return bool(r.get("true_spend_vs_budget")) and r["expected"]["spend"] >= 0.99 * _held_budget(r)


def _within(rows, key, tol):
    vals = [v for v in (within(r, key, tol) for r in rows) if v is not None]
    return float(np.mean(vals)) if vals else float("nan"), len(vals)


def summarize(rows: list[dict]) -> list[str]:
    """One table per size: all runs, and the runs without a base-rate change that no feature shows
    (``concept_drift``: the candidates convert at another rate for no visible reason; nothing learned
    from the past campaign can forecast it, the holdout measures it afterwards)."""
    lines = []
    for n in sorted({r["n_train"] for r in rows}):
        for label, pick in (("all runs", lambda r: True),
                            ("without a base-rate change no feature shows", lambda r: not r.get("concept_drift"))):
            part = [r for r in rows if r["n_train"] == n and pick(r)]
            if part:
                lines += _table(n, label, part)
    return lines


def _shares(rows: list[dict]) -> list[float]:
    """Shares of the oracle of the runs where it is defined (the oracle gains something)."""
    return [r["share_of_oracle"] for r in rows
            if r["share_of_oracle"] is not None and r["oracle_true"][r["objective"]] > 0]


def _held_budget(r: dict) -> float | None:
    """The budget on the model's expected spend the run's allocator held (``summary.allocated_budget``: the
    budget held on the forecast); the planner's budget for runs made before it existed."""
    return r.get("allocated_budget") or r.get("budget")


def _flagged(r: dict) -> bool:
    """The drift check flagged the run (warning, reweighting)."""
    return bool((r.get("drift") or {}).get("shifted"))


def _warned(r: dict) -> bool:
    """The run told the planner something is off: the drift warning, the budget warning
    (``summary.budget_use.warning``: the policy expects to spend under half the budget), the forecast's
    (``summary.forecast.warning``: its 90% interval does not show a gain; recomputed from the stored
    intervals for runs made before it existed) or the evidence warning (no promotion's average effect shown
    by the past campaign; not stored by runs made before it existed)."""
    use = pipeline.budget_use(r["expected"], _held_budget(r), r.get("min_roi"), r["objective"]) or {}
    return _flagged(r) or "warning" in use or _forecast_warned(r) or bool(r.get("evidence_warning"))


def _forecast_warned(r: dict) -> bool:
    """``summary.forecast.warning`` was set; for runs made before it existed, recomputed from the stored
    intervals (their net revenue interval was not stored: the conversions' alone)."""
    if "forecast_warning" in r:
        return bool(r["forecast_warning"])
    return bool(pipeline.evidence_warning({"interval90": r.get("interval90"),
                                           "net_revenue_interval90": r.get("net_revenue_interval90")},
                                          r["objective"]))


def _bound_lines(sel: list[dict]) -> list[str]:
    """The same targets for the best forecast from the past campaign (the efficiency bound of each run's own
    policy, ``row["bound"]``), for runs made since it was recorded."""
    b = [r["bound"] for r in sel if r.get("bound")]
    if not b:
        return []
    budget = [r["bound"]["spend_within5"] for r in sel if r.get("bound") and spends_budget(r)
              and r["bound"]["spend_within5"] is not None]

    def mean(v):
        v = [x for x in v if x is not None]
        return f"{np.mean(v):.2f}" if v else "-"

    return [f"| the best forecast from the past campaign (efficiency bound of each run's policy, "
            f"`promo_opt/simulation/bounds.py`): conversions within ±10% / spend within ±5% of budget / a calibrated "
            f"90% interval covers the conversions | {mean([x['conv_within10'] for x in b])} / {mean(budget)} / "
            f"{mean([x['conv_cover90'] for x in b])} |"]


def _table(n: int, label: str, rows: list[dict]) -> list[str]:
    # share of the oracle is defined where the oracle gains something (a world where no promotion pays has
    # nothing to share); such runs still count for the forecast and the budget
    sel = [r for r in rows if "share_of_oracle" in r]
    lines = []
    if sel:
        share = np.array(_shares(sel))
        cov = {k: float(np.mean([r["interval90_covers"][k] for r in sel if r.get("interval90_covers")])) for k in KEYS}
        conv10, m = _within(sel, "incremental_conversions", 0.10)
        spend5, _ = _within(sel, "spend", 0.05)
        # where the budget binds (the policy is expected to spend it all)
        budget5 = [abs(r["true_spend_vs_budget"] - 1) <= 0.05 for r in sel if spends_budget(r)]
        floors = [r["true_roi_vs_floor"] >= 1 for r in sel if r.get("true_roi_vs_floor")]
        g = [r["guarantee"] for r in sel if isinstance(r.get("guarantee"), dict)
             and r["guarantee"].get("true_roi_vs_floor") is not None]
        lines += [f"### {n:,} past users, {label} ({len(sel)} runs, {sum(1 for r in rows if 'refused' in r)} refused)", "",
                  "| measure | value |", "|---|---|",
                  f"| share of the oracle: mean (median, 10th percentile), {len(share)} runs where the oracle gains | "
                  f"{share.mean():.3f} ({np.median(share):.3f}, {np.quantile(share, 0.1):.3f}) |",
                  f"| 90% interval covers the truth: conversions / revenue / spend | {cov['incremental_conversions']:.2f} / "
                  f"{cov['incremental_revenue']:.2f} / {cov['spend']:.2f} |",
                  f"| point forecast of conversions within ±10% | {conv10:.2f} ({m} runs) |",
                  f"| the same, as far as the runs' own 90% intervals allow (their width read as the forecast's "
                  f"error) | {_attainable(sel, 'incremental_conversions', 0.10):.2f} |",
                  *_bound_lines(sel),
                  f"| forecast spend within ±5% of true spend | {spend5:.2f} |",
                  f"| true spend within ±5% of budget | {np.mean(budget5) if budget5 else float('nan'):.2f} ({len(budget5)} runs with a budget) |",
                  f"| ROI floor met in truth (plain floor) | {np.mean(floors) if floors else float('nan'):.2f} ({len(floors)} runs) |",
                  f"| ROI floor met in truth (min_roi_confidence 0.9) | "
                  f"{np.mean([x['true_roi_vs_floor'] >= 1 for x in g]) if g else float('nan'):.2f} ({len(g)} runs) |",
                  f"| mean seconds train / total | {np.mean([r['seconds_train'] for r in sel]):.1f} / "
                  f"{np.mean([r['seconds_total'] for r in sel]):.1f} |"]
        by_obj = {o: _shares([r for r in sel if r["objective"] == o]) for o in ("incremental_conversions", "net_revenue")}
        lines.append("| share of the oracle by objective: conversions / net revenue (runs) | " + " / ".join(
            f"{np.mean(v):.3f} ({len(v)})" if v else "-" for v in by_obj.values()) + " |")
        if any(r.get("signal_z") is not None for r in sel):
            vis = {lab: _shares([r for r in sel if r.get("signal_z") is not None and pick(r["signal_z"])])
                   for lab, pick in (("visible", lambda z: z >= 2), ("not", lambda z: z < 2))}
            lines.append("| share of the oracle where a promotion's average effect is visible in the past campaign "
                         "(signal z >= 2, see `signal_z`) / not (runs) | " + " / ".join(
                             f"{np.mean(v):.3f} ({len(v)})" if v else "-" for v in vis.values()) + " |")
        if any("evidence_warning" in r for r in sel):
            shown = {lab: [r for r in sel if "evidence_warning" in r and bool(r["evidence_warning"]) == w]
                     for lab, w in (("shown", False), ("not", True))}
            agree = sum((r["evidence_warning"] is None) == (r["signal_z"] >= 2) for r in sel
                        if "evidence_warning" in r and r.get("signal_z") is not None)
            lines.append("| share of the oracle where the past campaign shows a promotion's average effect (no evidence "
                         "warning, from the data alone) / not (runs); runs where it agrees with signal z >= 2 | "
                         + " / ".join(f"{np.mean(_shares(v)):.3f} ({len(_shares(v))})" if _shares(v) else "-"
                                      for v in shown.values())
                         + f"; {agree} of {sum(1 for r in sel if 'evidence_warning' in r)} |")
        floors_share = _shares([r for r in sel if r.get("min_roi")])
        plain_share = _shares([r for r in sel if not r.get("min_roi")])
        lines.append("| share of the oracle: runs with an ROI floor / without (runs) | " + " / ".join(
            f"{np.mean(v):.3f} ({len(v)})" if v else "-" for v in (floors_share, plain_share)) + " |")
        drifted = [r for r in sel if r.get("drifted_world")]
        if drifted:
            quiet = _shares([r for r in drifted if not _flagged(r)])
            lines.append(f"| drifted worlds: flagged by the drift check (warning, reweighted) / not flagged; "
                         f"share of the oracle where not flagged: mean (min) | "
                         f"{sum(map(_flagged, drifted))} / {sum(not _flagged(r) for r in drifted)}; "
                         + (f"{np.mean(quiet):.3f} ({np.min(quiet):.3f})" if quiet else "-") + " |")
        low = [r for r in sel if r["share_of_oracle"] is not None and r["oracle_true"][r["objective"]] > 0
               and r["share_of_oracle"] < 0.5]
        if low:
            silent = [r for r in low if not _warned(r)]
            lines.append(f"| runs under half the oracle: warned (drift, budget, forecast or evidence warning) / silent; silent ones "
                         f"in drifted worlds | {len(low) - len(silent)} / {len(silent)}; "
                         f"{sum(1 for r in silent if r.get('drifted_world'))} |")
        scored = [r for r in sel if r["share_of_oracle"] is not None and r["oracle_true"][r["objective"]] > 0]
        if scored:
            warned = [r for r in scored if _forecast_warned(r)]
            lines.append("| forecast warning (the 90% interval of the gain reaches zero): runs warned; their share of the "
                         "oracle: under 0.5 / 0.5-0.8 / 0.8 and over | "
                         f"{len(warned)} of {len(scored)}; " + " / ".join(
                             str(sum(lo <= r["share_of_oracle"] < hi for r in warned))
                             for lo, hi in ((-np.inf, 0.5), (0.5, 0.8), (0.8, np.inf))) + " |")
        err = [(abs(r["expected"][k] / r["policy_true"][k] - 1), abs(r["forecast"][k] / r["policy_true"][k] - 1))
               for r in sel for k in ("incremental_conversions",) if r["forecast"].get(k) is not None
               and abs(r["policy_true"][k]) > 1e-9]
        if err:
            e = np.array(err)
            lines.append(f"| winner's-curse correction: median \\|expected/true - 1\\| -> \\|forecast/true - 1\\| "
                         f"(conversions); runs it moved, closer / farther | {np.median(e[:, 0]):.3f} -> "
                         f"{np.median(e[:, 1]):.3f}; {int((e[:, 1] < e[:, 0] - 1e-9).sum())} / "
                         f"{int((e[:, 1] > e[:, 0] + 1e-9).sum())} |")
        base = [r for r in sel if isinstance(r.get("baseline"), dict) and r["baseline"].get("share_of_oracle") is not None]
        if base:
            d = np.array([r["share_of_oracle"] - r["baseline"]["share_of_oracle"] for r in base])
            lines.append(f"| new default minus pre-issue auto, share of the oracle (paired, {len(base)} runs) | "
                         f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan'):.3f} |")
        lines.append("")
    return lines


# the product's runs over these campaigns, set beside the references (forecast_bounds.py, known_form.py)
PRODUCT_RUNS = ("reports/generated_worlds_20k_evidence_a.json,reports/generated_worlds_20k_evidence_b.json,"
                "reports/generated_worlds_100k_evidence_a.json,reports/generated_worlds_100k_evidence_b.json")


def world_campaigns(args: argparse.Namespace) -> list[tuple]:
    """(world, campaign seed) for :func:`world_arguments`: generated world k gets seed k, the named worlds the
    seeds after them, as a run of this script from world 0 gives them."""
    worlds = [(random_world(s), s) for s in range(args.first, args.first + args.worlds)]
    return worlds + [(load_world(w), args.first + args.worlds + i)
                     for i, w in enumerate(x for x in args.named.split(",") if x)]


def product_runs(ap: argparse.ArgumentParser) -> None:
    """``--product``: result files of this script on the same campaigns, read by :func:`read_runs`."""
    ap.add_argument("--product", default=PRODUCT_RUNS, help="comma-separated result JSON files of "
                                                           "generated_worlds.py on the same campaigns")


def read_runs(files: str) -> tuple[list[str], list[dict]]:
    """The files named in ``files`` (comma-separated, relative to the repository) and their rows together."""
    sources = [f for f in files.split(",") if f]
    return sources, [r for f in sources for r in json.loads((ROOT / f).read_text())["rows"]]


def world_arguments(ap: argparse.ArgumentParser, sizes: str) -> None:
    """The worlds and sizes a benchmark over generated worlds runs (this one, ``plan_forecast.py``)."""
    ap.add_argument("--worlds", type=int, default=30, help="generated worlds first..first+N-1")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--named", default="", help="also these scenario worlds, e.g. travel,retail_vouchers (their "
                                                "seeds follow the generated worlds')")
    ap.add_argument("--sizes", default=sizes, help="past users, comma-separated")
    ap.add_argument("--n-candidates", type=int, default=20000)


def main() -> None:
    ap = argparse.ArgumentParser()
    world_arguments(ap, "20000,100000")
    ap.add_argument("--seed", type=int, default=0,
                    help="campaign seed of the first world; the i-th world of this run gets seed + i (so a run split "
                         "with --first K needs --seed K to make the same campaigns, and the same floors, as one run)")
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--floors-only", action="store_true",
                    help="only the runs that get an ROI floor (campaign seed divisible by 3): an ablation of a change "
                         "that touches nothing else")
    ap.add_argument("--objective", default=None, choices=("conversions", "net_revenue"),
                    help="only the runs of worlds with this objective: an ablation of a change that touches nothing "
                         "else (e.g. the net revenue's break-even held on the twin)")
    ap.add_argument("--only", default=None,
                    help="comma-separated world names: only their runs, each with the campaign seed it gets in the "
                         "full run (e.g. a larger --sizes on the worlds that fall short)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "generated_worlds"))
    ap.add_argument("--summarize", default=None,
                    help="comma-separated result JSON files of earlier runs: only write their combined --out.md")
    ap.add_argument("--replacing", default=None,
                    help="with --summarize: comma-separated result JSON files whose rows replace the runs of the same "
                         "world, campaign seed and size (e.g. an --objective ablation over a full run; their rows of "
                         "sizes the summarized runs lack are left out)")
    ap.add_argument("--annotate", action="store_true",
                    help="with --summarize: first add signal_z to rows that lack it (the campaigns are rewritten, "
                         "byte-identical, from world, seed and size; --n-candidates as in the run) and save the files")
    args = ap.parse_args()
    if args.summarize and args.annotate:
        for f in args.summarize.split(","):
            doc = json.loads(Path(f).read_text())
            for r in doc["rows"]:
                if r.get("signal_z") is None:
                    r["signal_z"] = _signal_of(r, args.n_candidates)
            write_json(doc, Path(f))
    if args.summarize:
        files = args.summarize.split(",")
        rows = [r for f in files for r in json.loads(Path(f).read_text())["rows"]]
        commands = [json.loads(Path(f).read_text())["command"] for f in files]
        if args.replacing:
            sizes = {r["n_train"] for r in rows}  # a replacing file may hold other sizes too
            new = [r for f in args.replacing.split(",") for r in json.loads(Path(f).read_text())["rows"]
                   if r["n_train"] in sizes]
            by = {(r["world"], r["seed"], r["n_train"]): r for r in new}
            rows = [by.pop((r["world"], r["seed"], r["n_train"]), r) for r in rows]
            if by:
                raise SystemExit(f"--replacing: runs not in the --summarize files: {sorted(by)}")
            commands += [json.loads(Path(f).read_text())["command"] + " (replacing its runs)"
                         for f in args.replacing.split(",")]
        write_bytes(("\n".join(_note(commands, rows)) + "\n").encode(), Path(args.out).with_suffix(".md"))
        return
    worlds = [random_world(s) for s in range(args.first, args.first + args.worlds)]
    worlds += [load_world(w) for w in args.named.split(",") if w]
    if args.only and (unknown := set(args.only.split(",")) - {w.name for w in worlds}):
        raise SystemExit(f"--only: {sorted(unknown)} are not among this run's worlds (--worlds, --first, --named)")
    rows = []
    out = Path(args.out)
    for n in map(int, args.sizes.split(",")):
        for i, w in enumerate(worlds):
            if args.floors_only and (args.seed + i) % 3:
                continue
            if args.objective and w.spec.campaign.objective != args.objective:
                continue
            if args.only and w.name not in args.only.split(","):
                continue
            r = one_run(w, args.seed + i, n, args.n_candidates, args.baseline)
            rows.append(r)
            write_json({"command": " ".join(sys.argv), "rows": rows}, out.with_suffix(".json"))
            if "refused" in r:
                print(f"{w.name:16s} n={n:>7,} refused: {r['refused'][:120]}", flush=True)
                continue
            print(f"{w.name:16s} n={n:>7,} {r['outcome_type']:6s} share {r['share_of_oracle']:.3f} "
                  f"conv f/t {r['forecast']['incremental_conversions'] / r['policy_true']['incremental_conversions'] if r['policy_true']['incremental_conversions'] else float('nan'):.3f} "
                  f"covers {r['interval90_covers']} spend/budget {r.get('true_spend_vs_budget') or float('nan'):.3f} "
                  f"{r['learner']} {r['seconds_total']:.0f}s"
                  + (f" base {r['baseline']['share_of_oracle']:.3f}" if "baseline" in r else ""), flush=True)
    lines = _note([" ".join(sys.argv)], rows)
    write_bytes(("\n".join(lines) + "\n").encode(), out.with_suffix(".md"))
    print("\n".join(lines))


def _note(commands: list[str], rows: list[dict]) -> list[str]:
    return ["# The default decision path over generated worlds (issue 16)", "",
            *[f"`nice .venv/bin/python {c}`" for c in commands], "",
            "Generated worlds: `promo_opt/simulation/generator.py` (random features, arms, effect shapes, base rates, "
            "drift, outcome types). Truth: each world's potential outcomes. Every third world gets an ROI floor of "
            "80% of the oracle's ROI at its budget.", "", *summarize(rows), *_rows_table(rows)]


def _rows_table(rows: list[dict]) -> list[str]:
    def f(x):
        return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"

    out = ["", "| world | past users | outcome | objective | share of oracle | forecast/true conv | interval covers "
               "conv / rev / spend | true spend / budget | drift AUC | concept drift | signal z | evidence z | learner |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "refused" in r:
            out.append(f"| {r['world']} | {r['n_train']:,} | {r['outcome_type']} | {r['objective']} | refused: "
                       f"{r['refused'][:110].replace('|', '/')} | | | | | {r.get('concept_drift')} | {f(r.get('signal_z'))} | "
                       f"{f(r.get('evidence_z'))} | |")
            continue
        t, fc = r["policy_true"]["incremental_conversions"], r["forecast"].get("incremental_conversions")
        cov = r.get("interval90_covers") or {}
        out.append(f"| {r['world']} | {r['n_train']:,} | {r['outcome_type']} | {r['objective']} | "
                   f"{f(r['share_of_oracle'])} | {f(fc / t if fc is not None and abs(t) > 1e-9 else None)} | "
                   f"{' / '.join(str(cov.get(k, '-')) for k in KEYS)} | {f(r.get('true_spend_vs_budget'))} | "
                   f"{f((r.get('drift') or {}).get('auc'))} | {r.get('concept_drift')} | {f(r.get('signal_z'))} | "
                   f"{f(r.get('evidence_z'))} | {r.get('learner')} |")
    return out


if __name__ == "__main__":
    main()
