"""Scale of ``promo-opt drivers``: one structure search on --rows x --nodes, bootstrap on a subsample.

Simulates a random linear world (promo_opt.graph.worlds.random_world), writes it as Parquet, then
times the whole ``run_drivers`` (read, checks, one search on every row, --bootstrap searches on
--bootstrap-rows rows each, driver effects with 200 resamples) and reports the seconds of each part
and the skeleton F1 of the full-data search. Writes reports/graph_scale.json.

Run: ``OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/graph_scale.py [--rows 1000000 --nodes 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.config import DriversFile  # noqa: E402
from promo_opt.graph.metrics import cpdag_of, recovery  # noqa: E402
from promo_opt.graph.run import run_drivers  # noqa: E402
from promo_opt.graph.worlds import random_world  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--bootstrap-rows", type=int, default=100_000)
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--out", default=str(ROOT / "reports" / "graph_scale.json"))
    a = ap.parse_args()
    w = random_world(a.nodes, seed=0)
    t0 = time.perf_counter()
    df = w.sample(a.rows, seed=1)
    simulate = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        df.to_parquet(path, index=False)
        del df
        cfg = DriversFile.model_validate({"name": "scale", "drivers": {
            "data": str(path), "outcome": w.outcome, "method": a.method, "bootstrap": a.bootstrap,
            "bootstrap_rows": a.bootstrap_rows}})
        t1 = time.perf_counter()
        res = run_drivers(cfg)
        total = time.perf_counter() - t1
    r = recovery(res.search.graph, cpdag_of(w.graph()))
    out = {"settings": vars(a), "load_average": os.getloadavg(), "cores": os.cpu_count(), "simulate_seconds": simulate,
           "search_seconds": res.search.seconds, "bootstrap_seconds": res.search.bootstrap_seconds,
           "total_seconds": total, "effects_and_io_seconds": total - res.search.seconds - res.search.bootstrap_seconds,
           "f1": r.f1, "shd": r.shd, "precision": r.precision, "recall": r.recall}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
