"""Outcomes of candidates in a simulated world, drawn from the truth table (``data.truth``).

Two uses: a randomized holdout slice of the candidates (random arms) to check a policy offline
with ``promo-opt evaluate``, and the campaign "as run" (the targets' arms) to try ``promo-opt measure``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.evaluation.truth import truth_economics


def simulate_outcomes(config: CampaignConfig, truth: pd.DataFrame, ids: np.ndarray, arm: np.ndarray | None = None,
                      seed: int = 0, value_sigma: float = 0.3) -> pd.DataFrame:
    """One row per id: ``<id>``, ``<treatment>`` (arm name), ``<outcome>`` (0/1) and, when configured, ``<value>``.

    ``arm`` (n,) arm indices (config order); None: each user gets a uniformly random arm (a randomized
    holdout). Conversions ~ Bernoulli(true p of the arm); order values ~ lognormal around the true value
    (mean-preserving, log-sd ``value_sigma``), 0 when not converted.
    """
    econ = truth_economics(config, ids, truth)
    rng = np.random.default_rng(seed)
    n, K = econ.p.shape
    arm = rng.integers(0, K, size=n) if arm is None else np.asarray(arm, dtype=np.int64)
    y = rng.random(n) < econ.p[np.arange(n), arm]
    d = config.data
    df = pd.DataFrame({d.id: ids, d.treatment: np.asarray(config.arm_names, dtype=object)[arm],
                       d.outcome: y.astype(np.int64)})
    if d.value:
        v = econ.value * np.exp(value_sigma * rng.standard_normal(n) - 0.5 * value_sigma ** 2)
        df[d.value] = np.where(y, np.round(v, 2), 0.0)
    return df
