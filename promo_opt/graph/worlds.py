"""Simulated data from known causal graphs: the truth structure learning and adjustment are checked against.

A world is a linear structural causal model over named nodes, in YAML (``scenarios/graph_*.yaml``)::

    name: promo_funnel
    outcome: add_to_cart
    nodes:
      age:       {type: continuous, sd: 1.0}
      homeowner: {type: binary, intercept: 0.4, parents: {age: 0.12}}

A ``continuous`` node is ``intercept + sum(coef * parent) + sd * N(0, 1)``; a ``binary`` node is
Bernoulli of the same linear predictor clipped to [0.01, 0.99] (a linear probability model: the
worlds keep it inside so that the clip rarely binds). Nodes are listed in a causal order.
``sample(n, seed, do={...})`` draws rows, optionally under an intervention; ``true_effect``
is the effect of do(x = high) vs do(x = low) on a node's mean from the structural equations
(exact for a linear world: the sum over directed paths of the products of coefficients).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from promo_opt.errors import ConfigError
from promo_opt.graph.model import CausalGraph

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass
class Node:
    name: str
    kind: str  # binary | continuous
    intercept: float
    parents: dict[str, float]
    sd: float = 1.0


@dataclass
class GraphWorld:
    name: str
    outcome: str
    nodes: list[Node]
    treatment: str | None = None  # the node `effect --adjust graph` is checked on
    mediator: str | None = None
    collider: str | None = None

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def graph(self) -> CausalGraph:
        return CausalGraph(self.names, {(p, n.name) for n in self.nodes for p in n.parents})

    def sample(self, n: int, seed: int = 0, do: dict[str, float] | None = None) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        cols: dict[str, np.ndarray] = {}
        for node in self.nodes:
            eta = node.intercept + sum(c * cols[p] for p, c in node.parents.items())
            eta = np.broadcast_to(np.asarray(eta, dtype=np.float64), (n,))
            if node.kind == "binary":
                v = (rng.random(n) < np.clip(eta, 0.01, 0.99)).astype(np.int64)
            else:
                v = eta + node.sd * rng.normal(size=n)
            if do and node.name in do:
                v = np.full(n, do[node.name], dtype=np.float64 if node.kind == "continuous" else np.int64)
            cols[node.name] = v
        return pd.DataFrame(cols)

    def true_effect(self, x: str, y: str, low: float, high: float) -> float:
        """Sum over directed paths x -> ... -> y of the coefficient products, times (high - low)."""
        total = {x: 1.0}
        for node in self.nodes:  # causal order
            if node.name == x:
                continue
            total[node.name] = sum(c * total.get(p, 0.0) for p, c in node.parents.items())
        return total.get(y, 0.0) * (high - low)


def load_graph_world(name_or_path: str | Path) -> GraphWorld:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIOS / f"graph_{name_or_path}.yaml"
    raw = yaml.safe_load(path.read_text())
    nodes, seen = [], set()
    for name, spec in raw["nodes"].items():
        parents = dict(spec.get("parents") or {})
        late = [p for p in parents if p not in seen]
        if late:
            raise ConfigError(f"{path}: node '{name}' has parent(s) {late} listed after it; list nodes in causal order")
        nodes.append(Node(name, spec.get("type", "continuous"), float(spec.get("intercept", 0.0)), parents,
                          float(spec.get("sd", 1.0))))
        seen.add(name)
    return GraphWorld(raw["name"], raw["outcome"], nodes, raw.get("treatment"), raw.get("mediator"), raw.get("collider"))


def random_world(p: int, seed: int = 0, avg_parents: float = 1.5, binary_share: float = 0.3) -> GraphWorld:
    """A random linear world of ``p`` nodes in a random causal order: each node draws up to 3 parents
    among the earlier ones (about ``avg_parents`` on average), coefficients 0.4-1.0 in absolute value
    (0.06-0.15 into a binary node, whose predictor starts at 0.5); a ``binary_share`` of the nodes are 0/1."""
    rng = np.random.default_rng(seed)
    names = [f"x{i:02d}" for i in range(p)]
    order = list(rng.permutation(names))
    kinds = {n: ("binary" if rng.random() < binary_share else "continuous") for n in order}
    nodes, sds = [], {}
    for j, name in enumerate(order):
        k = min(j, rng.poisson(avg_parents), 3)
        parents = {}
        for q in rng.choice(order[:j], size=k, replace=False) if k else []:
            parents[str(q)] = float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.0))
        if kinds[name] == "binary":  # keep the probability inside (0.01, 0.99): scale by the parents' spread
            spread = sum(abs(c) * sds[q] for q, c in parents.items()) or 1.0
            parents = {q: c * 0.12 / spread for q, c in parents.items()}
            intercept = 0.5 - sum(c * _mean(nodes, q) for q, c in parents.items())
            nodes.append(Node(name, "binary", intercept, parents))
            sds[name] = 0.5
        else:
            nodes.append(Node(name, "continuous", 0.0, parents))
            sds[name] = float(np.sqrt(1.0 + sum((c * sds[q]) ** 2 for q, c in parents.items())))
    outcome = order[-1]
    return GraphWorld(f"random_{p}_{seed}", outcome, nodes)


def _mean(nodes: list[Node], name: str) -> float:
    means: dict[str, float] = {}
    for n in nodes:
        means[n.name] = n.intercept + sum(c * means[q] for q, c in n.parents.items())
        if n.kind == "binary":
            means[n.name] = float(np.clip(means[n.name], 0.01, 0.99))
    return means[name]
