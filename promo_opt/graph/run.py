"""The typed entry point of ``promo-opt drivers``: learn the graph, find the drivers, write them.

``run_drivers(config)`` -> :class:`DriversResult`; ``write_drivers(result, out)`` writes
``graph.json``, ``drivers.csv``, ``suggested_rules.yaml`` (the top driver segments as ``targeting_rules``),
``report.html`` (and ``funnel.csv`` with ``drivers.funnel``) (each to a temp name, then renamed; the report
is rendered before anything is written, so a failure leaves nothing half-written).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from promo_opt.config import DriversFile
from promo_opt.data import write_bytes, write_json, write_table
from promo_opt.graph.data import DriversData, load_drivers_data
from promo_opt.graph.drivers import DriverEffect, driver_effects, effects_frame
from promo_opt.graph.funnel import funnel_table
from promo_opt.graph.knowledge import build_knowledge
from promo_opt.graph.search import SearchResult, learn_graph
from promo_opt.graph.targeting import SuggestedRule, rules_yaml, suggest_rules, targetable_variables

log = logging.getLogger(__name__)


@dataclass
class DriversResult:
    name: str
    outcome: str
    data: DriversData
    search: SearchResult
    effects: list[DriverEffect]
    stable: float
    funnel: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    suggested_rules: list[SuggestedRule] = field(default_factory=list)

    def graph_dict(self) -> dict:
        s = self.search
        d = self.search.graph.to_dict()
        d.update(outcome=self.outcome, method=s.method, score=s.score, n_rows=self.data.n,
                 kinds=self.data.kinds, stable_frequency=self.stable,
                 bootstrap={"resamples": s.bootstrap, "rows_per_resample": s.bootstrap_rows},
                 seconds={"search": s.seconds, "bootstrap": s.bootstrap_seconds})
        return d

    def effects_frame(self) -> pd.DataFrame:
        return effects_frame(self.effects)


def run_drivers(config: DriversFile) -> DriversResult:
    cfg = config.drivers
    data = load_drivers_data(cfg)
    knowledge = build_knowledge(cfg, data.variables)
    funnel_table(data, cfg.funnel, knowledge.tier)  # its errors before the search
    targetable = targetable_variables(cfg, data.variables)
    search = learn_graph(data, knowledge, cfg, seed=config.seed)
    log.info("graph: %d edges (%d undirected) in %.1f s; bootstrap %d x %d rows in %.1f s",
             len(search.graph.adjacencies()), len(search.graph.undirected), search.seconds, search.bootstrap,
             search.bootstrap_rows, search.bootstrap_seconds)
    effects = driver_effects(data, search.graph, cfg.effect_bootstrap, cfg.contrast, cfg.bootstrap_rows, config.seed)
    res = DriversResult(config.name, cfg.outcome, data, search, effects, cfg.stable, funnel_table(data, cfg.funnel, knowledge.tier),
                        suggested_rules=suggest_rules(data, effects, targetable))
    if search.graph.undirected:
        res.notes.append(f"{len(search.graph.undirected)} edge(s) are undirected: the data and the background knowledge "
                         "do not tell their direction (add tiers or required edges to orient them)")
    return res


def write_drivers(result: DriversResult, out: str | Path) -> Path:
    from promo_opt.graph.report import render_drivers_report

    out = Path(out)
    page = render_drivers_report(result)
    table = result.effects_frame()
    write_json(result.graph_dict(), out / "graph.json")
    write_table(table, out / "drivers.csv")
    write_bytes(rules_yaml(result.suggested_rules, result.outcome, result.name).encode(), out / "suggested_rules.yaml")
    if len(result.funnel):
        write_table(result.funnel, out / "funnel.csv")
    write_bytes(page.encode(), out / "report.html")
    return out
