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
    """Rows sorted by customer, then week. Shapes: ``n`` rows, ``c`` customers, ``m`` variables."""

    customer: np.ndarray  # (n,) customer code 0..c-1
    week: np.ndarray  # (n,) integer week
    arm: np.ndarray  # (n,) arm index, 0 = control (config.arm_names order)
    y: np.ndarray  # (n, m) the variables: surrogates, then the outcome
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

    def customers(self, keep: np.ndarray) -> "Panel":
        """The panel of the customers ``keep`` ((c,) bool), renumbered in order.

        Control columns constant among them are dropped (collinear with the intercept: e.g. the one-hot
        columns of the segment a subset is cut from); their names leave ``control_names`` too.
        """
        keep = np.asarray(keep, dtype=bool)
        rows = keep[self.customer]
        X = self.controls[keep]
        varies = np.ptp(X, axis=0) > 0 if len(X) else np.zeros(X.shape[1], dtype=bool)
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
    week = df[ltv.week]
    if not pd.api.types.is_numeric_dtype(week) or pd.api.types.is_bool_dtype(week) \
            or not np.all(np.mod(week.to_numpy(dtype=np.float64), 1) == 0):
        bad = week[~week.astype(str).str.fullmatch(r"-?\d+(\.0+)?")].head(1).tolist()
        raise DataError(f"{source}: column '{ltv.week}' (ltv.week) must hold integer week indices; got e.g. {bad}")
    for c in variables:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
                or not np.isfinite(col.to_numpy(dtype=np.float64)).all():
            raise DataError(f"{source}: column '{c}' must hold finite numbers (it is a modelled weekly quantity)")
    df = df[need].copy()
    df["_week"] = week.to_numpy(dtype=np.float64).astype(np.int64)
    df = df.sort_values([ltv.customer, "_week"], kind="stable").reset_index(drop=True)

    cust_ids, cust = np.unique(df[ltv.customer].to_numpy(), return_inverse=True)
    w = df["_week"].to_numpy()
    same = cust[1:] == cust[:-1]
    step = np.diff(w)
    dup = np.flatnonzero(same & (step == 0))
    if len(dup):
        i = dup[0]
        raise DataError(f"{source}: {int((same & (step == 0)).sum()):,} duplicate (customer, week) row(s), e.g. "
                        f"{ltv.customer}={_show(cust_ids[cust[i]])} {ltv.week}={w[i]}; give one row per customer and week")
    gap = np.flatnonzero(same & (step > 1))
    if len(gap):
        i = gap[0]
        raise DataError(f"{source}: gaps in a customer's weeks ({len(gap):,} customer(s)/gap(s)), e.g. "
                        f"{ltv.customer}={_show(cust_ids[cust[i]])} jumps from {ltv.week} {w[i]} to {w[i + 1]}; "
                        "give a row for every week between a customer's first and last (zeros where nothing happened)")

    values, inverse = np.unique(df[ltv.treatment].astype(str).to_numpy(), return_inverse=True)
    lookup = {a: k for k, a in enumerate(arm_names)}
    unknown = [v for v in values if v not in lookup]
    if unknown:
        raise DataError(f"{source}: column '{ltv.treatment}' (ltv.treatment) has value(s) {unknown[:10]} that are "
                        f"not arms of the config; expected one of {arm_names}")
    arm = np.array([lookup[v] for v in values], dtype=np.int64)[inverse.ravel()]

    starts = np.r_[0, np.flatnonzero(~same) + 1]
    ctrl = df.loc[starts, ltv.controls].reset_index(drop=True) if ltv.controls else pd.DataFrame(index=range(len(starts)))
    for c in ltv.controls:
        first = ctrl[c].to_numpy()[cust]
        varies = df[c].to_numpy() != first
        if varies.any():
            i = int(np.flatnonzero(varies)[0])
            raise DataError(f"{source}: control '{c}' changes within {ltv.customer}={_show(cust_ids[cust[i]])}; "
                            "ltv.controls must be time-invariant (model a changing quantity as a surrogate)")
    segment = _check_segment(df, ltv, cust, cust_ids, starts, source) if ltv.segment is not None else None
    X, names = _encode_controls(ctrl, source)
    y = df[variables].to_numpy(dtype=np.float64)
    if ltv.customer_levels:
        # each customer's mean over its first L weeks: they only ever serve as lags, so the level is
        # predetermined for every row fitted (a mean over all weeks would include each row's own noise)
        pos = np.arange(len(w)) - np.repeat(starts, np.diff(np.r_[starts, len(w)]))
        pre = pos < (ltv.level_weeks or ltv.lags)
        counts = np.bincount(cust[pre], minlength=len(cust_ids))
        levels = np.column_stack([np.bincount(cust[pre], weights=y[pre, j], minlength=len(cust_ids)) / counts
                                  for j in range(y.shape[1])])
        X = np.column_stack([X, levels])
        names = [*names, *(f"level:{v}" for v in variables)]
    return Panel(customer=cust, week=w, arm=arm, y=y, controls=X,
                 control_names=names, variables=list(variables), arm_names=list(arm_names), customer_ids=cust_ids,
                 segment=segment)


def _check_segment(df: pd.DataFrame, ltv: LtvConfig, cust: np.ndarray, cust_ids: np.ndarray, starts: np.ndarray,
                   source: str) -> np.ndarray:
    """Each customer's level of ``ltv.segment`` (text), after checking it is one level per customer and few levels."""
    c = ltv.segment
    labels = segment_labels(df[c])
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
