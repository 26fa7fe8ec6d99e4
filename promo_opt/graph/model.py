"""The typed causal graph: nodes, directed edges and undirected edges (a DAG, CPDAG or PDAG).

``CausalGraph`` is what structure learning returns, what ``graph.json`` stores and what
graph-based adjustment reads. An undirected edge ``u -- v`` means the data and the background
knowledge leave its direction open. ``frequency`` maps an adjacency (a frozenset of two nodes) to
the share of bootstrap searches that found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from promo_opt.errors import ConfigError


@dataclass
class CausalGraph:
    nodes: list[str]
    directed: set[tuple[str, str]] = field(default_factory=set)
    undirected: set[frozenset] = field(default_factory=set)
    frequency: dict[frozenset, float] = field(default_factory=dict)  # adjacency -> bootstrap share
    direction: dict[tuple[str, str], float] = field(default_factory=dict)  # (u, v) -> share with u -> v

    # -- views ---------------------------------------------------------------------------------
    def adjacencies(self) -> set[frozenset]:
        return {frozenset(e) for e in self.directed} | set(self.undirected)

    def digraph(self) -> nx.DiGraph:
        """The directed part only."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.directed)
        return g

    def possible_descendants(self, x: str, avoid: frozenset = frozenset()) -> set[str]:
        """Nodes reachable from ``x`` along directed edges forward and undirected edges, not through ``avoid``."""
        return self._reach(x, forward=True, avoid=avoid) - {x}

    def possible_ancestors(self, x: str) -> set[str]:
        return self._reach(x, forward=False) - {x}

    def _reach(self, x: str, forward: bool, avoid: frozenset = frozenset()) -> set[str]:
        out: dict[str, set[str]] = {n: set() for n in self.nodes}
        for u, v in self.directed:
            (out[u] if forward else out[v]).add(v if forward else u)
        for e in self.undirected:
            u, v = tuple(e)
            out[u].add(v)
            out[v].add(u)
        seen, stack = {x}, [x]
        while stack:
            for w in out[stack.pop()]:
                if w not in seen and w not in avoid:
                    seen.add(w)
                    stack.append(w)
        return seen

    def undirected_neighbors(self, x: str) -> set[str]:
        return {next(iter(e - {x})) for e in self.undirected if x in e}

    def dag_extension(self) -> nx.DiGraph:
        """One DAG of the class: undirected edges oriented without new colliders or cycles (pgmpy)."""
        if not self.undirected:
            return self.digraph()
        from pgmpy.base import PDAG

        pdag = PDAG(directed_ebunch=sorted(self.directed),
                    undirected_ebunch=sorted(tuple(sorted(e)) for e in self.undirected))
        pdag.add_nodes_from(self.nodes)
        dag = pdag.to_dag()
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(dag.edges())
        return g

    # -- JSON ----------------------------------------------------------------------------------
    def edge_rows(self) -> list[dict]:
        rows = []
        for u, v in sorted(self.directed):
            a = frozenset((u, v))
            rows.append({"from": u, "to": v, "directed": True, "frequency": self.frequency.get(a),
                         "frequency_direction": self.direction.get((u, v))})
        for e in sorted(self.undirected, key=lambda e: tuple(sorted(e))):
            u, v = sorted(e)
            rows.append({"from": u, "to": v, "directed": False, "frequency": self.frequency.get(e),
                         "frequency_direction": None})
        return rows

    def to_dict(self) -> dict:
        return {"nodes": list(self.nodes), "edges": self.edge_rows()}

    @classmethod
    def from_dict(cls, d: dict, source: str = "graph") -> "CausalGraph":
        """Read ``graph.json`` (``nodes`` optional; ``edges`` with ``from``, ``to``, optional ``directed``)."""
        if not isinstance(d, dict) or not isinstance(d.get("edges"), list):
            raise ConfigError(f"{source}: expected a mapping with an 'edges' list of {{from, to}} entries")
        nodes = list(d.get("nodes") or [])
        g = cls(nodes=[])
        for i, e in enumerate(d["edges"]):
            if isinstance(e, dict):
                u, v, directed = e.get("from"), e.get("to"), e.get("directed", True)
            elif isinstance(e, (list, tuple)) and len(e) == 2:
                u, v, directed = e[0], e[1], True
            else:
                raise ConfigError(f"{source}: edges.{i} must be {{from, to}} or [from, to], got {e!r}")
            if not isinstance(u, str) or not isinstance(v, str) or u == v:
                raise ConfigError(f"{source}: edges.{i} needs two different node names, got {e!r}")
            if directed is False:
                g.undirected.add(frozenset((u, v)))
            else:
                g.directed.add((u, v))
            if isinstance(e, dict) and e.get("frequency") is not None:
                g.frequency[frozenset((u, v))] = float(e["frequency"])
            for n in (u, v):
                if n not in nodes:
                    nodes.append(n)
        g.nodes = nodes
        cycle = _find_cycle(g.digraph())
        if cycle:
            raise ConfigError(f"{source}: the directed edges form a cycle {' -> '.join(cycle)}; a causal graph is acyclic")
        return g

    @classmethod
    def from_edges(cls, edges, source: str = "graph") -> "CausalGraph":
        return cls.from_dict({"edges": [list(e) for e in edges]}, source)


def _find_cycle(g: nx.DiGraph) -> list[str] | None:
    try:
        cyc = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in cyc] + [cyc[0][0]]
