"""Difference-in-differences: two-period and panel, event study with a parallel-trends check.

Data are long: one row per unit and period, with ``group`` (True for the arm's units, constant
per unit), ``time`` (sortable period) and ``treatment_start`` (first post period; with exactly two
periods, the later one by default).

- The effect is the coefficient of ``group x post`` in a least-squares regression of the outcome
  on the group, period fixed effects and optional controls (statsmodels OLS). Standard errors are
  clustered by unit when a unit column is given (the repeated observations of a store are not
  independent), else heteroskedasticity-robust (HC1). With a unit column the two-way fixed-effects
  estimate (unit and period effects, units demeaned) is reported beside it.
- The event study replaces ``group x post`` by ``group x 1[time = p]`` for every period but the
  last pre period (the reference), with unit fixed effects when units are given; the pre-period
  coefficients are jointly tested against zero (Wald, clustered): the parallel-trends check. With
  a single pre period the check is not possible and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

from promo_opt.errors import DataError
from promo_opt.observational.result import ArmEffect


@dataclass
class DIDResult:
    effect: ArmEffect
    means: pd.DataFrame  # group x period mean outcome (pre/post)
    event_study: pd.DataFrame | None = None  # time, relative period, coef, se, ci_low, ci_high
    pretrend_p: float | None = None
    pretrend_note: str = ""
    details: dict = field(default_factory=dict)


def _fit(y: np.ndarray, D: pd.DataFrame, cluster: np.ndarray | None):
    D = D.loc[:, D.std(ddof=0) > 1e-12] if len(D.columns) else D  # drop constant (absorbed) columns
    model = sm.OLS(y, sm.add_constant(D, has_constant="add"))
    if cluster is not None:
        return model.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(cluster)[0]})
    return model.fit(cov_type="HC1")


def _demean(D: pd.DataFrame, unit: np.ndarray) -> pd.DataFrame:
    return D - D.groupby(unit).transform("mean")


def check_panel(group: np.ndarray, time: np.ndarray, unit: np.ndarray | None, treatment_start, name: str,
                time_col: str = "time", control: str = "control"):
    """Validate the periods and groups; return (periods, start, post mask)."""
    periods = np.sort(pd.unique(time))
    if len(periods) < 2:
        raise DataError(f"difference-in-differences needs a pre and a post period, but column '{time_col}' "
                        f"(data.time) has a single value ({periods[0] if len(periods) else 'no rows'})")
    if treatment_start is None:
        if len(periods) > 2:
            raise DataError(f"column '{time_col}' (data.time) has {len(periods)} periods: set "
                            "observational.treatment_start to the first post period")
        treatment_start = periods[1]
    post = time >= treatment_start
    for g, label in ((True, name), (False, control)):
        rows = group == g
        if not (rows & ~post).any():
            raise DataError(f"missing pre-period rows: arm '{label}' has no rows with {time_col} < {treatment_start} "
                            "(observational.treatment_start); difference-in-differences needs every group before "
                            "and after")
        if not (rows & post).any():
            raise DataError(f"missing post-period rows: arm '{label}' has no rows with {time_col} >= {treatment_start}")
    if unit is not None:
        mixed = pd.Series(group).groupby(unit).nunique()
        if (mixed > 1).any():
            raise DataError(f"unit(s) {mixed[mixed > 1].index[:3].tolist()} (data.unit) have rows in both '{name}' and "
                            f"'{control}': the treatment column must name each unit's group, constant over periods")
    return periods, treatment_start, post


def did(y: np.ndarray, group: np.ndarray, time: np.ndarray, unit: np.ndarray | None = None,
        treatment_start=None, controls: pd.DataFrame | None = None, name: str = "arm", control: str = "control",
        time_col: str = "time") -> DIDResult:
    """Difference-in-differences of ``group`` vs the rest; see the module doc."""
    y = np.asarray(y, dtype=np.float64)
    group = np.asarray(group, dtype=bool)
    periods, start, post = check_panel(group, time, unit, treatment_start, name, time_col, control)
    tdum = pd.get_dummies(pd.Categorical(time, categories=periods), prefix="t", drop_first=True, dtype=float)
    D = pd.concat([pd.DataFrame({"group": group.astype(float), "did": (group & post).astype(float)}), tdum], axis=1)
    if controls is not None and len(controls.columns):
        D = pd.concat([D, controls.reset_index(drop=True).astype(float)], axis=1)
    res = _fit(y, D, unit)
    est, se = float(res.params["did"]), float(res.bse["did"])
    means = pd.DataFrame({"group": np.where(group, name, control), "period": np.where(post, "post", "pre"), "y": y}) \
        .groupby(["group", "period"])["y"].agg(["mean", "count"]).reset_index()
    details = {"treatment_start": start, "periods": [p.item() if hasattr(p, "item") else p for p in periods],
               "se_type": "cluster(unit)" if unit is not None else "HC1", "controls": list(controls.columns) if controls is not None else []}
    out = DIDResult(ArmEffect(name, est, se, int(group.sum()), int((~group).sum()), "did", "att", details), means)
    if unit is not None:
        Dfe = _demean(D.drop(columns=["group"]), unit)
        fe = _fit(y - pd.Series(y).groupby(unit).transform("mean").to_numpy(), Dfe, unit)
        details["twfe_estimate"], details["twfe_se"] = float(fe.params["did"]), float(fe.bse["did"])
        details["units"] = int(pd.Series(unit).nunique())
    out.event_study, out.pretrend_p, out.pretrend_note = event_study(y, group, time, unit, periods, start)
    return out


def event_study(y, group, time, unit, periods, start):
    """Coefficients of group x period relative to the last pre period, and the pre-trend Wald test."""
    pre = [p for p in periods if p < start]
    ref = pre[-1]
    others = [p for p in periods if p != ref]
    D = pd.DataFrame({f"g_t{i}": (group & (time == p)).astype(float) for i, p in enumerate(others)})
    D = pd.concat([D, pd.get_dummies(pd.Categorical(time, categories=periods), prefix="t", drop_first=True,
                                     dtype=float)], axis=1)
    if unit is not None:
        res = _fit(y - pd.Series(y).groupby(unit).transform("mean").to_numpy(), _demean(D, unit), unit)
    else:
        D["group"] = group.astype(float)
        res = _fit(y, D, None)
    rel = {p: (i - len(pre)) for i, p in enumerate(periods)}  # last pre period -> -1, start -> 0
    rows = [{"time": ref, "relative": rel[ref], "coef": 0.0, "se": 0.0}]
    for i, p in enumerate(others):
        c = f"g_t{i}"
        rows.append({"time": p, "relative": rel[p], "coef": float(res.params.get(c, np.nan)),
                     "se": float(res.bse.get(c, np.nan))})
    es = pd.DataFrame(rows).sort_values("relative").reset_index(drop=True)
    es["ci_low"], es["ci_high"] = es["coef"] - 1.959964 * es["se"], es["coef"] + 1.959964 * es["se"]
    pre_cols = [f"g_t{i}" for i, p in enumerate(others) if p < start and f"g_t{i}" in res.params.index]
    if not pre_cols:
        return es, None, "one pre period only: parallel pre-trends cannot be tested"
    R = np.zeros((len(pre_cols), len(res.params)))
    for j, c in enumerate(pre_cols):
        R[j, list(res.params.index).index(c)] = 1.0
    p = float(np.asarray(res.wald_test(R, scalar=True).pvalue))
    note = (f"parallel pre-trends: joint test of {len(pre_cols)} pre-period coefficient(s) = 0, p = {p:.3g}"
            + (" (rejected at 5%: the DID assumption is doubtful)" if p < 0.05 else ""))
    return es, p, note


def matched_did(delta: np.ndarray, arm: np.ndarray, e: np.ndarray, k: int = 1, **psm_options):
    """DID on a propensity-matched sample: match on pre-period covariates, compare the change.

    ``delta`` (n,) is each unit's post minus pre outcome; the ATT of the change is estimated by
    :func:`matching.psm` (the differencing removes fixed unit-level differences that matching on
    observables leaves).
    """
    from promo_opt.observational.matching import psm

    eff, sample = psm(np.asarray(delta, dtype=np.float64), arm, e, k, estimand="att", **psm_options)
    eff.method = "psm_did"
    return eff, sample
