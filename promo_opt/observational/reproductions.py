"""Data preparation of the published reproductions (benchmarks/observational.py and the tests).

- LaLonde / NSW (Dehejia-Wahba experimental subsample, ``lalonde.csv``): the randomized data, and an
  observational version built by a selection on observables among the controls (rule below).
- Card & Krueger (1994) ``njmin3.csv``: the long panel with a store id recovered from the row
  order (each state's stores are listed once per wave, in the same order; checked on every
  store characteristic column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from promo_opt.config import parse_config
from promo_opt.errors import DataError

LALONDE_EXPERIMENTAL = 1794.34  # mean re78 treated - control in the randomized NSW sample (6,349.15 - 4,554.80)
CK_PUBLISHED = {"did": 2.76, "se": 1.36}  # Card & Krueger (1994) Table 3, change in mean FTE, NJ - PA

LALONDE_DROP_RULE = ("remove each control with black = 1 and u74 = 1 (no earnings in 1974) with probability "
                     "0.9 (numpy default_rng(seed)); keep every treated and every other control")


def lalonde_observational(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The NSW sample with controls removed by :data:`LALONDE_DROP_RULE` (selection on observables).

    Removal depends only on pre-treatment covariates, so the treatment effect on the treated is
    still identified by adjusting for them, while the naive difference is biased (the removed
    controls earn less in 1978 than the kept ones).
    """
    rng = np.random.default_rng(seed)
    candidates = (df["treat"] == 0) & (df["black"] == 1) & (df["u74"] == 1)
    drop = candidates.to_numpy() & (rng.random(len(df)) < 0.9)
    return df[~drop].reset_index(drop=True)


def card_krueger_panel(path: str | Path) -> pd.DataFrame:
    """``njmin3.csv`` with a ``store`` column (unit id): state blocks of wave 0 rows then wave 1 rows."""
    df = pd.read_csv(path)
    store = np.empty(len(df), dtype=np.int64)
    fixed = ["bk", "kfc", "roys", "wendys", "co_owned", "centralj", "southj", "pa1", "pa2"]
    start = 0
    for nj in pd.unique(df["nj"]):
        block = np.flatnonzero(df["nj"].to_numpy() == nj)
        n = len(block) // 2
        if len(block) % 2 or block[0] != start or not (df["d"].iloc[block[:n]] == 0).all() or not (df["d"].iloc[block[n:]] == 1).all():
            raise DataError(f"{path}: the rows of nj={nj} are not one wave-0 block followed by one wave-1 block")
        a, b = df.iloc[block[:n]][fixed].to_numpy(), df.iloc[block[n:]][fixed].to_numpy()
        if not (a == b).all():
            raise DataError(f"{path}: store characteristics differ between the two waves of nj={nj}")
        store[block] = start // 2 + np.r_[np.arange(n), np.arange(n)]
        start += len(block)
    df["store"] = store
    return df


def card_krueger_config(csv: Path, controls: list[str] | None = None):
    return parse_config({"name": "card_krueger", "data": {"train": str(csv), "treatment": "nj", "outcome": "fte",
                                                          "time": "d", "unit": "store", "features": ["bk", "kfc", "roys", "co_owned", "centralj", "southj", "pa1"]},
                         "arms": [{"name": "0", "control": True}, {"name": "1"}],
                         "observational": {"controls": controls or []}})


def lalonde_config(csv: Path, **observational):
    return parse_config({"name": "lalonde", "data": {"train": str(csv), "treatment": "treat", "outcome": "re78"},
                         "arms": [{"name": "0", "control": True}, {"name": "1"}], "observational": observational})
