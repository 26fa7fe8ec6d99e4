"""Read and check the weekly customer panel of ``ltv:``: one row per customer and week.

Checked once, here: the named columns exist, weeks are integers without gaps inside a customer's
span, (customer, week) is unique, every arm value is one of the config's arms, the modelled
columns are finite numbers and the controls do not change within a customer; the ``ltv.segment``
column, when named, is present, constant within a customer and has at most ``SEGMENT_MAX_LEVELS``
levels. Every error names the column and an offending value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.data import read_table, segment_labels
from promo_opt.errors import DataError
from promo_opt.ltv.settings import SEGMENT_MAX_LEVELS, LtvConfig


@dataclass(frozen=True)
class Panel:
    """Rows sorted by customer, then week. Shapes: ``n`` rows, ``c`` customers, ``m`` variables.

    Kept compact for large panels: integer columns in the smallest type that holds them, ``y`` in float32
    when its values are exactly float32 (see :func:`check_panel`); sums over rows must accumulate in float64.
    """

    customer: np.ndarray  # (n,) customer code 0..c-1 (int32 or int64)
    week: np.ndarray  # (n,) integer week (int32 or int64)
    arm: np.ndarray  # (n,) arm index, 0 = control (config.arm_names order), a small integer type
    y: np.ndarray  # (n, m) the variables: surrogates, then the outcome (float32 or float64)
    controls: np.ndarray  # (c, p) time-invariant controls per customer (categoricals one-hot, first level dropped)
    control_names: list[str]
    variables: list[str]
    arm_names: list[str]
    customer_ids: np.ndarray  # (c,) the original ids
    segment: np.ndarray | None = None  # (c,) each customer's level of ltv.segment, as text (segment_labels)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_rows(self) -> int:
        return len(self.week)

    def customers(self, keep: np.ndarray, drop_constant_controls: bool = True) -> "Panel":
        """The panel of the customers ``keep`` ((c,) bool), renumbered in order.

        Control columns constant among them are dropped (collinear with the intercept: e.g. the one-hot
        columns of the segment a subset is cut from); their names leave ``control_names`` too.
        ``drop_constant_controls`` False keeps every column (a part of a level whose other customers
        are elsewhere, as on a Spark partition).
        """
        keep = np.asarray(keep, dtype=bool)
        rows = keep[self.customer]
        X = self.controls[keep]
        varies = (np.ptp(X, axis=0) > 0 if len(X) else np.zeros(X.shape[1], dtype=bool)) if drop_constant_controls \
            else np.ones(X.shape[1], dtype=bool)
        return Panel(customer=(np.cumsum(keep) - 1)[self.customer[rows]], week=self.week[rows], arm=self.arm[rows],
                     y=self.y[rows], controls=X[:, varies],
                     control_names=[c for c, v in zip(self.control_names, varies) if v], variables=self.variables,
                     arm_names=self.arm_names, customer_ids=self.customer_ids[keep],
                     segment=None if self.segment is None else self.segment[keep])


def read_panel(ltv: LtvConfig, arm_names: list[str]) -> Panel:
    """The panel file of ``ltv.panel``, checked against the config (see the module docstring)."""
    if ltv.panel is None:
        raise DataError("ltv.panel is not set: the long-term model needs a weekly customer panel")
    return check_panel(read_table(ltv.panel, "ltv panel"), ltv, arm_names, source=str(ltv.panel))


def check_panel(df: pd.DataFrame, ltv: LtvConfig, arm_names: list[str], source: str = "ltv panel") -> Panel:
    """The checked panel of ``df`` (any row order; ``df`` is not modified).

    Memory: one column at a time is converted; the frame is never copied or sorted as a whole (the
    rows are put in (customer, week) order through one permutation, skipped when already sorted).
    ``Panel.y`` is float32 when every value of every variable is exactly a float32 (counts, amounts
    read as float32), float64 otherwise: the values are never rounded.
    """
    variables = ltv.variables
    if ltv.segment is not None and ltv.segment not in df.columns:
        raise DataError(f"{source}: no column '{ltv.segment}' (ltv.segment); expected a time-invariant column of the "
                        f"panel, such as a loyalty tier, to value each of its levels; the panel has {list(df.columns)[:30]}")
    seg_col = [ltv.segment] if ltv.segment is not None and ltv.segment not in ltv.controls else []
    need = [ltv.customer, ltv.week, ltv.treatment, *variables, *ltv.controls, *seg_col]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing} named in ltv:; the panel has {list(df.columns)[:30]}")
    for c in need:
        n_null = int(df[c].isna().sum())
        if n_null:
            raise DataError(f"{source}: column '{c}' has {n_null:,} missing value(s); the panel must be complete")
    w = _integer_weeks(df[ltv.week], ltv.week, source)
    as_float32 = True
    for c in variables:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise DataError(f"{source}: column '{c}' must hold finite numbers (it is a modelled weekly quantity)")
        x = col.to_numpy(dtype=np.float64)
        if not np.isfinite(x).all():
            raise DataError(f"{source}: column '{c}' must hold finite numbers (it is a modelled weekly quantity)")
        as_float32 = as_float32 and bool((x.astype(np.float32) == x).all())
        del x

    # customers as codes in the order of their ids (the ids sorted, as np.unique would), rows in (customer, week) order
    codes, uniques = pd.factorize(df[ltv.customer], sort=True)
    cust_ids = np.asarray(uniques)
    cust = codes.astype(_index_type(len(cust_ids)), copy=False)
    del codes
    order = None if _is_sorted(cust, w) else np.lexsort((w, cust))
    if order is not None:
        cust, w = cust[order], w[order]

    def rows(a: np.ndarray) -> np.ndarray:
        """A column's values in (customer, week) order."""
        return a if order is None else a[order]

    same = cust[1:] == cust[:-1]
    step = np.diff(w)
    dup = np.flatnonzero(same & (step == 0))
    if len(dup):
        i = dup[0]
        raise DataError(f"{source}: {len(dup):,} duplicate (customer, week) row(s), e.g. "
                        f"{ltv.customer}={_show(cust_ids[cust[i]])} {ltv.week}={w[i]}; give one row per customer and week")
    gap = np.flatnonzero(same & (step > 1))
    if len(gap):
        i = gap[0]
        raise DataError(f"{source}: gaps in a customer's weeks ({len(gap):,} customer(s)/gap(s)), e.g. "
                        f"{ltv.customer}={_show(cust_ids[cust[i]])} jumps from {ltv.week} {w[i]} to {w[i + 1]}; "
                        "give a row for every week between a customer's first and last (zeros where nothing happened)")
    del step
    arm = rows(_arm_index(df[ltv.treatment], ltv.treatment, arm_names, source))

    starts = np.r_[0, np.flatnonzero(~same) + 1]
    del same
    first_rows = starts if order is None else order[starts]
    ctrl = (df[ltv.controls].iloc[first_rows].reset_index(drop=True) if ltv.controls
            else pd.DataFrame(index=range(len(starts))))
    for c in ltv.controls:
        varies = rows(df[c].to_numpy()) != ctrl[c].to_numpy()[cust]
        if varies.any():
            i = int(np.flatnonzero(varies)[0])
            raise DataError(f"{source}: control '{c}' changes within {ltv.customer}={_show(cust_ids[cust[i]])}; "
                            "ltv.controls must be time-invariant (model a changing quantity as a surrogate)")
    segment = (_check_segment(rows(segment_labels(df[ltv.segment])), ltv, cust, cust_ids, starts, source)
               if ltv.segment is not None else None)
    X, names = _encode_controls(ctrl, source)
    y = np.empty((len(w), len(variables)), dtype=np.float32 if as_float32 else np.float64)
    for j, c in enumerate(variables):
        y[:, j] = rows(df[c].to_numpy())
    if ltv.customer_levels:
        # each customer's mean over its first L weeks: they only ever serve as lags, so the level is
        # predetermined for every row fitted (a mean over all weeks would include each row's own noise)
        pos = np.arange(len(w)) - np.repeat(starts, np.diff(np.r_[starts, len(w)]))
        pre = np.flatnonzero(pos < (ltv.level_weeks or ltv.lags))
        del pos
        counts = np.bincount(cust[pre], minlength=len(cust_ids))
        levels = np.column_stack([np.bincount(cust[pre], weights=y[pre, j], minlength=len(cust_ids)) / counts
                                  for j in range(y.shape[1])])
        X = np.column_stack([X, levels])
        names = [*names, *(f"level:{v}" for v in variables)]
    return Panel(customer=cust, week=w, arm=arm, y=y, controls=X,
                 control_names=names, variables=list(variables), arm_names=list(arm_names), customer_ids=cust_ids,
                 segment=segment)


def _integer_weeks(week: pd.Series, name: str, source: str) -> np.ndarray:
    """The week column as integers (int32 when they fit), or the error naming an offending value."""
    if not pd.api.types.is_numeric_dtype(week) or pd.api.types.is_bool_dtype(week) \
            or not np.all(np.mod(week.to_numpy(dtype=np.float64), 1) == 0):
        bad = week[~week.astype(str).str.fullmatch(r"-?\d+(\.0+)?")].head(1).tolist()
        raise DataError(f"{source}: column '{name}' (ltv.week) must hold integer week indices; got e.g. {bad}")
    w = week.to_numpy(dtype=np.float64).astype(np.int64)
    small = len(w) and np.iinfo(np.int32).min < w.min() and w.max() < np.iinfo(np.int32).max
    return w.astype(np.int32) if small else w


def _index_type(n: int) -> type:
    """The smallest of int32/int64 that holds the codes 0..n-1."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def _is_sorted(cust: np.ndarray, w: np.ndarray) -> bool:
    """Rows already in (customer, week) order (ties allowed: duplicates are reported afterwards)."""
    dc = np.diff(cust)
    return bool(((dc > 0) | ((dc == 0) & (np.diff(w) >= 0))).all())


def _arm_index(col: pd.Series, name: str, arm_names: list[str], source: str) -> np.ndarray:
    """Every row's arm as an index into ``arm_names`` (0 = control), values compared as text."""
    codes, values = pd.factorize(col)
    text = [str(v) for v in values]
    lookup = {a: k for k, a in enumerate(arm_names)}
    unknown = sorted({v for v in text if v not in lookup})
    if unknown:
        raise DataError(f"{source}: column '{name}' (ltv.treatment) has value(s) {unknown[:10]} that are "
                        f"not arms of the config; expected one of {arm_names}")
    return np.array([lookup[v] for v in text], dtype=np.min_scalar_type(-len(arm_names)))[codes]


def _check_segment(labels: np.ndarray, ltv: LtvConfig, cust: np.ndarray, cust_ids: np.ndarray, starts: np.ndarray,
                   source: str) -> np.ndarray:
    """Each customer's level of ``ltv.segment`` (text, ``labels`` per row in panel order), after checking it is one
    level per customer and few levels."""
    c = ltv.segment
    first = labels[starts]
    varies = np.flatnonzero(labels != first[cust])
    if len(varies):
        i = int(varies[0])
        raise DataError(f"{source}: column '{c}' (ltv.segment) changes within {ltv.customer}={_show(cust_ids[cust[i]])} "
                        f"(from {first[cust[i]]!r} to {labels[i]!r}); expected one level per customer (time-invariant)")
    levels = np.unique(first)
    if len(levels) > SEGMENT_MAX_LEVELS:
        raise DataError(f"{source}: column '{c}' (ltv.segment) has {len(levels):,} levels, e.g. {levels[:5].tolist()}; "
                        f"expected at most {SEGMENT_MAX_LEVELS} (a categorical column such as a loyalty tier; bin a "
                        "numeric column first)")
    return first


def _encode_controls(ctrl: pd.DataFrame, source: str) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    for c in ctrl.columns:
        s = ctrl[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            cols.append(s.to_numpy(dtype=np.float64))
            names.append(c)
        else:
            levels = sorted(s.astype(str).unique())
            for lv in levels[1:]:
                cols.append((s.astype(str) == lv).to_numpy(dtype=np.float64))
                names.append(f"{c}={lv}")
    X = np.column_stack(cols) if cols else np.zeros((len(ctrl), 0))
    return X, names


def _show(x) -> str:
    """A customer id as the user wrote it (no numpy repr)."""
    return repr(x.item() if isinstance(x, np.generic) else x)
