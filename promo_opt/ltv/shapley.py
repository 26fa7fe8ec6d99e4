"""Shapley attribution of a total value across players (surrogate groups, arms, ...).

``value(S)`` is any set function over player indices returning an array (e.g. one value per
bootstrap replicate). Exact: the weighted sum over all 2^n coalitions. Sampled (many players):
the mean marginal contribution over random permutations, with its standard error; every
permutation's contributions add to ``value(all) - value(none)``, so efficiency holds exactly
in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import factorial
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ShapleyResult:
    players: list[str]
    phi: np.ndarray  # (n_players, ...) attribution of each player
    total: np.ndarray  # value(all players)
    empty: np.ndarray  # value(no player): what no player carries
    method: str  # 'exact' or 'sampled'
    std_error: np.ndarray | None = None  # (n_players, ...) Monte Carlo standard error when sampled
    permutations: int = 0

    @property
    def efficiency_gap(self) -> np.ndarray:
        """``empty + sum(phi) - total``: zero up to rounding."""
        return self.empty + self.phi.sum(axis=0) - self.total


def shapley(value: Callable[[frozenset[int]], np.ndarray], players: list[str], exact_max: int = 10,
            permutations: int = 2000, seed: int = 0,
            value_many: Callable[[list[frozenset[int]]], np.ndarray] | None = None,
            batch: int = 64) -> ShapleyResult:
    """Exact Shapley values for ``len(players) <= exact_max``, otherwise sampled over permutations.

    ``value_many`` (optional): the values of a list of coalitions at once, ``(len, ...)``; the
    coalitions needed are then evaluated in batches of ``batch`` before the attribution.
    """
    n = len(players)
    cache: dict[frozenset[int], np.ndarray] = {}

    def v(s: frozenset[int]) -> np.ndarray:
        if s not in cache:
            cache[s] = np.asarray(value(s), dtype=np.float64)
        return cache[s]

    rng = np.random.default_rng([seed, 4242])
    orders = None if n <= exact_max else [rng.permutation(n) for _ in range(permutations)]
    if value_many is not None:
        if orders is None:
            need = [frozenset(c) for size in range(n + 1) for c in combinations(range(n), size)]
        else:
            need = list({frozenset(o[:i].tolist()) for o in orders for i in range(n + 1)})
        for i in range(0, len(need), batch):
            chunk = need[i:i + batch]
            for s, val in zip(chunk, np.asarray(value_many(chunk), dtype=np.float64)):
                cache[s] = val
    full, empty = v(frozenset(range(n))), v(frozenset())
    if n <= exact_max:
        phi = np.zeros((n, *np.shape(full)))
        for i in range(n):
            others = [p for p in range(n) if p != i]
            for size in range(n):
                w = factorial(size) * factorial(n - size - 1) / factorial(n)
                for sub in combinations(others, size):
                    s = frozenset(sub)
                    phi[i] += w * (v(s | {i}) - v(s))
        return ShapleyResult(players=list(players), phi=phi, total=full, empty=empty, method="exact")
    draws = np.zeros((permutations, n, *np.shape(full)))
    for b, order in enumerate(orders):
        s: frozenset[int] = frozenset()
        prev = empty
        for i in order:
            s = s | {int(i)}
            cur = v(s)
            draws[b, i] = cur - prev
            prev = cur
    phi = draws.mean(axis=0)
    se = draws.std(axis=0, ddof=1) / np.sqrt(permutations)
    return ShapleyResult(players=list(players), phi=phi, total=full, empty=empty, method="sampled", std_error=se,
                         permutations=permutations)
