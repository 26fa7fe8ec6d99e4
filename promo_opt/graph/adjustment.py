"""Valid backdoor adjustment sets read from a causal graph, or a clear refusal.

For a treatment ``x`` and an outcome ``y`` in a graph (DAG, or CPDAG/PDAG with undirected
edges), ``backdoor_set`` returns a set ``Z`` of *observed* variables such that adjusting for ``Z``
identifies the effect of ``x`` on ``y``:

1. No undirected edge at ``x`` may lead towards ``y`` (the graph must be amenable, Perkovic et
   al. 2017): otherwise whether that neighbour is a confounder or a mediator is unknown.
2. ``Z`` contains no possible descendant of ``x`` (no mediator, no collider or other
   descendant of the treatment).
3. ``Z`` blocks every backdoor path: ``x`` and ``y`` are d-separated by ``Z`` once the edges
   out of ``x`` are removed (checked with networkx on a DAG of the class).

The first candidate is every observed possible ancestor of ``x`` or ``y`` that is not a possible
descendant of ``x`` (the precise, usual choice); when some of them are unobserved and that set
fails, the smallest separating set among the observed non-descendants (networkx
``find_minimal_d_separator``). When none exists, ``NoAdjustmentSet`` names the unobserved
variables that open a backdoor path.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from promo_opt.errors import PromoOptError
from promo_opt.graph.model import CausalGraph


class NoAdjustmentSet(PromoOptError):
    """The graph admits no valid adjustment set among the observed variables (or leaves it undecided)."""


@dataclass
class Adjustment:
    treatment: str
    outcome: str
    adjustment_set: list[str]
    causal_path: bool  # False: no directed path from the treatment to the outcome (the effect is zero)
    rule: str  # how the set was chosen


def backdoor_set(graph: CausalGraph, x: str, y: str, observed: set[str] | None = None) -> Adjustment:
    for node, role in ((x, "treatment"), (y, "outcome")):
        if node not in graph.nodes:
            raise NoAdjustmentSet(f"the graph has no node '{node}' (the {role}); nodes: {graph.nodes[:30]}")
    observed = set(graph.nodes) if observed is None else set(observed)
    pdesc = graph.possible_descendants(x)
    for w in sorted(graph.undirected_neighbors(x)):
        if w == y or y in graph.possible_descendants(w, avoid=frozenset({x})):
            raise NoAdjustmentSet(
                f"the edge {x} -- {w} is undirected: the data cannot tell whether '{w}' causes '{x}' (a confounder to "
                f"adjust for) or is caused by it (a mediator not to adjust for); orient it with drivers.tiers or "
                f"drivers.required, or declare the graph")
    causal = y in pdesc
    forbidden = pdesc | {x}
    dag = graph.dag_extension()
    backdoor = dag.copy()
    backdoor.remove_edges_from(list(dag.out_edges(x)))
    allowed = (observed & set(graph.nodes)) - forbidden - {y}
    anc = (graph.possible_ancestors(x) | graph.possible_ancestors(y))
    first = sorted(anc & allowed)
    if nx.is_d_separator(backdoor, {x}, {y}, set(first)):
        return Adjustment(x, y, first, causal, "observed ancestors of treatment and outcome, no descendant of the treatment")
    minimal = nx.find_minimal_d_separator(backdoor, {x}, {y}, restricted=allowed)
    if minimal is not None:
        return Adjustment(x, y, sorted(minimal), causal, "minimal separating set of observed non-descendants")
    if not causal:  # e.g. x is caused by y: no set blocks x <- y, but the graph says do(x) leaves y alone
        return Adjustment(x, y, [], False, f"no directed path from '{x}' to '{y}': the effect is zero by the graph")
    hidden = sorted(anc - observed - {x, y})
    raise NoAdjustmentSet(
        f"no valid backdoor set for the effect of '{x}' on '{y}': "
        + (f"the unobserved variable(s) {hidden} open a backdoor path that no observed non-descendant of '{x}' blocks"
           if hidden else f"every set of observed non-descendants of '{x}' leaves a backdoor path open")
        + "; measure a confounder, or use a randomized test")
