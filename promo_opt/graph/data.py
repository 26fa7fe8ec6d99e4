"""The ``drivers:`` table: read, check and encode the variables of a causal graph.

Each variable is one node. Numbers (and 0/1 or true/false columns) are one column of the design;
a text column with few levels is a block of indicator columns (every level but the first), which
is how the degenerate-Gaussian score of Andrews, Ramsey & Cooper (2019) treats discrete
variables in a mixed data set. Checked once, here: every named column exists, no missing values,
no constant column, few enough levels, enough rows for the number of design columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.config import DriversConfig
from promo_opt.data import read_table
from promo_opt.errors import DataError

MAX_LEVELS = 20  # a text variable with more levels is an id or free text, not a node
ROWS_PER_COLUMN = 10  # at least this many rows per design column
MIN_ROWS = 50


@dataclass
class DriversData:
    """``frame``: the variables as read; ``kinds[v]``: binary | continuous | categorical;
    ``design`` (n, m) float; ``blocks[v]``: the design columns of ``v``; ``levels[v]``: the
    categories of a categorical ``v`` (reference first)."""

    frame: pd.DataFrame
    variables: list[str]
    outcome: str
    kinds: dict[str, str]
    design: np.ndarray
    blocks: dict[str, list[int]]
    levels: dict[str, list[str]]

    @property
    def n(self) -> int:
        return self.design.shape[0]


def load_drivers_data(cfg: DriversConfig) -> DriversData:
    df = read_table(cfg.data, "drivers.data")
    return prepare_drivers_data(df, cfg, str(cfg.data))


def prepare_drivers_data(df: pd.DataFrame, cfg: DriversConfig, source: str = "drivers.data") -> DriversData:
    if cfg.outcome not in df.columns:
        raise DataError(f"{source}: the outcome column '{cfg.outcome}' (drivers.outcome) is missing; "
                        f"present: {list(df.columns)[:20]}")
    if cfg.id is not None and cfg.id not in df.columns:
        raise DataError(f"{source}: the id column '{cfg.id}' (drivers.id) is missing")
    if cfg.variables == "auto":
        variables = [c for c in df.columns if c not in (cfg.id, cfg.outcome)]
    else:
        variables = [v for v in cfg.variables if v != cfg.outcome]
        absent = [v for v in variables if v not in df.columns]
        if absent:
            raise DataError(f"{source}: column(s) {absent} named in drivers.variables are missing; "
                            f"present: {list(df.columns)[:20]}")
        if cfg.id in variables:
            raise DataError(f"{source}: '{cfg.id}' is the id column (drivers.id); an id is never a variable")
    if not variables:
        raise DataError(f"{source}: no variable besides the outcome '{cfg.outcome}'; a graph needs at least two")
    names = variables + [cfg.outcome]
    frame = df[names].reset_index(drop=True)
    kinds, cols, blocks, levels = {}, [], {}, {}
    for v in names:
        s = frame[v]
        if s.isna().any():
            raise DataError(f"{source}: column '{v}' has {int(s.isna().sum())} missing value(s); structure learning "
                            "needs complete rows: fill them or drop the rows")
        if s.nunique() < 2:
            raise DataError(f"{source}: column '{v}' is constant (every row is {s.iloc[0]!r}): it cannot cause or be "
                            "caused by anything in these data; drop it from drivers.variables")
        if s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            x = s.astype(np.float64).to_numpy()
            kinds[v] = "binary" if set(np.unique(x)) <= {0.0, 1.0} else "continuous"
            blocks[v] = [len(cols)]
            cols.append(x)
            continue
        if v == cfg.outcome:
            raise DataError(f"{source}: the outcome '{v}' must be numeric (0/1 for a conversion); got text like "
                            f"{s.astype(str).unique()[:3].tolist()}")
        lv = sorted(s.astype(str).unique())
        if len(lv) > MAX_LEVELS:
            raise DataError(f"{source}: text column '{v}' has {len(lv)} levels (more than {MAX_LEVELS}): an id or free "
                            "text is not a node of a causal graph; drop it or group its levels")
        kinds[v], levels[v] = "categorical", lv
        text = s.astype(str).to_numpy()
        blocks[v] = list(range(len(cols), len(cols) + len(lv) - 1))
        cols += [(text == level).astype(np.float64) for level in lv[1:]]
    design = np.column_stack(cols)
    need = max(MIN_ROWS, ROWS_PER_COLUMN * design.shape[1])
    if len(frame) < need:
        raise DataError(f"{source}: {len(frame)} rows for {len(names)} variables ({design.shape[1]} model columns): "
                        f"too few to learn a graph; at least {need} rows are needed ({ROWS_PER_COLUMN} per column)")
    return DriversData(frame, names, cfg.outcome, kinds, design, blocks, levels)
