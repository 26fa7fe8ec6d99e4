"""Graph recovery metrics against a known truth: skeleton precision/recall/F1 and SHD.

SHD (structural Hamming distance) between two partially directed graphs: one for every adjacency
in one graph and not the other, plus one for every shared adjacency marked differently (directed
one way, the other way, or undirected). Compare a learned CPDAG with the true DAG's CPDAG
(``cpdag_of``): directions the data cannot tell are then not counted as errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from promo_opt.graph.model import CausalGraph


@dataclass
class Recovery:
    precision: float
    recall: float
    f1: float
    shd: int
    n_true: int
    n_found: int

    def to_dict(self) -> dict:
        return asdict(self)


def cpdag_of(dag: CausalGraph) -> CausalGraph:
    from pgmpy.base import DAG

    d = DAG()
    d.add_nodes_from(dag.nodes)
    d.add_edges_from(dag.directed)
    p = d.to_pdag()
    und = {frozenset(e) for e in p.undirected_edges}
    return CausalGraph(list(dag.nodes), {(u, v) for u, v in p.directed_edges if frozenset((u, v)) not in und}, und)


def _mark(g: CausalGraph, a: frozenset):
    u, v = sorted(a)
    if (u, v) in g.directed:
        return "->"
    if (v, u) in g.directed:
        return "<-"
    return "--"


def recovery(learned: CausalGraph, truth: CausalGraph) -> Recovery:
    a, t = learned.adjacencies(), truth.adjacencies()
    tp = len(a & t)
    precision = tp / len(a) if a else 1.0
    recall = tp / len(t) if t else 1.0
    f1 = 2 * tp / (len(a) + len(t)) if (a or t) else 1.0
    shd = len(a ^ t) + sum(_mark(learned, e) != _mark(truth, e) for e in a & t)
    return Recovery(precision, recall, f1, shd, len(t), len(a))
