"""Scale of the long-term model: fit + one shock on a large panel, time and peak memory.

A world with ``--surrogates`` surrogates (random stable dynamics: own lags, a few cross lags, arm
effects on some surrogates and the outcome) is simulated in memory, then the panel is checked, the
system fitted (no bootstrap, or ``--boot``) and one shock ("discount_20 once") propagated over 26 weeks.

    nice -n 19 .venv/bin/python benchmarks/ltv_scale.py [--customers 100000] [--weeks 52] [--surrogates 20] \
        [--boot 0] [--out reports/ltv_scale]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promo_opt.config import parse_config  # noqa: E402
from promo_opt.data import atomic_write, write_json  # noqa: E402
from promo_opt.ltv.model import fit_system  # noqa: E402
from promo_opt.ltv.panel import check_panel  # noqa: E402
from promo_opt.ltv.settings import ShockConfig  # noqa: E402
from promo_opt.ltv.shocks import plan_shocks, propagate  # noqa: E402
from promo_opt.ltv.simulate import PanelWorld  # noqa: E402
from promo_opt.ltv.valuation import average_start  # noqa: E402


def big_world(surrogates: int, customers: int, weeks: int, seed: int = 0) -> PanelWorld:
    rng = np.random.default_rng(seed)
    V = [f"s{i:02d}" for i in range(surrogates)] + ["bookings"]
    lags = {}
    for v in V:
        src = {v: [round(float(rng.uniform(0.2, 0.5)), 3)]}
        for other in rng.choice([x for x in V if x != v], size=2, replace=False):
            src[str(other)] = [round(float(rng.uniform(-0.05, 0.1)), 3)]
        lags[v] = src
    arm_effects = {v: {"discount_5": [0.1], "discount_20": [0.3, 0.05]} for v in V[::4]}
    arm_effects["bookings"] = {"discount_5": [0.1], "discount_20": [0.3, 0.05]}
    return PanelWorld(name="scale", customers=customers, weeks=weeks, burn_in=10,
                      arms=[{"name": "control", "control": True}, {"name": "discount_5"}, {"name": "discount_20"}],
                      assignment={"discount_5": 0.08, "discount_20": 0.08}, variables=V,
                      controls={"age": {}, "loyalty": {}}, intercept={v: 1.0 for v in V},
                      control_effects={v: {"loyalty": 0.1} for v in V}, lags=lags, arm_effects=arm_effects)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--surrogates", type=int, default=20)
    ap.add_argument("--boot", type=int, default=0)
    ap.add_argument("--engine", choices=["local", "spark"], default="local")
    ap.add_argument("--partitions", type=int, default=8, help="Spark partitions (--engine spark)")
    ap.add_argument("--out", default="reports/ltv_scale")
    a = ap.parse_args()
    if a.engine == "spark":
        return spark_main(a)
    w = big_world(a.surrogates, a.customers, a.weeks)
    cfg = parse_config(w.campaign_config("in-memory", boot=a.boot))
    t0 = time.perf_counter()
    df = w.simulate(0)
    t_sim = time.perf_counter() - t0
    peak_sim = _peak_gb()
    t0 = time.perf_counter()
    panel = check_panel(df, cfg.ltv, cfg.arm_names)
    del df
    t_check = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = fit_system(cfg.ltv, panel, boot=a.boot)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = plan_shocks(fit, [ShockConfig(target="discount_20", kind="set")], cfg.ltv.horizon, cfg.arm_names, {})
    path = propagate(fit, average_start(panel, cfg.ltv.lags), plan)
    t_shock = time.perf_counter() - t0
    truth = w.true_values(cfg.ltv.horizon)["discount_20"]["long_term"]
    est = float(path.total("bookings")[0])
    res = {"customers": a.customers, "weeks": a.weeks, "surrogates": a.surrogates, "boot": a.boot,
           "rows": panel.n_rows, "regressors": fit.design.q,
           "seconds": {"simulate": t_sim, "check_panel": t_check, "fit": t_fit, "shock": t_shock,
                       "check+fit+shock": t_check + t_fit + t_shock},
           "peak_rss_gb_after_simulation": peak_sim, "peak_rss_gb": _peak_gb(),
           "long_term_discount_20": {"estimate": est, "truth": truth},
           "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
           "command": "python " + " ".join(sys.argv)}
    print(res)
    write_json(res, f"{a.out}.json")
    text = (f"# ltv scale\n\nCommand: `{res['command']}` (2 shared cores, nice 19, OMP_NUM_THREADS=1; load {res['load']})\n\n"
            f"{a.customers:,} customers x {a.weeks} weeks x {a.surrogates} surrogates = {panel.n_rows:,} rows, "
            f"{fit.design.q} regressors per row, {a.boot} bootstrap replicates.\n\n"
            "| step | seconds |\n|---|---:|\n" + "".join(f"| {k} | {v:.1f} |\n" for k, v in res["seconds"].items())
            + f"\nPeak RSS {res['peak_rss_gb']:.2f} GB (after simulating the panel: {peak_sim:.2f} GB). "
            f"long_term of discount_20: {est:.4f} (truth {truth:.4f}).\n")
    atomic_write(Path(f"{a.out}.md"), lambda p: p.write_text(text))


def spark_main(a) -> None:
    """The same fit + one shock with the panel read from Parquet by Spark (local[2])."""
    import tempfile

    from promo_opt.data import write_table
    from promo_opt.spark.ltv import fit_ltv_spark

    w = big_world(a.surrogates, a.customers, a.weeks)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_table(w.simulate(0), Path(tmp) / "panel.parquet")
        t_sim = time.perf_counter() - t0
        raw = w.campaign_config(str(Path(tmp) / "panel.parquet"), boot=a.boot)
        raw["spark"] = {"master": "local[2]", "partitions": a.partitions,
                        "conf": {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": str(a.partitions)}}
        cfg = parse_config(raw)
        from promo_opt.spark.session import spark_session

        spark = spark_session(cfg.spark, "ltv-scale")
        t0 = time.perf_counter()
        fit, start = fit_ltv_spark(cfg, spark=spark)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = plan_shocks(fit, [ShockConfig(target="discount_20", kind="set")], cfg.ltv.horizon, cfg.arm_names, {})
        path = propagate(fit, start, plan)
        t_shock = time.perf_counter() - t0
        spark.stop()
    truth = w.true_values(cfg.ltv.horizon)["discount_20"]["long_term"]
    est = float(path.total("bookings")[0])
    res = {"engine": "spark", "customers": a.customers, "weeks": a.weeks, "surrogates": a.surrogates, "boot": a.boot,
           "partitions": a.partitions, "rows": fit.n_rows, "regressors": fit.design.q,
           "seconds": {"simulate+write parquet": t_sim, "read+check+fit on spark": t_fit, "shock": t_shock},
           "driver_peak_rss_gb": _peak_gb(), "long_term_discount_20": {"estimate": est, "truth": truth},
           "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]), "command": "python " + " ".join(sys.argv)}
    print(res)
    write_json(res, f"{a.out}.json")
    text = (f"# ltv scale on Spark\n\nCommand: `{res['command']}` (local[2], 2 shared cores, nice 19; load {res['load']})\n\n"
            f"{a.customers:,} customers x {a.weeks} weeks x {a.surrogates} surrogates, {fit.n_rows:,} rows fitted, "
            f"{a.partitions} partitions.\n\n| step | seconds |\n|---|---:|\n"
            + "".join(f"| {k} | {v:.1f} |\n" for k, v in res["seconds"].items())
            + f"\nDriver peak RSS {res['driver_peak_rss_gb']:.2f} GB (the executors' Python workers are separate "
            f"processes). long_term of discount_20: {est:.4f} (truth {truth:.4f}).\n")
    atomic_write(Path(f"{a.out}.md"), lambda p: p.write_text(text))


if __name__ == "__main__":
    main()
