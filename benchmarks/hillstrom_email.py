"""Real randomized data: learn a policy on one half of Hillstrom, check it on the other half, measure it.

1. split ``../shared/data/hillstrom/hillstrom.csv`` (64,000 customers, three e-mail arms assigned at
   random) in two halves by a seeded permutation: half A is the past campaign (``train.csv``), half B
   the users to decide for (``candidates.csv``: features only) and, with its own randomized arms and
   outcomes, the holdout data to check the decision on (``holdout.csv``);
2. ``run`` with ``policies/hillstrom_email.yaml`` (train on A, allocate B under the budget, policy comparison);
3. ``evaluate`` the targets on half B by IPS, SNIPS and DR (the trained model as DR's outcome model);
4. ``measure``: a replay of the campaign on half B. Arms were assigned at random with about equal
   shares, so the users whose logged arm equals the policy's (and the holdout users who got no e-mail)
   are a random subset of each group; their realized outcomes measure the policy against its holdout.

    nice .venv/bin/python benchmarks/hillstrom_email.py [--data ../shared/data/hillstrom/hillstrom.csv] [--split-only]

Writes ``out/hillstrom/`` (the halves and run outputs, not committed) and ``reports/hillstrom_email.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt import pipeline  # noqa: E402
from promo_opt.config import load_config  # noqa: E402
from promo_opt.data import atomic_write, read_table, write_json, write_table  # noqa: E402
from promo_opt.evaluation.measure import measure  # noqa: E402
from promo_opt.evaluation.ope import evaluate_targets  # noqa: E402

FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]


def split(data: Path, out: Path, seed: int = 0) -> None:
    df = read_table(data, "hillstrom")
    df.insert(0, "user_id", [f"h{i:05d}" for i in range(len(df))])
    half = np.random.default_rng(seed).permutation(len(df)) < len(df) // 2
    write_table(df[half], out / "train.csv")
    write_table(df.loc[~half, ["user_id"] + FEATURES], out / "candidates.csv")
    write_table(df.loc[~half, ["user_id"] + FEATURES + ["segment", "conversion", "spend"]], out / "holdout.csv")


def _iv(d: dict) -> str:
    return f"{d['estimate']:,.1f} [{d['ci_low']:,.1f}, {d['ci_high']:,.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hillstrom" / "hillstrom.csv"))
    ap.add_argument("--config", default=str(ROOT / "policies" / "hillstrom_email.yaml"))
    ap.add_argument("--out", default=str(ROOT / "out" / "hillstrom"))
    ap.add_argument("--report", default=str(ROOT / "reports" / "hillstrom_email"))
    ap.add_argument("--split-only", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    split(Path(a.data), out)
    if a.split_only:
        print(f"halves written to {out}")
        return
    t0 = time.perf_counter()
    cfg = load_config(a.config)
    result = pipeline.run(cfg)
    pipeline.write_run(result, cfg, out / "run")
    targets = result.outcome.targets
    holdout = read_table(out / "holdout.csv", "holdout data")
    ev = evaluate_targets(cfg, targets, holdout, result.model, holdout_path=out / "holdout.csv", n_boot=2000)
    write_json(ev.as_dict(), out / "eval" / "evaluation.json")

    # replay: keep the users whose random arm is the one the list gives them (holdout: no e-mail)
    given = targets.set_index(cfg.data.id)["arm"]
    logged = holdout.set_index(cfg.data.id)[cfg.data.treatment]
    keep = (logged.loc[given.index] == given).to_numpy()
    replay = targets[keep]
    realized = holdout.set_index(cfg.data.id).loc[replay[cfg.data.id], [cfg.data.outcome, cfg.data.value]].reset_index()
    write_table(replay, out / "replay_targets.csv")
    write_table(realized, out / "realized.csv")
    m = measure(cfg, replay, realized, n_boot=2000)
    write_json(m.as_dict(), out / "measure" / "measurement.json")
    scale = (~targets["holdout"]).sum() / max((~replay["holdout"]).sum(), 1)

    comp = result.summary["policy_comparison"]
    report = {"config": a.config, "n_train": int(result.model.metrics["n_train"]), "n_candidates": len(targets),
              "summary_expected": result.summary["expected"], "users_per_arm": result.summary["users_per_arm"],
              "learner": result.summary["learner"], "evaluation": ev.as_dict(), "measurement": m.as_dict(),
              "measurement_replay_share": float(keep.mean()), "measurement_scale_to_full_list": float(scale),
              "policy_comparison": comp, "seconds": time.perf_counter() - t0,
              "command": "nice .venv/bin/python benchmarks/hillstrom_email.py"}
    write_json(report, Path(a.report).with_suffix(".json"))
    e = result.summary["expected"]
    evd = ev.as_dict()
    lines = ["# Hillstrom e-mail: learn on half A, check on half B, measure by replay", "",
             f"Command: `{report['command']}` ({report['seconds']:.0f} s). Config `policies/hillstrom_email.yaml` "
             f"(objective net revenue, e-mail 0.10, budget {cfg.constraints.budget:,.0f}, holdout 10%). "
             f"Learner: {report['learner']}. Users per arm: {report['users_per_arm']}.", "",
             "## Off-policy check on half B (95% intervals)", "",
             "| estimator | incremental conversions | incremental revenue | spend | ROI |", "|---|---|---|---|---|",
             f"| expected by the model | {e['incremental_conversions']:,.1f} | {e['incremental_revenue']:,.1f} | "
             f"{e['spend']:,.1f} | {e['roi']:.2f} |"]
    for est in ("ips", "snips", "dr"):
        lines.append(f"| {est} | {_iv(evd[est]['incremental_conversions'])} | {_iv(evd[est]['incremental_revenue'])} | "
                     f"{_iv(evd[est]['spend'])} | {evd[est]['roi']['estimate']:.2f} [{evd[est]['roi']['ci_low']:.2f}, "
                     f"{evd[est]['roi']['ci_high']:.2f}] |")
    md = m.as_dict()
    lines += ["", f"## Measurement by replay ({keep.mean():.1%} of half B kept: {md['n_policy_group']:,} list users, "
              f"{md['n_holdout']:,} holdout users)", "",
              "| quantity | realized (replayed users) | expected (same users) |", "|---|---|---|"]
    for q in ("incremental_conversions", "incremental_revenue", "spend", "roi"):
        lines.append(f"| {q} | {_iv(md['realized'][q])} | {md['expected'][q]:,.2f} |")
    lines += ["", f"## Policy comparison ({comp['scored_by']})", "",
              "| policy | users treated | incr. conversions | incr. revenue | spend | net revenue | ROI |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in comp["rows"]:
        lines.append(f"| {r['policy']} | {r['users_treated']:,} | {r['incremental_conversions']:,.1f} | "
                     f"{r['incremental_revenue']:,.1f} | {r['spend']:,.1f} | {r['net_revenue']:,.1f} | {r['roi']:.2f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(a.report).with_suffix(".md"), lambda p: p.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
