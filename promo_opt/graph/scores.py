"""Scores and tests of structure learning from sufficient statistics (one pass over the rows).

- ``BlockGaussianBIC``: the degenerate-Gaussian BIC of Andrews, Ramsey & Cooper (2019): every
  variable is a block of design columns (one for a number, indicators for a text variable) and
  the local score of a child block given its parents' columns is the Gaussian log-likelihood of
  the multivariate linear regression minus ``k/2 log n`` with
  ``k = |c| (|p| + 1) + |c| (|c| + 1) / 2`` parameters. It plugs into pgmpy's searches as a
  ``BaseStructureScore``. Computed from the (m, m) covariance only, so a search costs the same
  at 1M rows as at 10k.
- ``GaussianCITest``: the likelihood-ratio test of conditional independence of two blocks given
  a set of blocks under the same model, ``-n' log(det S_xy|z / (det S_x|z det S_y|z))`` against
  chi-square with ``|x| |y|`` degrees of freedom (Bartlett's ``n'``); for two numbers it is the
  partial-correlation (Fisher) test. Callable as pgmpy's PC expects.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pgmpy.structure_score import BaseStructureScore
from scipy.special import chdtrc
from skbase.base import BaseObject

_LOG2PI = float(np.log(2 * np.pi))


class SufficientStats:
    """Covariance (maximum likelihood) of a design matrix and its column blocks per variable."""

    def __init__(self, design: np.ndarray, blocks: dict[str, list[int]], weights: np.ndarray | None = None):
        X = np.asarray(design, dtype=np.float64)
        if weights is None:
            self.n = X.shape[0]
            mean = X.mean(0)
            Xc = X - mean
            self.cov = Xc.T @ Xc / self.n
        else:  # bootstrap counts: a resample without materializing it
            w = np.asarray(weights, dtype=np.float64)
            self.n = int(w.sum())
            mean = w @ X / w.sum()
            Xc = X - mean
            self.cov = (Xc * w[:, None]).T @ Xc / w.sum()
        self.blocks = blocks

    def cols(self, names) -> list[int]:
        return [c for v in names for c in self.blocks[v]]

    def residual_cov(self, target: list[int], given: list[int]) -> np.ndarray:
        S = self.cov[np.ix_(target, target)]
        if not given:
            return S
        A = self.cov[np.ix_(given, given)]
        B = self.cov[np.ix_(given, target)]
        A = A + 1e-10 * np.trace(A) / len(given) * np.eye(len(given))
        return S - B.T @ np.linalg.solve(A, B)

    def logdet(self, target: list[int], given: list[int]) -> float:
        sign, ld = np.linalg.slogdet(self.residual_cov(target, given))
        return float(ld) if sign > 0 else -700.0  # a deterministic relation: as good a fit as floats allow


def _logdet(A: np.ndarray) -> float:
    sign, ld = np.linalg.slogdet(A)
    return float(ld) if sign > 0 else -700.0


class BlockGaussianBIC(BaseStructureScore):
    """Degenerate-Gaussian BIC local score (see the module doc) for pgmpy's HillClimbSearch."""

    _tags = {"name": "bic-dg", "supported_datatype": "mixed", "default_for": None, "is_parameteric": False}

    def __init__(self, stats: SufficientStats, penalty: float = 1.0):
        self.stats = stats
        self.penalty = penalty
        BaseObject.__init__(self)  # pgmpy's base would preprocess a data frame we do not keep
        self.data, self.variables = None, list(stats.blocks)
        self._cached_local_score = lru_cache(maxsize=100_000)(self._local_score)

    def _local_score(self, variable: str, parents: tuple[str, ...]) -> float:
        s = self.stats
        c, p = s.blocks[variable], s.cols(parents)
        ll = -0.5 * s.n * (s.logdet(c, p) + len(c) * (1.0 + _LOG2PI))
        k = len(c) * (len(p) + 1) + len(c) * (len(c) + 1) / 2
        return ll - self.penalty * 0.5 * k * np.log(s.n)


class GaussianCITest:
    """``test(x, y, z, significance_level=...) -> True`` when x and y are independent given z."""

    def __init__(self, stats: SufficientStats):
        self.stats = stats
        self.cache: dict = {}

    def p_value(self, x: str, y: str, z) -> float:
        key = (min(x, y), max(x, y), frozenset(z))
        if key not in self.cache:
            s = self.stats
            cx, cy, cz = s.blocks[x], s.blocks[y], s.cols(sorted(z))
            kx, k = len(cx), len(cx) + len(cy)
            idx = cx + cy + cz
            S = s.cov[np.ix_(idx, idx)]
            S = S + 1e-12 * np.trace(S) / len(idx) * np.eye(len(idx))
            C = np.linalg.inv(np.linalg.inv(S)[:k, :k])  # covariance of (x, y) given z
            ld = _logdet(C) - _logdet(C[:kx, :kx]) - _logdet(C[kx:, kx:])
            n_eff = s.n - len(cz) - (k + 3) / 2
            stat = max(0.0, -n_eff * ld)
            self.cache[key] = float(chdtrc(kx * (k - kx), stat))
        return self.cache[key]

    def __call__(self, x, y, z, significance_level: float = 0.01, **_) -> bool:
        return self.p_value(x, y, z) >= significance_level
