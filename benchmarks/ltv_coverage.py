"""Coverage of the 95% intervals of ``long_term`` and its error, in the simulated panel worlds.

For every world in ``scenarios/ltv/`` and every seed, a fresh panel of ``--customers`` x
``--weeks`` is simulated, the ltv model is fitted with ``--boot`` bootstrap-by-customer replicates,
and every non-control arm's ``immediate`` and ``long_term`` are compared with the world's truth
(its own noiseless recursion, independent of the model's propagation code).

    nice -n 19 .venv/bin/python benchmarks/ltv_coverage.py [--seeds 20] [--customers 20000] [--weeks 52] \
        [--boot 200] [--worlds habit,pull_forward,no_carry_over,same_period] [--out reports/ltv_coverage]

Writes ``<out>.json`` (every run and the summary) and ``<out>.md`` (the table).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promo_opt.config import parse_config  # noqa: E402
from promo_opt.data import atomic_write, write_json  # noqa: E402
from promo_opt.ltv.simulate import available_panel_worlds, load_panel_world  # noqa: E402
from promo_opt.ltv.valuation import estimate_ltv  # noqa: E402


def run_world(name: str, seeds: int, customers: int, weeks: int, boot: int) -> list[dict]:
    w = load_panel_world(name).model_copy(update={"weeks": weeks})
    cfg = parse_config(w.campaign_config("in-memory", boot))
    truth = w.true_values(cfg.ltv.horizon)
    rows = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        panel = w.simulate(seed, customers)
        t1 = time.perf_counter()
        d = estimate_ltv(cfg.model_copy(update={"seed": seed}), panel=panel).to_dict()
        t2 = time.perf_counter()
        for arm, a in d["arms"].items():
            for q in ("immediate", "long_term"):
                iv, t = a[q], truth[arm][q]
                rows.append({"world": name, "seed": seed, "arm": arm, "quantity": q, "truth": t, **iv,
                             "covered": iv["ci_low"] <= t <= iv["ci_high"], "rel_error": (iv["estimate"] - t) / abs(t),
                             "simulate_s": t1 - t0, "fit_s": t2 - t1})
        print(f"{name} seed {seed}: simulate {t1 - t0:.1f}s, fit+value {t2 - t1:.1f}s", flush=True)
    return rows


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["world", "arm", "quantity"], sort=False)
    return pd.DataFrame({
        "truth": g["truth"].first(), "mean_estimate": g["estimate"].mean(), "coverage": g["covered"].mean(),
        "rel_bias": g.apply(lambda x: (x["estimate"].mean() - x["truth"].iloc[0]) / abs(x["truth"].iloc[0])),
        "median_abs_rel_error": g["rel_error"].apply(lambda e: float(np.median(np.abs(e)))),
        "share_within_10pct": g["rel_error"].apply(lambda e: float(np.mean(np.abs(e) <= 0.10))),
        "mean_ci_width": (g["ci_high"].mean() - g["ci_low"].mean()), "seeds": g.size(),
    }).reset_index()


def markdown(summary: pd.DataFrame, settings: dict) -> str:
    lines = ["# Long-term value: coverage of the 95% intervals and error of the estimates", "",
             f"Command: `{settings['command']}`  ",
             f"{settings['seeds']} seeds per world, {settings['customers']:,} customers x {settings['weeks']} weeks each, "
             f"{settings['boot']} bootstrap replicates by customer; {settings['seconds']:.0f} s in total; load before the "
             f"run: {settings['load_before']}, after: {settings['load_after']} (2 shared cores, nice 19, OMP_NUM_THREADS=1).",
             "", "`rel_bias`: (mean estimate - truth) / |truth|; `within 10%`: share of seeds whose estimate is within 10% of the truth.",
             "", "| world | arm | quantity | truth | mean estimate | coverage | rel. bias | median abs rel. error | within 10% | mean CI width |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples(index=False):
        lines.append(f"| {r.world} | {r.arm} | {r.quantity} | {r.truth:.4g} | {r.mean_estimate:.4g} | {r.coverage:.0%} | "
                     f"{r.rel_bias:+.1%} | {r.median_abs_rel_error:.1%} | {r.share_within_10pct:.0%} | {r.mean_ci_width:.3g} |")
    return "\n".join(lines) + "\n"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--worlds", default=",".join(available_panel_worlds()))
    ap.add_argument("--out", default="reports/ltv_coverage")
    a = ap.parse_args()
    settings = {**vars(a), "command": "python " + " ".join(sys.argv), "load_before": _load()}
    t0 = time.perf_counter()
    runs = pd.DataFrame([r for w in a.worlds.split(",") for r in run_world(w, a.seeds, a.customers, a.weeks, a.boot)])
    settings.update(seconds=time.perf_counter() - t0, load_after=_load())
    summary = summarize(runs)
    print(summary.to_string(index=False))
    write_json({"settings": settings, "summary": summary.to_dict(orient="records"), "runs": runs.to_dict(orient="records")},
               f"{a.out}.json")
    text = markdown(summary, settings)
    atomic_write(Path(f"{a.out}.md"), lambda p: p.write_text(text))


if __name__ == "__main__":
    main()
