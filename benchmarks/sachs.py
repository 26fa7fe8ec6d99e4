"""Structure learning on Sachs et al. (2005): SHD and edge F1 against two published consensus graphs.

Data and provenance: benchmarks/data/sachs/SOURCE.md. The 11 concentrations are log(x + 1)
transformed (they are heavy-tailed), then each method of promo_opt.graph (hybrid, hill climbing,
PC) learns a graph on all 7,466 rows; skeleton precision/recall/F1 and SHD (against the consensus
DAG's CPDAG, see promo_opt.graph.metrics) are reported for the 20-edge consensus distributed with
the data and for bnlearn's 17-edge network. Bootstrap frequencies of the hybrid's edges on 50
resamples. Writes reports/sachs.json and reports/sachs.md.

Run: ``OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/sachs.py``
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.config import DriversConfig  # noqa: E402
from promo_opt.graph.data import prepare_drivers_data  # noqa: E402
from promo_opt.graph.knowledge import build_knowledge  # noqa: E402
from promo_opt.graph.metrics import cpdag_of, recovery  # noqa: E402
from promo_opt.graph.model import CausalGraph  # noqa: E402
from promo_opt.graph.search import learn_graph  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "sachs"
BNLEARN_NAMES = {"Raf": "raf", "Mek": "mek", "Plcg": "plc", "PIP2": "pip2", "PIP3": "pip3", "Erk": "erk",
                 "Akt": "akt", "PKA": "pka", "PKC": "pkc", "P38": "p38", "Jnk": "jnk"}


def consensus_20() -> CausalGraph:
    lines = (DATA / "sachs.2005.ground.truth.graph.txt").read_text().splitlines()
    edges = [ln.split(". ", 1)[1].split(" --> ") for ln in lines if " --> " in ln]
    return CausalGraph.from_edges([(u.strip(), v.strip()) for u, v in edges])


def consensus_bnlearn() -> CausalGraph:
    import pgmpy
    from pgmpy.readwrite import BIFReader

    path = Path(pgmpy.__file__).parent / "utils" / "example_models" / "sachs.bif.gz"
    model = BIFReader(string=gzip.open(path).read().decode()).get_model()
    return CausalGraph.from_edges([(BNLEARN_NAMES[u], BNLEARN_NAMES[v]) for u, v in model.edges()])


def main() -> None:
    df = np.log1p(pd.read_csv(DATA / "sachs.2005.continuous.csv"))
    truths = {"consensus_20": consensus_20(), "bnlearn_17": consensus_bnlearn()}
    rows, graphs = [], {}
    for method in ("hybrid", "hc", "pc"):
        cfg = DriversConfig(data="-", outcome="akt", method=method, bootstrap=50 if method == "hybrid" else 0,
                            bootstrap_rows=None)
        data = prepare_drivers_data(df, cfg)
        t0 = time.perf_counter()
        res = learn_graph(data, build_knowledge(cfg, data.variables), cfg)
        secs = time.perf_counter() - t0
        graphs[method] = res.graph.to_dict()
        for name, truth in truths.items():
            r = recovery(res.graph, cpdag_of(truth))
            rows.append({"method": method, "truth": name, **r.to_dict(), "seconds": secs})
    table = pd.DataFrame(rows)
    load = os.getloadavg()
    out = {"rows": len(df), "transform": "log(x + 1)", "load_average": load, "results": rows, "graphs": graphs}
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "sachs.json").write_text(json.dumps(out, indent=2, default=float))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    md = [f"# Sachs et al. (2005), {len(df):,} rows, log(x + 1); load average {load[0]:.1f} (shared 2-core machine)", "",
          "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    md += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in table.itertuples(index=False)]
    (ROOT / "reports" / "sachs.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
