"""Train + score seconds and peak memory of each uplift learner at 100k and 1M rows x 20 features x 5 arms.

Each (learner, size) runs in its own subprocess; its peak resident memory is that child's
``ru_maxrss`` (the rusage ``os.wait4`` returns for it, i.e. RUSAGE_CHILDREN of one child). A learner is fitted once on
all rows (``fit``) and scores the same rows (``predict_proba``); ``auto`` is the product's default
``model.learner: auto`` with the default 10 folds (selection on a subsample, the winner
cross-fitted on all rows: promo_opt.learners.honest). Data: a synthetic randomized campaign
(12 numeric features with 3% missing, 8 categorical ones), generated inside the subprocess and
not timed. Learners over ``--max-seconds`` at 100k are not run at 1M (reported as such).

    nice .venv/bin/python benchmarks/bench_learners.py [--sizes 100000,1000000] [--learners auto,pooled,...]

Writes reports/bench_learners.json and .md. The machine is shared (2 cores, other sessions
running): the seconds are upper bounds of what a quiet machine does; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_ARMS = 5


def make_data(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 12))
    num[rng.random((n, 12)) < 0.03] = np.nan
    X = pd.DataFrame(num, columns=[f"x{j}" for j in range(12)])
    for j in range(8):
        X[f"c{j}"] = pd.Categorical(rng.integers(0, 5 + j, n).astype(str))
    arm = rng.integers(0, N_ARMS, n)
    z = np.nan_to_num(num)
    logit = -2.5 + 0.4 * z[:, 0] - 0.3 * z[:, 1] + 0.2 * (X["c0"].cat.codes.to_numpy() == 1)
    logit += arm * (0.08 + 0.1 * (z[:, 2] > 0) - 0.05 * (z[:, 3] > 1))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    terms = np.column_stack([np.arange(N_ARMS) * 0.05, np.zeros(N_ARMS), np.full(N_ARMS, 0.1) * (np.arange(N_ARMS) > 0)])
    return X, arm, y, terms


def child(learner: str, n: int) -> None:
    import warnings

    warnings.simplefilter("ignore")
    from promo_opt.learners import make_learner, select_learner

    X, arm, y, terms = make_data(n)
    t0 = time.perf_counter()
    if learner == "auto":
        fitted, rep = select_learner(X, arm, y, N_ARMS, terms, learner="auto", folds=10, seed=0)
        model = fitted[rep.chosen]
        extra = {"chosen": rep.chosen, "selection_rows": rep.selection_rows, "final_folds": rep.final_folds}
    else:
        model = make_learner(learner, N_ARMS, terms, 0).fit(X, arm, y)
        extra = {}
    t1 = time.perf_counter()
    p = model.predict_proba(X)
    t2 = time.perf_counter()
    assert p.shape == (n, N_ARMS)
    print(json.dumps({"train_seconds": t1 - t0, "score_seconds": t2 - t1, **extra}))


def run_one(learner: str, n: int, timeout: float) -> dict:
    """Run one child; its own peak memory comes from os.wait4's rusage (ru_maxrss of that child only)."""
    import signal
    import tempfile

    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, __file__, "--child", learner, str(n)], stdout=subprocess.PIPE,
                             stderr=err, text=True)
        timer = __import__("threading").Timer(timeout, lambda: os.kill(p.pid, signal.SIGKILL))
        timer.start()
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()
    if p.returncode != 0:
        why = f"timeout after {timeout:.0f}s" if p.returncode == -signal.SIGKILL else "failed: " + (tail[-1] if tail else "?")
        return {"learner": learner, "n": n, "status": why}
    res = json.loads(out.strip().splitlines()[-1])
    return {"learner": learner, "n": n, "status": "ok", "wall_seconds": time.perf_counter() - t0,
            "peak_mb": usage.ru_maxrss / 1024, "load_average": os.getloadavg()[0], **res}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, default=None)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--learners", default=None)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="at 100k; slower learners skip 1M")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_learners"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    from promo_opt.data import write_bytes, write_json
    from promo_opt.learners import learner_names

    learners = args.learners.split(",") if args.learners else ["auto", *learner_names()]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sorted(sizes):
        for lr in learners:
            prev = [r for r in rows if r["learner"] == lr and r["status"] == "ok"]
            if n > min(sizes) and prev and prev[-1]["train_seconds"] + prev[-1]["score_seconds"] > args.max_seconds:
                rows.append({"learner": lr, "n": n, "status": f"skipped: {prev[-1]['train_seconds']:.0f}s at "
                                                              f"{prev[-1]['n']:,} rows"})
            else:
                rows.append(run_one(lr, n, args.timeout))
            print(json.dumps(rows[-1]), flush=True)
            write_json({"command": " ".join(sys.argv), "rows": rows}, Path(args.out).with_suffix(".json"))
    lines = ["# Uplift learners: train + score time and peak memory (20 features, 5 arms)", "",
             f"`nice .venv/bin/python benchmarks/bench_learners.py {' '.join(sys.argv[1:])}`. One subprocess per run; "
             "peak = max resident set size of the subprocess. "
             "**Shared 2-core machine with other sessions' jobs running** (load average in the table): seconds "
             "are upper bounds.", "",
             "| learner | rows | status | train s | score s | peak MB | load avg | note |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] == "ok":
            note = f"chose {r['chosen']} on {r['selection_rows']:,} rows, {r['final_folds']} final folds" if "chosen" in r else ""
            peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") else ""
            lines.append(f"| {r['learner']} | {r['n']:,} | ok | {r['train_seconds']:.1f} | {r['score_seconds']:.1f} | "
                         f"{peak} | {r['load_average']:.1f} | {note} |")
        else:
            lines.append(f"| {r['learner']} | {r['n']:,} | {r['status']} | | | | | |")
    write_bytes(("\n".join(lines) + "\n").encode(), Path(args.out).with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
