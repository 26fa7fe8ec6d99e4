"""Background knowledge: tiers, required and forbidden edges, checked before any search.

Tiers become forbidden edges (nothing in a later tier causes anything in an earlier one); a
variable in no tier is unconstrained. Errors name the key and the offending edge: a name that is
not a variable, a variable in two tiers, a cycle among required edges, a required edge against
the tiers, an edge both required and forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from promo_opt.config import DriversConfig
from promo_opt.errors import ConfigError


@dataclass
class Knowledge:
    required: set[tuple[str, str]] = field(default_factory=set)
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # user's plus those the tiers imply
    tier: dict[str, int] = field(default_factory=dict)

    def to_pgmpy(self, search_space: set[tuple[str, str]] | None = None):
        from pgmpy.causal_discovery import ExpertKnowledge

        return ExpertKnowledge(forbidden_edges=set(self.forbidden), required_edges=set(self.required),
                               search_space=search_space or None)

    def to_pgmpy_skeleton(self):
        """For PC: required edges only. pgmpy's PC drops the adjacency of any forbidden direction (which
        would delete every edge across tiers) and then fails orienting it without a separating set, so
        directions and adjacencies forbidden both ways are applied to its result (``search._orient``)."""
        from pgmpy.causal_discovery import ExpertKnowledge

        return ExpertKnowledge(required_edges=set(self.required))

    def absent(self, u: str, v: str) -> bool:
        """Both directions forbidden: no adjacency."""
        return (u, v) in self.forbidden and (v, u) in self.forbidden

    def orient(self, u: str, v: str) -> tuple[str, str] | None:
        """The direction the knowledge forces on an adjacency u -- v, or None."""
        if (u, v) in self.required or (v, u) in self.forbidden:
            return (u, v)
        if (v, u) in self.required or (u, v) in self.forbidden:
            return (v, u)
        return None


def build_knowledge(cfg: DriversConfig, variables: list[str]) -> Knowledge:
    known = set(variables)

    def check(name: str, key: str) -> None:
        if name not in known:
            raise ConfigError(f"drivers.{key}: '{name}' is not a variable of the graph; variables: {variables[:30]}")

    tier: dict[str, int] = {}
    for i, level in enumerate(cfg.tiers):
        for v in level:
            check(v, f"tiers.{i}")
            if v in tier:
                raise ConfigError(f"drivers.tiers: '{v}' is in tier {tier[v]} and tier {i}; a variable has one tier")
            tier[v] = i
    for key, edges in (("required", cfg.required), ("forbidden", cfg.forbidden)):
        for j, (u, v) in enumerate(edges):
            check(u, f"{key}.{j}")
            check(v, f"{key}.{j}")
            if u == v:
                raise ConfigError(f"drivers.{key}.{j}: an edge from '{u}' to itself; edges join two variables")
    required, forbidden = set(cfg.required), set(cfg.forbidden)
    both = sorted(required & forbidden)
    if both:
        raise ConfigError(f"drivers.required and drivers.forbidden both list {both[0][0]} -> {both[0][1]}")
    g = nx.DiGraph(list(required))
    try:
        cyc = [u for u, _ in nx.find_cycle(g)]
        first = [u for u, _ in cfg.required]
        i = min(range(len(cyc)), key=lambda j: first.index(cyc[j]))  # start where the user's list does
        cyc = cyc[i:] + cyc[:i]
        path = " -> ".join(cyc + [cyc[0]])
        raise ConfigError(f"drivers.required: the required edges form a cycle {path}; a causal graph is acyclic")
    except nx.NetworkXNoCycle:
        pass
    for u, v in sorted(required):
        if u in tier and v in tier and tier[u] > tier[v]:
            raise ConfigError(f"drivers.required: edge {u} -> {v} goes from tier {tier[u]} to tier {tier[v]}, but "
                              f"drivers.tiers say '{v}' can only be caused by its own or earlier tiers")
    implied = {(u, v) for u in tier for v in tier if tier[u] > tier[v]}
    return Knowledge(required, forbidden | implied, tier)
