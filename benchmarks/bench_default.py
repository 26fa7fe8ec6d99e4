"""End-to-end seconds of ``promo-opt run`` with the defaults, quiet and next to a CPU-bound neighbour.

The issue-16 targets on a 2-core machine: 100k past users x ~10 features x 4 arms in <= 60 s,
1M in <= 3 min, and with one other CPU-bound process at most 2.5x the quiet time. The campaign
is the travel world (9 features, 4 arms) with the given number of past users; the neighbour is
a second Python process spinning on one core for the whole run. Each run is the CLI in a fresh
process (imports, reading, training, scoring, allocation, plan, report: what a user waits for).

    .venv/bin/python benchmarks/bench_default.py [--sizes 100000,1000000] [--candidates 50000]
        [--neighbour] [--out reports/bench_default]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.data import write_bytes, write_json  # noqa: E402
from promo_opt.simulation import load_world  # noqa: E402


def _spin(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def timed_run(cfg: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "promo-opt"), "--quiet", "run", str(cfg), "--out", str(out)],
                       capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"run failed: {r.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    return {"seconds": secs, "stages": summary["seconds"], "learner": summary["learner"],
            "threads": metrics.get("threads"), "share_of_oracle": summary["truth"]["share_of_oracle"],
            "eliminated": {k: v["after_folds"] for k, v in metrics["selection"]["race"]["eliminated"].items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--candidates", type=int, default=50000)
    ap.add_argument("--neighbour", action="store_true", help="also run next to one CPU-bound process")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_default"))
    args = ap.parse_args()
    rows = []
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as d:
            cfg = load_world("travel").write_campaign(Path(d) / "c", seed=0, n_train=n, n_candidates=args.candidates)
            load = os.getloadavg()[0]
            quiet = timed_run(cfg, Path(d) / "quiet")
            row = {"n_train": n, "n_candidates": args.candidates, "load_before": load, "quiet": quiet}
            print(f"{n:>9,} quiet: {quiet['seconds']:.1f} s (threads {quiet['threads']}, load {load:.2f}) {quiet['stages']}",
                  flush=True)
            if args.neighbour:
                stop = mp.Event()
                p = mp.Process(target=_spin, args=(stop,))
                p.start()
                time.sleep(2)
                try:
                    busy = timed_run(cfg, Path(d) / "busy")
                finally:
                    stop.set()
                    p.join()
                row["neighbour"] = busy
                row["ratio"] = busy["seconds"] / quiet["seconds"]
                print(f"{n:>9,} with a neighbour: {busy['seconds']:.1f} s (threads {busy['threads']}), "
                      f"{row['ratio']:.2f}x quiet", flush=True)
            rows.append(row)
    write_json({"command": " ".join(sys.argv), "rows": rows}, Path(args.out).with_suffix(".json"))
    lines = ["# `promo-opt run` with the defaults: seconds end to end", "",
             f"`.venv/bin/python {' '.join(sys.argv)}` (travel world, {args.candidates:,} candidates; fresh CLI "
             "process per run; load = 1-minute load average before the run)", "",
             "| past users | quiet s | threads | train s | score s | with a CPU-bound neighbour s | ratio | load before |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        q = r["quiet"]
        b = r.get("neighbour")
        lines.append(f"| {r['n_train']:,} | {q['seconds']:.1f} | {q['threads']} | {q['stages']['train']:.1f} | "
                     f"{q['stages']['score']:.1f} | {b['seconds'] if b else float('nan'):.1f} | "
                     f"{r.get('ratio', float('nan')):.2f} | {r['load_before']:.2f} |")
    write_bytes(("\n".join(lines) + "\n").encode(), Path(args.out).with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
