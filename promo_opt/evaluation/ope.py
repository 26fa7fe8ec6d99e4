"""Off-policy evaluation of a targeting policy on randomized rows, with bootstrap intervals.

Given rows that received arm ``A`` with known probability ``e`` (the logged propensity, or the
observed arm shares of a randomized campaign), a policy ``pi`` (an arm per row, or a function
``policy(X) -> arm``) is valued three ways, for its total incremental conversions, incremental
revenue and spend over those users (ROI = revenue / spend):

* ``ips``   inverse propensity scoring: ``sum 1[A=pi]/e * y - 1[A=0]/e * y`` (unbiased, noisy);
* ``snips`` self-normalized IPS on the users the policy treats: ``n_t * (mean_w y | A=pi - mean_w y | A=0)``
  with weights ``1/e`` normalized within each group (slightly biased, often much less variable);
* ``dr``    doubly robust (AIPW, :func:`promo_opt.evaluation.offpolicy.dr_contributions`) with an
  outcome model: a trained model's predictions, else cross-fitted per-arm means of the rows themselves.

Users the policy leaves in control contribute exactly zero to every estimator. Intervals are
percentile intervals of a Poisson bootstrap (every row weighted by an independent Poisson(1)
count), computed for all estimators at once from weighted column sums: ``(B, n) @ (n, m)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from promo_opt.config import ArmConfig
from promo_opt.errors import DataError
from promo_opt.evaluation.offpolicy import dr_contributions, logged_propensity

ESTIMATORS = ("ips", "snips", "dr")
QUANTITIES = ("incremental_conversions", "incremental_revenue", "spend")

Policy = np.ndarray | Callable[[object], Sequence]


@dataclass(frozen=True)
class Interval:
    estimate: float
    ci_low: float
    ci_high: float

    def covers(self, value: float) -> bool:
        return bool(self.ci_low <= value <= self.ci_high)

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass
class PolicyEvaluation:
    """Estimates per estimator (``ips``, ``snips``, ``dr``) and quantity (the three totals and ``roi``)."""

    estimates: dict[str, dict[str, Interval]]
    n: int  # rows evaluated
    n_treated: int  # rows the policy gives a promotion
    users_per_arm: dict[str, int]  # the policy's arms
    logged_per_arm: dict[str, int]  # the arms the rows received
    propensity_source: str
    outcome_model: str
    n_boot: int
    level: float
    seed: int
    extra: dict = field(default_factory=dict)

    def __getitem__(self, estimator: str) -> dict[str, Interval]:
        return self.estimates[estimator]

    def as_dict(self) -> dict:
        d = {est: {q: iv.as_dict() for q, iv in qs.items()} for est, qs in self.estimates.items()}
        d.update({"n": self.n, "n_treated": self.n_treated, "users_per_arm": self.users_per_arm,
                  "logged_per_arm": self.logged_per_arm, "propensity_source": self.propensity_source,
                  "dr_outcome_model": self.outcome_model,
                  "bootstrap": {"replicates": self.n_boot, "level": self.level, "seed": self.seed,
                                "method": "Poisson bootstrap, percentile intervals"}})
        d.update(self.extra)
        return d


# --------------------------------------------------------------------------------------------
# bootstrap over weighted column sums
# --------------------------------------------------------------------------------------------
def poisson_bootstrap(columns: np.ndarray, statistic: Callable[[np.ndarray], dict[str, np.ndarray]],
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      chunk: int = 100) -> dict[str, Interval]:
    """Percentile intervals of ``statistic(S)`` where ``S`` (B, m) are Poisson-weighted sums of ``columns`` (n, m).

    ``statistic`` maps sums (any leading shape, last axis m) to named arrays; the point estimate
    is ``statistic`` of the unweighted sums. Non-finite replicates (e.g. an empty group) are dropped.
    """
    columns = np.asarray(columns, dtype=np.float64)
    n = columns.shape[0]
    point = statistic(columns.sum(axis=0, keepdims=True))
    rng = np.random.default_rng(seed)
    reps: dict[str, list[np.ndarray]] = {k: [] for k in point}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        w = rng.poisson(1.0, size=(b, n)).astype(np.float64)
        stats = statistic(w @ columns)
        for k in reps:
            reps[k].append(stats[k])
        done += b
    alpha = (1.0 - level) / 2.0
    out = {}
    for k, est in point.items():
        r = np.concatenate(reps[k])
        r = r[np.isfinite(r)]
        lo, hi = (np.quantile(r, [alpha, 1.0 - alpha]) if len(r) else (np.nan, np.nan))
        out[k] = Interval(float(est[0]), float(lo), float(hi))
    return out


# --------------------------------------------------------------------------------------------
# the estimators
# --------------------------------------------------------------------------------------------
def crossfit_arm_means(arm: np.ndarray, y: np.ndarray, value: np.ndarray, n_arms: int, folds: int = 5,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model-free outcome model for DR: per-arm conversion rate and mean order value of converted rows,
    each row predicted from the other folds only. Returns ``mu`` (n, K) and ``vhat`` (n,)."""
    n = len(y)
    fold = np.random.default_rng(seed).permutation(n) % folds
    conv = y == 1
    tot_y = np.zeros((folds, n_arms))
    tot_n = np.zeros((folds, n_arms))
    np.add.at(tot_y, (fold, arm), y)
    np.add.at(tot_n, (fold, arm), 1.0)
    out_y = tot_y.sum(axis=0)[None, :] - tot_y  # (folds, K): sums over the other folds
    out_n = tot_n.sum(axis=0)[None, :] - tot_n
    overall = y.mean() if n else 0.0
    rate = np.where(out_n > 0, out_y / np.maximum(out_n, 1.0), overall)
    v_sum = np.bincount(fold, weights=np.where(conv, value, 0.0), minlength=folds)
    v_n = np.bincount(fold, weights=conv.astype(float), minlength=folds)
    other_sum, other_n = v_sum.sum() - v_sum, v_n.sum() - v_n
    v_all = v_sum.sum() / v_n.sum() if v_n.sum() > 0 else 1.0
    vmean = np.where(other_n > 0, other_sum / np.maximum(other_n, 1.0), v_all)
    return rate[fold], vmean[fold]


def _arm_array(policy: Policy, X, n: int, arm_names: Sequence[str]) -> np.ndarray:
    if callable(policy):
        if X is None:
            raise DataError("a policy given as a function needs the rows' features (X) to be evaluated on")
        policy = policy(X)
    pol = np.asarray(policy)
    if pol.shape != (n,):
        raise DataError(f"the policy gives {pol.shape} arms for {n} rows; expected one arm per row")
    if pol.dtype.kind in "OUS":  # arm names
        index = {a: k for k, a in enumerate(arm_names)}
        unknown = sorted({str(a) for a in pol if a not in index})
        if unknown:
            raise DataError(f"the policy names arm(s) {unknown[:10]} that the config does not have; arms: {list(arm_names)}")
        return np.array([index[a] for a in pol], dtype=np.int64)
    if pol.dtype.kind not in "iu" or (len(pol) and (pol.min() < 0 or pol.max() >= len(arm_names))):
        raise DataError(f"the policy must give arm indices 0..{len(arm_names) - 1} or arm names; got {pol[:5].tolist()}")
    return pol.astype(np.int64)


def evaluate_policy(policy: Policy, arm: np.ndarray, converted: np.ndarray, value: np.ndarray | None,
                    arms: Sequence[ArmConfig], *, propensity: np.ndarray | None = None, X=None,
                    mu: np.ndarray | None = None, vhat: np.ndarray | None = None,
                    outcome_model: str | None = None, n_boot: int = 1000, level: float = 0.95,
                    seed: int = 0, folds: int = 5) -> PolicyEvaluation:
    """IPS, SNIPS and DR estimates of a policy's totals over randomized rows, with bootstrap intervals.

    ``arm`` (n,) logged arm index (``arms`` order, control first); ``converted`` (n,) 0/1;
    ``value`` (n,) realized order value (0 when not converted; None: a conversion is worth 1);
    ``propensity`` (n,) probability of the logged arm (None: the observed arm shares);
    ``policy`` (n,) arm indices or names, or ``policy(X)``; ``mu`` (n, K) and ``vhat`` (n,) the DR
    outcome model (None: cross-fitted per-arm means, ``folds`` folds).
    """
    names = [a.name for a in arms]
    K = len(arms)
    arm = np.asarray(arm, dtype=np.int64)
    y = np.asarray(converted, dtype=np.float64)
    n = len(y)
    if n == 0:
        raise DataError("no rows to evaluate the policy on")
    if arm.shape != (n,):
        raise DataError(f"{arm.shape} logged arms for {n} outcomes")
    value = np.ones(n) if value is None else np.asarray(value, dtype=np.float64)
    pi = _arm_array(policy, X, n, names)
    logged = np.bincount(arm, minlength=K)
    needed = sorted(set(np.unique(pi).tolist()) | {0})
    empty = [names[k] for k in needed if logged[k] == 0]
    if empty:
        raise DataError(f"arm(s) {empty} have no logged rows, so the policy's use of them cannot be evaluated "
                        f"(logged rows per arm: {dict(zip(names, logged.tolist()))})")
    if propensity is not None:
        propensity = np.asarray(propensity, dtype=np.float64)
        if propensity.shape != (n,) or not ((propensity > 0) & (propensity <= 1)).all():
            raise DataError("propensities must be one number in (0, 1] per row")
        source = "given column"
    else:
        source = "observed arm shares"
    e = logged_propensity(arm, K, propensity)
    if mu is None:
        mu, vhat = crossfit_arm_means(arm, y, value, K, folds=folds, seed=seed)
        outcome_model = outcome_model or f"cross-fitted per-arm means ({folds} folds)"
    else:
        mu = np.asarray(mu, dtype=np.float64)
        vhat = np.ones(n) if vhat is None else np.asarray(vhat, dtype=np.float64)
        if mu.shape != (n, K):
            raise DataError(f"the outcome model gives {mu.shape} probabilities; expected ({n}, {K})")
        outcome_model = outcome_model or "given"

    send = np.array([a.cost_per_send for a in arms])
    disc = np.array([a.discount for a in arms])
    per_conv = np.array([a.cost_per_conversion for a in arms])
    yv = y * value
    t = (pi != 0).astype(np.float64)
    w_pi = (arm == pi) / e * t
    w_0 = (arm == 0) / e * t
    cost = t * (send[pi] + y * (disc[pi] * value + per_conv[pi]))  # realized cost had the row got pi
    dr = dr_contributions(pi, arm, y, value, e, mu, vhat, arms)
    cols = np.column_stack([
        w_pi * y - w_0 * y, w_pi * yv - w_0 * yv, w_pi * cost,  # 0-2 IPS
        dr.conversions, dr.revenue, dr.spend,  # 3-5 DR
        t, w_pi, w_pi * y, w_0, w_0 * y, w_pi * yv, w_0 * yv, w_pi * cost,  # 6-13 SNIPS sums
    ])

    def statistic(S: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            nt, a1, b1, a0, b0, r1, r0, s1 = (S[:, j] for j in range(6, 14))
            out = {}
            for est, (c, r, s) in {"ips": (S[:, 0], S[:, 1], S[:, 2]), "dr": (S[:, 3], S[:, 4], S[:, 5]),
                                   "snips": (np.where(nt > 0, nt * (b1 / a1 - b0 / a0), 0.0),
                                             np.where(nt > 0, nt * (r1 / a1 - r0 / a0), 0.0),
                                             np.where(nt > 0, nt * s1 / a1, 0.0))}.items():
                out[f"{est}.incremental_conversions"] = c
                out[f"{est}.incremental_revenue"] = r
                out[f"{est}.spend"] = s
                out[f"{est}.roi"] = np.where(s > 0, r / s, np.nan)
        return out

    flat = poisson_bootstrap(cols, statistic, n_boot=n_boot, level=level, seed=seed)
    estimates = {est: {q: flat[f"{est}.{q}"] for q in QUANTITIES + ("roi",)} for est in ESTIMATORS}
    return PolicyEvaluation(estimates=estimates, n=n, n_treated=int(t.sum()),
                            users_per_arm=dict(zip(names, np.bincount(pi, minlength=K).tolist())),
                            logged_per_arm=dict(zip(names, logged.tolist())), propensity_source=source,
                            outcome_model=outcome_model, n_boot=n_boot, level=level, seed=seed)


# --------------------------------------------------------------------------------------------
# the campaign-level door: a targets table and holdout rows, as the CLI and service get them
# --------------------------------------------------------------------------------------------
def policy_from_targets(config, targets: pd.DataFrame, ids: np.ndarray, what: str = "targets") -> np.ndarray:
    """The arm index of each of ``ids`` in a targets table (``<data.id>``, ``arm``); every id must be there and
    every target must be one of ``ids`` (a target naming a user with no outcome cannot be evaluated)."""
    id_col = config.data.id
    missing = [c for c in (id_col, "arm") if c not in targets.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {missing}; expected '{id_col}' (data.id) and 'arm' "
                        f"(as written by 'promo-opt allocate'); present: {list(targets.columns)[:20]}")
    if targets[id_col].duplicated().any():
        raise DataError(f"{what}: column '{id_col}' repeats ids, e.g. "
                        f"{targets.loc[targets[id_col].duplicated(), id_col].head(3).tolist()}")
    arm_text = targets["arm"].astype("string")
    unknown = sorted(set(arm_text.dropna().unique()) - set(config.arm_names))
    if unknown or arm_text.isna().any():
        raise DataError(f"{what}: column 'arm' names arm(s) {unknown[:10] or ['<empty>']} that the config does not "
                        f"have; config arms: {config.arm_names}")
    key = targets[id_col].astype("string")
    wanted = pd.Index(pd.Series(ids).astype("string"))
    extra = pd.Index(key).difference(wanted)
    if len(extra):
        raise DataError(f"{what}: {len(extra):,} target user(s) are not in the outcome rows, e.g. "
                        f"{list(extra[:3])}; both files must cover the same users (column '{id_col}')")
    absent = wanted.difference(pd.Index(key))
    if len(absent):
        raise DataError(f"{what}: no target for {len(absent):,} user(s) of the outcome rows, e.g. {list(absent[:3])}")
    index = {a: k for k, a in enumerate(config.arm_names)}
    by_id = pd.Series(arm_text.map(index).to_numpy(dtype=np.int64), index=key.to_numpy())
    return by_id.loc[wanted].to_numpy(dtype=np.int64)


def expected_totals(config, targets: pd.DataFrame, rows: np.ndarray | None = None) -> dict[str, float] | None:
    """The targets table's own expectations (columns written by allocate), summed; None if absent."""
    cols = {"incremental_conversions": "incremental_conversions", "incremental_revenue": "incremental_revenue",
            "spend": "expected_cost"}
    if not all(c in targets.columns for c in cols.values()):
        return None
    t = targets if rows is None else targets[rows]
    out = {k: float(pd.to_numeric(t[c], errors="coerce").sum()) for k, c in cols.items()}
    out["roi"] = out["incremental_revenue"] / out["spend"] if out["spend"] > 0 else float("nan")
    return out


def evaluate_targets(config, targets: pd.DataFrame, holdout: pd.DataFrame, model=None, *,
                     holdout_path="holdout data", n_boot: int = 1000, seed: int | None = None) -> PolicyEvaluation:
    """Evaluate a targets table on randomized holdout rows of the same users (see module doc).

    ``holdout`` has the config's id, treatment, outcome and (when configured) value and propensity
    columns, plus the model's feature columns when a ``model`` (:class:`TrainedModel`) is given for DR.
    """
    from promo_opt.data import prepare_training

    features = list(model.features) if model is not None else []
    rows = prepare_training(config, holdout, features, what="holdout data", path=holdout_path, every_arm=False)
    pi = policy_from_targets(config, targets, rows.ids)
    value = rows.value if rows.value is not None else None
    mu = vhat = None
    label = None
    if model is not None:
        mu, vhat = model.predict(rows.X)
        label = f"trained model ({model.uplift.learner})"
    result = evaluate_policy(pi, rows.arm, rows.converted, value, config.ordered_arms, propensity=rows.propensity,
                             mu=mu, vhat=vhat, outcome_model=label, n_boot=n_boot,
                             seed=config.seed if seed is None else seed)
    ids = pd.Series(rows.ids).astype("string")
    on = targets[config.data.id].astype("string").isin(set(ids))
    exp = expected_totals(config, targets, on.to_numpy())
    if exp is not None:
        result.extra["expected"] = exp
    return result
