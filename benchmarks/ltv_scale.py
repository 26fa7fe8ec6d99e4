"""Scale of the long-term model: fit + one shock on a large panel, time and peak memory.

A world with ``--surrogates`` surrogates (random stable dynamics: own lags, a few cross lags, arm
effects on some surrogates and the outcome) is simulated in blocks of ``--block`` customers into one
compact frame (float32 variables and controls, or float64 with ``--float64``; int32 ids and
weeks, a categorical arm: what a Parquet file with float columns holds), then the panel is checked,
the system fitted (no bootstrap, or ``--boot``) and one shock ("discount_20 once") propagated over 26 weeks. Peak RSS is
measured per step (the kernel's high-water mark, reset when a step starts).

With several ``--customers`` every size runs in its own process (so each has its own peak RSS) and
the report adds a least-squares line through them per step and for the peak RSS, projected to
``--project`` customers.

    nice -n 19 .venv/bin/python benchmarks/ltv_scale.py [--customers 100000 [200000 ...]] [--weeks 52] \
        [--surrogates 20] [--boot 0] [--float64] [--project 1000000] [--block 20000] [--out reports/ltv_scale]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

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


def compact_blocks(world: PanelWorld, customers: int, block: int, dtype=np.float32) -> Iterator[pd.DataFrame]:
    """The panel of ``customers`` customers in blocks: block b is ``world.simulate(seed=b)`` of the next ``block``
    customers (ids after the previous blocks'), with int32 ids and weeks, a categorical arm and the variables
    and controls in ``dtype``."""
    for b, first in enumerate(range(0, customers, block)):
        df = world.simulate(seed=b, customers=min(block, customers - first))
        codes, values = pd.factorize(df["arm"])
        arm = np.array([world.arm_names.index(v) for v in values], dtype=np.int8)[codes]
        yield pd.DataFrame({"user_id": (df["user_id"].to_numpy() + first).astype(np.int32),
                            "week": df["week"].to_numpy().astype(np.int32),
                            "arm": pd.Categorical.from_codes(arm, categories=world.arm_names),
                            **{c: df[c].to_numpy().astype(dtype) for c in [*world.variables, *world.controls]}},
                           copy=False)


def simulate_compact(world: PanelWorld, customers: int, block: int, dtype=np.float32) -> pd.DataFrame:
    """The blocks of :func:`compact_blocks` in one frame, filled into preallocated columns (no block held twice)."""
    n, row = customers * world.weeks, 0
    cols: dict[str, np.ndarray] = {}
    for part in compact_blocks(world, customers, block, dtype):
        if not cols:
            cols = {c: np.empty(n, np.int8 if c == "arm" else part[c].dtype) for c in part.columns}
        rows = slice(row, row + len(part))
        for c in part.columns:
            cols[c][rows] = part[c].cat.codes.to_numpy() if c == "arm" else part[c].to_numpy()
        row += len(part)
    cols["arm"] = pd.Categorical.from_codes(cols["arm"], categories=world.arm_names)
    return pd.DataFrame(cols, copy=False)


def _peak_gib() -> float:
    """The process's peak RSS so far (getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _status_gib(key: str) -> float:
    """A memory figure of /proc/self/status (VmRSS, VmHWM), in GiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) / 2**20


class Steps:
    """Seconds and peak RSS of each step. The kernel's high-water mark (VmHWM) is reset when a step starts
    (``/proc/self/clear_refs``, Linux >= 4.0), so a step's peak is its own, not an earlier step's."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.rss_before_gib: dict[str, float] = {}
        self.peak_gib: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        Path("/proc/self/clear_refs").write_text("5")
        self.rss_before_gib[name] = _status_gib("VmRSS")
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0
        self.peak_gib[name] = _status_gib("VmHWM")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_local(a) -> dict:
    """One size, in this process: simulate, check, fit, shock; seconds and peak RSS of each step."""
    customers = a.customers[0]
    w = big_world(a.surrogates, customers, a.weeks)
    cfg = parse_config(w.campaign_config("in-memory", boot=a.boot))
    load_before = _load()
    step = Steps()
    with step("simulate"):
        df = simulate_compact(w, customers, a.block, np.float64 if a.float64 else np.float32)
    frame_gib = df.memory_usage(deep=True).sum() / 2**30
    with step("check_panel"):
        panel = check_panel(df, cfg.ltv, cfg.arm_names)
        del df
    panel_gib = sum(x.nbytes for x in (panel.customer, panel.week, panel.arm, panel.y, panel.controls)) / 2**30
    with step("fit"):
        fit = fit_system(cfg.ltv, panel, boot=a.boot)
    with step("shock"):
        plan = plan_shocks(fit, [ShockConfig(target="discount_20", kind="set")], cfg.ltv.horizon, cfg.arm_names, {})
        path = propagate(fit, average_start(panel, cfg.ltv.lags), plan)
    seconds = step.seconds | {"check+fit+shock": step.seconds["check_panel"] + step.seconds["fit"] + step.seconds["shock"]}
    truth = w.true_values(cfg.ltv.horizon)["discount_20"]["long_term"]
    return {"engine": "local", "customers": customers, "weeks": a.weeks, "surrogates": a.surrogates, "boot": a.boot,
            "rows": panel.n_rows, "rows_fitted": fit.n_rows, "regressors": fit.design.q,
            "panel_dtype": str(panel.y.dtype), "frame_gib": frame_gib, "panel_gib": panel_gib,
            "seconds": seconds, "rss_before_step_gib": step.rss_before_gib, "step_peak_rss_gib": step.peak_gib,
            "peak_rss_gib": max(step.peak_gib.values()),  # (resetting VmHWM resets getrusage's maximum too)
            "long_term_discount_20": {"estimate": float(path.total("bookings")[0]), "truth": truth},
            "threads": os.environ.get("OMP_NUM_THREADS", "unset"), "nice": os.nice(0),
            "load_before": load_before, "load_after": _load(), "command": "python " + " ".join(sys.argv)}


def run_sizes(a) -> dict:
    """Every size in its own process; a line per step and for the peak RSS through them, projected."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.customers:
            out = Path(tmp) / str(n)
            cmd = [sys.executable, __file__, "--customers", str(n), "--weeks", str(a.weeks), "--surrogates",
                   str(a.surrogates), "--boot", str(a.boot), "--block", str(a.block), "--out", str(out),
                   *(["--float64"] if a.float64 else [])]
            subprocess.run(cmd, check=True)
            runs.append(json.loads(Path(f"{out}.json").read_text()))
    x = np.array([r["customers"] for r in runs], dtype=float)

    def line(y: list[float]) -> dict:
        slope, intercept = np.polyfit(x, np.asarray(y, dtype=float), 1)
        return {"per_100k_customers": slope * 1e5, "intercept": intercept, f"at_{a.project}": intercept + slope * a.project}

    projection = {"peak_rss_gib": line([r["peak_rss_gib"] for r in runs])}
    projection.update({f"step_peak_rss_gib.{k}": line([r["step_peak_rss_gib"][k] for r in runs])
                       for k in runs[0]["step_peak_rss_gib"]})
    projection.update({f"seconds.{k}": line([r["seconds"][k] for r in runs]) for k in runs[0]["seconds"]})
    return {"engine": "local", "sizes": runs, "project_to_customers": a.project, "projection": projection,
            "command": "python " + " ".join(sys.argv)}


def local_text(res: dict) -> str:
    runs = res.get("sizes", [res])
    r0 = runs[0]
    steps = list(r0["seconds"])
    head = "| customers | rows | " + " | ".join(f"{s} s" for s in steps) + " | peak RSS GiB | frame GiB | panel GiB | load before / after |"
    lines = [head, "|" + "---:|" * (len(steps) + 6)]
    for r in runs:
        lines.append(f"| {r['customers']:,} | {r['rows']:,} | " + " | ".join(f"{r['seconds'][s]:.1f}" for s in steps)
                     + f" | {r['peak_rss_gib']:.2f} | {r['frame_gib']:.2f} | {r['panel_gib']:.2f} | "
                     f"{r['load_before']} / {r['load_after']} |")
    text = (f"# ltv scale\n\nCommand: `{res['command']}` (2 shared cores, `nice -n 19`, OMP_NUM_THREADS="
            f"{r0['threads']})\n\n"
            f"{r0['weeks']} weeks x {r0['surrogates']} surrogates, {r0['regressors']} regressors per row, "
            f"{r0['boot']} bootstrap replicates; the panel simulated in blocks into a frame of {r0['panel_dtype']} "
            f"variables (Panel.y {r0['panel_dtype']}). Each size ran in its own process; its peak RSS is the "
            "largest of its steps' own peaks (VmHWM, reset when a step starts; GiB = 2^30 bytes); load is "
            "/proc/loadavg (1, 5, 15 min).\n\n" + "\n".join(lines) + "\n\n"
            + "".join(f"At {r['customers']:,}, each step's own peak RSS (GiB; RSS when it started): "
                      + ", ".join(f"{k} {v:.2f} ({r['rss_before_step_gib'][k]:.2f})"
                                  for k, v in r["step_peak_rss_gib"].items())
                      + f". long_term of discount_20: {r['long_term_discount_20']['estimate']:.4f} "
                      f"(truth {r['long_term_discount_20']['truth']:.4f}).\n\n" for r in runs))
    if "projection" in res:
        n = res["project_to_customers"]
        text += (f"## Projection to {n:,} customers\n\nA least-squares line through the sizes above (measured at "
                 "the loads shown, so the seconds are those of a shared machine):\n\n"
                 f"| quantity | per 100k customers | intercept | at {n:,} |\n|---|---:|---:|---:|\n"
                 + "".join(f"| {k} | {v['per_100k_customers']:.2f} | {v['intercept']:.2f} | {v[f'at_{n}']:.1f} |\n"
                           for k, v in res["projection"].items()))
        steps = {k: v[f"at_{n}"] for k, v in res["projection"].items() if k.startswith("step_peak_rss_gib.")}
        worst = max(steps, key=steps.get)
        text += (f"\nProjected peak RSS at {n:,} customers: {steps[worst]:.1f} GiB, in {worst.split('.', 1)[1]} (the "
                 "largest of the steps' own peaks, each a line through the sizes; the process-wide line gives "
                 f"{res['projection']['peak_rss_gib'][f'at_{n}']:.1f} GiB).\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[100_000])
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--surrogates", type=int, default=20)
    ap.add_argument("--boot", type=int, default=0)
    ap.add_argument("--block", type=int, default=20_000, help="customers simulated at a time")
    ap.add_argument("--float64", action="store_true",
                    help="keep the simulated values in float64 (a panel whose values are not exactly float32)")
    ap.add_argument("--project", type=int, default=1_000_000, help="customers the line is projected to")
    ap.add_argument("--engine", choices=["local", "spark"], default="local")
    ap.add_argument("--partitions", type=int, default=8, help="Spark partitions (--engine spark)")
    ap.add_argument("--out", default="reports/ltv_scale")
    a = ap.parse_args()
    if a.engine == "spark":
        res, text = spark_main(a)
    else:
        res = run_sizes(a) if len(a.customers) > 1 else run_local(a)
        text = local_text(res)
    print(json.dumps(res, indent=1))
    write_json(res, f"{a.out}.json")
    atomic_write(Path(f"{a.out}.md"), lambda p: p.write_text(text))


def spark_main(a) -> tuple[dict, str]:
    """The same fit + one shock with the panel read from Parquet by Spark (local[2]); the driver writes the
    panel block by block, so it never holds the whole panel."""
    from promo_opt.data import write_table
    from promo_opt.spark.ltv import fit_ltv_spark
    from promo_opt.spark.session import spark_session

    customers = a.customers[0]
    w = big_world(a.surrogates, customers, a.weeks)
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dtype = np.float64 if a.float64 else np.float32
        for b, part in enumerate(compact_blocks(w, customers, a.block, dtype)):  # a directory of Parquet files
            write_table(part, Path(tmp) / "panel.parquet" / f"part-{b:05d}.parquet")
        t_sim = time.perf_counter() - t0
        raw = w.campaign_config(str(Path(tmp) / "panel.parquet"), boot=a.boot)
        raw["spark"] = {"master": "local[2]", "partitions": a.partitions,
                        "conf": {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": str(a.partitions)}}
        cfg = parse_config(raw)
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
    res = {"engine": "spark", "customers": customers, "weeks": a.weeks, "surrogates": a.surrogates, "boot": a.boot,
           "partitions": a.partitions, "rows": fit.n_rows, "regressors": fit.design.q,
           "seconds": {"simulate+write parquet": t_sim, "read+check+fit on spark": t_fit, "shock": t_shock},
           "driver_peak_rss_gib": _peak_gib(), "long_term_discount_20": {"estimate": est, "truth": truth},
           "load_before": load_before, "load_after": _load(), "command": "python " + " ".join(sys.argv)}
    text = (f"# ltv scale on Spark\n\nCommand: `{res['command']}` (local[2], 2 shared cores, `nice -n 19`; load "
            f"before {load_before}, after {res['load_after']})\n\n"
            f"{customers:,} customers x {a.weeks} weeks x {a.surrogates} surrogates, {fit.n_rows:,} rows fitted, "
            f"{a.partitions} partitions, the panel written as Parquet (one file per block) with "
            f"{'float64' if a.float64 else 'float32'} variables.\n\n"
            "| step | seconds |\n|---|---:|\n" + "".join(f"| {k} | {v:.1f} |\n" for k, v in res["seconds"].items())
            + f"\nDriver peak RSS {res['driver_peak_rss_gib']:.2f} GiB (the executors' Python workers are separate "
            f"processes). long_term of discount_20: {est:.4f} (truth {truth:.4f}).\n")
    return res, text


if __name__ == "__main__":
    main()
