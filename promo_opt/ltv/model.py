"""The system of regularized linear regressions of the long-term model, fitted from sufficient statistics.

Every equation (each surrogate and the outcome at week t) draws its regressors from one shared
design ``Z`` (the ``regressors`` names, in this order)::

    1, v[t-l] for l = 1..L and every variable v, arm=a[t-l] for l = 0..L and every promotion arm a,
    the controls, v[t] for every variable (used only as a same-period parent)

An equation's structure (which columns enter) is data: :func:`equation_columns` reads it from
the ``ltv:`` config (``equations.<var>.lags_of``, ``same_period``). Only the Gram matrix
``Z'Z`` is needed to fit, so the fit streams over customer chunks; the bootstrap by customer
uses the same Gram matrices, each customer's weighted by a Poisson(1) count per replicate.

Ridge: ``(Z_R'Z_R + alpha * diag(centered sum of squares of each non-intercept column)) beta = Z_R'y``,
so the penalty does not depend on the units of a column and the intercept is not shrunk.
Rows used: a customer's weeks from its (L+1)-th on (the first L weeks supply the lags).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.errors import DataError
from promo_opt.ltv.panel import Panel
from promo_opt.ltv.settings import LtvConfig

log = logging.getLogger(__name__)

_CHUNK_FLOATS = 2e7  # floats per chunk (~160 MB): rows x regressors^2 with a bootstrap, rows x regressors without


@dataclass(frozen=True)
class Design:
    regressors: list[str]  # the columns of Z
    variables: list[str]
    promo_arms: list[str]  # the non-control arms
    control_names: list[str]
    lags: int
    first_row: int  # a customer's first week fitted (0-based): after its lags (and level weeks)

    @property
    def q(self) -> int:
        return len(self.regressors)

    def lag_col(self, v: int, lag: int) -> int:
        return 1 + (lag - 1) * len(self.variables) + v

    def arm_col(self, k: int, lag: int) -> int:  # k indexes promo_arms
        return 1 + self.lags * len(self.variables) + lag * len(self.promo_arms) + k

    def control_col(self, c: int) -> int:
        return 1 + self.lags * len(self.variables) + (self.lags + 1) * len(self.promo_arms) + c

    def current_col(self, v: int) -> int:
        return self.q - len(self.variables) + v


def make_design(ltv: LtvConfig, arm_names: list[str], control_names: list[str]) -> Design:
    """The shared design of every equation; ``arm_names`` control first, ``control_names`` as encoded."""
    V, A, L = ltv.variables, arm_names[1:], ltv.lags
    names = ["intercept"]
    names += [f"{v}[t-{lag}]" for lag in range(1, L + 1) for v in V]
    names += [f"arm={a}[t]" if lag == 0 else f"arm={a}[t-{lag}]" for lag in range(L + 1) for a in A]
    names += [f"control:{c}" for c in control_names]
    names += [f"{v}[t]" for v in V]
    return Design(regressors=names, variables=list(V), promo_arms=list(A), control_names=list(control_names), lags=L,
                  first_row=ltv.first_row)


def equation_columns(ltv: LtvConfig, design: Design) -> dict[str, np.ndarray]:
    """For every variable, the indices into Z of its regressors (the equation structure as data)."""
    V = design.variables
    out = {}
    for j, var in enumerate(V):
        spec = ltv.equations.get(var)
        lag_vars = V if spec is None or spec.lags_of is None else spec.lags_of
        cols = [0]
        cols += [design.lag_col(V.index(v), lag) for lag in range(1, design.lags + 1) for v in V if v in lag_vars]
        cols += [design.arm_col(k, lag) for lag in range(design.lags + 1) for k in range(len(design.promo_arms))]
        cols += [design.control_col(c) for c in range(len(design.control_names))]
        cols += [design.current_col(V.index(p)) for p in ltv.parents(var)]
        out[var] = np.array(sorted(cols), dtype=np.int64)
    return out


def _rows_design(panel: Panel, design: Design, rows: np.ndarray) -> np.ndarray:
    """Z for the given panel rows (each has its L previous weeks in the panel), shape (len(rows), q)."""
    L, m, K1 = design.lags, len(design.variables), len(design.promo_arms)
    Z = np.empty((len(rows), design.q))
    Z[:, 0] = 1.0
    for lag in range(1, L + 1):
        Z[:, 1 + (lag - 1) * m: 1 + lag * m] = panel.y[rows - lag]
    base = 1 + L * m
    for lag in range(L + 1):
        a = panel.arm[rows - lag]
        for k in range(K1):
            Z[:, base + lag * K1 + k] = a == k + 1
    c0 = base + (L + 1) * K1
    Z[:, c0: c0 + len(design.control_names)] = panel.controls[panel.customer[rows]]
    Z[:, design.q - m:] = panel.y[rows]
    return Z


@dataclass(frozen=True)
class Grams:
    G: np.ndarray  # (q, q) Z'Z over all rows
    G_boot: np.ndarray  # (B, q, q) with every customer's rows weighted by a Poisson(1) count
    n_rows: int  # rows used in the fit
    n_customers: int  # customers with at least one row used


def gram_matrices(panel: Panel, design: Design, boot: int, seed: int) -> Grams:
    """Z'Z and its bootstrap replicates, streaming over chunks of whole customers."""
    q = design.q
    starts = np.r_[0, np.flatnonzero(np.diff(panel.customer)) + 1]
    pos = np.arange(panel.n_rows) - np.repeat(starts, np.diff(np.r_[starts, panel.n_rows]))
    used = np.flatnonzero(pos >= design.first_row)
    if len(used) == 0:
        raise DataError(f"ltv panel: no customer has more than {design.first_row} weeks (ltv.lags, ltv.level_weeks); "
                        "the model needs those weeks plus at least one week to fit")
    G = np.zeros((q, q))
    G_boot = np.zeros((boot, q * q))
    cust = panel.customer[used]
    bounds = np.r_[0, np.flatnonzero(np.diff(cust)) + 1, len(used)]  # customer runs in `used`
    chunk_rows = max(int(_CHUNK_FLOATS / (q * q)) if boot else int(_CHUNK_FLOATS / q), 1)
    rng = np.random.default_rng([seed, 1313])
    i = 0
    n_runs = len(bounds) - 1
    while i < n_runs:
        # whole customers, about chunk_rows rows (at least one customer)
        j = max(int(np.searchsorted(bounds, bounds[i] + chunk_rows, side="right")) - 1, i + 1)
        j = min(j, n_runs)
        rows = used[bounds[i]: bounds[j]]
        Z = _rows_design(panel, design, rows)
        if boot:
            per_customer = _per_customer_grams(Z, bounds[i:j + 1] - bounds[i])  # (customers, q*q)
            G += per_customer.sum(axis=0).reshape(q, q)
            W = rng.poisson(1.0, size=(boot, j - i)).astype(np.float64)
            G_boot += W @ per_customer
        else:
            G += Z.T @ Z
        i = j
    return Grams(G=G, G_boot=G_boot.reshape(boot, q, q), n_rows=len(used), n_customers=n_runs)


def _per_customer_grams(Z: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``Z_i'Z_i`` of every customer run ``Z[bounds[i]:bounds[i+1]]``, flattened: ``(customers, q*q)``.

    Customers with the same number of rows are stacked and multiplied in one batched matmul.
    """
    q = Z.shape[1]
    lengths = np.diff(bounds)
    out = np.empty((len(lengths), q * q))
    for ell in np.unique(lengths):
        who = np.flatnonzero(lengths == ell)
        block = Z[bounds[who][:, None] + np.arange(ell)[None, :]]  # (c, ell, q)
        out[who] = np.matmul(block.transpose(0, 2, 1), block).reshape(len(who), q * q)
    return out


@dataclass(frozen=True)
class FittedSystem:
    """Coefficients of every equation; axis 0 is the replicate: 0 = the fit, 1..B = bootstrap.

    Shapes: ``const (R, m)``, ``lag (R, L, m, m)`` with ``lag[r, l-1, j, v]`` the weight of
    ``v[t-l]`` in the equation of ``j``, ``arm (R, L+1, m, K)`` with column 0 (control) all zeros,
    ``control (R, m, p)``, ``same (R, m, m)`` with ``same[r, j, v]`` the weight of ``v[t]``.
    """

    design: Design
    columns: dict[str, np.ndarray]  # regressors of each equation (indices into design.regressors)
    coef: dict[str, np.ndarray]  # (R, len(columns[var])) per equation
    const: np.ndarray
    lag: np.ndarray
    arm: np.ndarray
    control: np.ndarray
    same: np.ndarray
    r2: dict[str, float]
    n_rows: int
    n_customers: int
    alpha: float
    order: list[str]  # topological order of the same-period edges

    @property
    def n_boot(self) -> int:
        return self.const.shape[0] - 1

    def weights(self) -> pd.DataFrame:
        """One row per (equation, regressor): the fitted weight and its 95% bootstrap interval."""
        rows = []
        for var, cols in self.columns.items():
            c = self.coef[var]
            lo, hi = _interval(c[1:]) if self.n_boot else (np.full(len(cols), np.nan),) * 2
            for i, col in enumerate(cols):
                rows.append({"equation": var, "regressor": self.design.regressors[col], "weight": float(c[0, i]),
                             "ci_low": float(lo[i]), "ci_high": float(hi[i])})
        return pd.DataFrame(rows)

    def spectral_radius(self) -> float:
        """Largest |eigenvalue| of the companion matrix of the fitted lags (< 1: shocks die out)."""
        m, L = self.lag.shape[2], self.lag.shape[1]
        inv = np.linalg.inv(np.eye(m) - self.same[0])
        top = np.hstack([inv @ self.lag[0, lag] for lag in range(L)])
        comp = np.zeros((m * L, m * L))
        comp[:m] = top
        comp[m:, :-m] = np.eye(m * (L - 1))
        return float(np.max(np.abs(np.linalg.eigvals(comp))))


def _interval(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return np.quantile(x, 0.025, axis=axis), np.quantile(x, 0.975, axis=axis)


def solve_equations(G: np.ndarray, design: Design, columns: dict[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """Ridge coefficients of every equation from Gram matrices ``G (R, q, q)``: ``{var: (R, n_cols)}``."""
    out = {}
    n = G[:, 0, 0]
    centered = np.diagonal(G, axis1=1, axis2=2) - G[:, 0, :] ** 2 / n[:, None]  # (R, q)
    for j, var in enumerate(design.variables):
        cols = columns[var]
        t = design.current_col(j)
        A = G[:, cols[:, None], cols[None, :]]
        b = G[:, cols, t]
        pen = alpha * centered[:, cols]
        pen[:, cols == 0] = 0.0
        A = A + pen[:, :, None] * np.eye(len(cols))[None]
        try:
            out[var] = np.linalg.solve(A, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            raise DataError(f"ltv: the equation of '{var}' cannot be fitted: its regressors are collinear (a constant "
                            "control, an arm never given, or a variable that never changes); set ltv.alpha > 0 "
                            "or drop the column") from None
    return out


def fit_system(ltv: LtvConfig, panel: Panel, seed: int = 0, boot: int | None = None) -> FittedSystem:
    """Fit every equation on the panel, with ``boot`` (default ``ltv.boot``) bootstrap-by-customer replicates."""
    boot = ltv.boot if boot is None else boot
    design = make_design(ltv, panel.arm_names, panel.control_names)
    _check_identifiable(panel, design)
    grams = gram_matrices(panel, design, boot, seed)
    log.info("ltv: %d customer-weeks of %d customers, %d regressors, %d bootstrap replicates",
             grams.n_rows, grams.n_customers, design.q, boot)
    return fit_from_grams(ltv, design, grams)


def fit_from_grams(ltv: LtvConfig, design: Design, grams: Grams) -> FittedSystem:
    """The fitted system from the Gram matrices (local or summed over Spark partitions)."""
    columns = equation_columns(ltv, design)
    G = np.concatenate([grams.G[None], grams.G_boot], axis=0)
    coef = solve_equations(G, design, columns, ltv.alpha)
    R, m, L, K, p = G.shape[0], len(design.variables), design.lags, len(design.promo_arms) + 1, len(design.control_names)
    const, lag = np.zeros((R, m)), np.zeros((R, L, m, m))
    arm, control, same = np.zeros((R, L + 1, m, K)), np.zeros((R, m, p)), np.zeros((R, m, m))
    r2 = {}
    for j, var in enumerate(design.variables):
        cols, c = columns[var], coef[var]
        for i, col in enumerate(cols):
            if col == 0:
                const[:, j] = c[:, i]
            elif col < design.arm_col(0, 0):
                lag[:, (col - 1) // m, j, (col - 1) % m] = c[:, i]
            elif col < design.control_col(0):
                off = col - design.arm_col(0, 0)
                arm[:, off // (K - 1), j, off % (K - 1) + 1] = c[:, i]
            elif col < design.current_col(0):
                control[:, j, col - design.control_col(0)] = c[:, i]
            else:
                same[:, j, col - design.current_col(0)] = c[:, i]
        r2[var] = _r_squared(grams.G, cols, design.current_col(j), c[0])
    return FittedSystem(design=design, columns=columns, coef=coef, const=const, lag=lag, arm=arm, control=control,
                        same=same, r2=r2, n_rows=grams.n_rows, n_customers=grams.n_customers, alpha=ltv.alpha,
                        order=ltv.topological_order)


def _r_squared(G: np.ndarray, cols: np.ndarray, t: int, beta: np.ndarray) -> float:
    n = G[0, 0]
    tss = G[t, t] - G[0, t] ** 2 / n
    rss = G[t, t] - 2 * beta @ G[cols, t] + beta @ G[np.ix_(cols, cols)] @ beta
    return float(1 - rss / tss) if tss > 0 else float("nan")


def _check_identifiable(panel: Panel, design: Design) -> None:
    check_identifiable(np.bincount(panel.arm, minlength=len(design.promo_arms) + 1), np.ptp(panel.y, axis=0),
                       np.ptp(panel.controls, axis=0) if len(panel.controls) else np.zeros(len(design.control_names)),
                       design, [panel.arm_names[0], *design.promo_arms])


def check_identifiable(arm_counts: np.ndarray, y_range: np.ndarray, control_range: np.ndarray, design: Design,
                       arm_names: list[str]) -> None:
    """Refuse an arm never given, a constant variable or a constant control (from panel-wide summaries)."""
    never = [a for k, a in enumerate(arm_names) if arm_counts[k] == 0]
    if never:
        raise DataError(f"ltv panel: arm(s) {never} never appear in the treatment column; the model cannot learn "
                        "their effect (remove them from arms: or supply weeks where they were given)")
    for j, v in enumerate(design.variables):
        if y_range[j] == 0:
            raise DataError(f"ltv panel: column '{v}' is constant; a variable that never changes cannot be modelled")
    for c, name in enumerate(design.control_names):
        if control_range[c] == 0:
            raise DataError(f"ltv panel: control '{name}' is the same for every customer; drop it from ltv.controls")
