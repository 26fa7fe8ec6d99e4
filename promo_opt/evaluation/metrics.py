"""Uplift ranking metrics per arm: Qini curve, Qini coefficient, AUUC, uplift@k.

Thin wrappers over scikit-uplift (``sklift.metrics``), applied to each promotion arm k against
the control on the rows that received k or the control, ranking users by the predicted uplift
``p[:, k] - p[:, 0]``. ``p`` is an (n_users, n_arms) probability matrix, control at column 0.

- ``qini``: sklift's ``qini_auc_score``: the area between the Qini curve and the random
  line, divided by that of the perfect ranking (1 = perfect, 0 = random, < 0 = worse);
- ``auuc``: sklift's ``uplift_auc_score``: area under the uplift curve (in outcome units);
- ``uplift_at_k``: treated minus control outcome rate among the top ``k`` share of users by
  predicted uplift (sklift's ``uplift_at_k``, strategy "overall").

These are computed on observed outcomes, so they are causal only on randomized rows.

scikit-uplift takes binary outcomes only; for count and amount outcomes (``data.outcome_type``)
the same curves are computed here from their definitions (:func:`_qini_points`): the Qini curve
at the top m users is ``Y_t(m) - Y_c(m) N_t(m) / N_c(m)`` (outcome sums and counts of the
treated and control rows among them), the perfect ranking puts treated rows by descending and
control rows by ascending outcome, and AUUC is the mean of the uplift curve
``(Y_t/N_t - Y_c/N_c) (N_t + N_c)`` over the ranking.
"""

from __future__ import annotations

import warnings

import numpy as np


def _sk():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sklift.metrics as skm
    return skm


def _pair(p: np.ndarray, arm: np.ndarray, y: np.ndarray, k: int):
    on = (arm == 0) | (arm == k)
    yk = y[on].astype(int) if _binary(y) else y[on].astype(np.float64)
    return yk, (p[on, k] - p[on, 0]), (arm[on] == k).astype(int)


def _binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all())


def _qini_points(y: np.ndarray, score: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, qini(m), uplift(m)) for m = 0..n users taken by descending ``score``."""
    order = np.argsort(-score, kind="stable")
    y, t = y[order].astype(np.float64), t[order]
    nt, nc = np.cumsum(t), np.cumsum(1 - t)
    yt, yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = yt - np.where(nc > 0, yc * nt / nc, 0.0)
        up = (np.where(nt > 0, yt / nt, 0.0) - np.where(nc > 0, yc / nc, 0.0)) * (nt + nc)
    m = np.arange(len(y) + 1)
    return m, np.r_[0.0, q], np.r_[0.0, up]


def _continuous_metrics(y: np.ndarray, u: np.ndarray, t: np.ndarray, k: float) -> dict[str, float]:
    m, q, up = _qini_points(y, u, t)
    _, qp, _ = _qini_points(y, y * (2 * t - 1), t)
    rnd = np.linspace(0, q[-1], len(q))
    denom = np.trapezoid(qp - rnd, m)
    top = np.argsort(-u, kind="stable")[: max(1, int(round(k * len(u))))]
    tt, tc = top[t[top] == 1], top[t[top] == 0]
    at_k = float(y[tt].mean() - y[tc].mean()) if len(tt) and len(tc) else float("nan")
    return {"qini": float(np.trapezoid(q - rnd, m) / denom) if denom > 0 else float("nan"),
            "auuc": float(np.trapezoid(up, m) / (len(u) ** 2)), "uplift_at_k": at_k}


def arm_metrics(p: np.ndarray, arm: np.ndarray, y: np.ndarray, arm_names: list[str], k: float = 0.3) -> dict[str, dict]:
    """Per promotion arm: ``{arm: {qini, auuc, uplift_at_k, k, n_arm, n_control}}``."""
    skm = _sk()
    binary = _binary(y)
    out = {}
    for j in range(1, p.shape[1]):
        yt, u, t = _pair(p, arm, y, j)
        if t.sum() == 0 or t.sum() == len(t) or yt.min() == yt.max():
            out[arm_names[j]] = {"qini": float("nan"), "auuc": float("nan"), "uplift_at_k": float("nan"), "k": k,
                                 "n_arm": int(t.sum()), "n_control": int(len(t) - t.sum())}
            continue
        if not binary:
            out[arm_names[j]] = {**_continuous_metrics(yt, u, t, k), "k": k, "n_arm": int(t.sum()),
                                 "n_control": int(len(t) - t.sum())}
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[arm_names[j]] = {
                "qini": float(skm.qini_auc_score(yt, u, t)),
                "auuc": float(skm.uplift_auc_score(yt, u, t)),
                "uplift_at_k": float(skm.uplift_at_k(yt, u, t, strategy="overall", k=k)),
                "k": k, "n_arm": int(t.sum()), "n_control": int(len(t) - t.sum()),
            }
    return out


def mean_qini(metrics: dict[str, dict]) -> float:
    vals = [m["qini"] for m in metrics.values() if np.isfinite(m["qini"])]
    return float(np.mean(vals)) if vals else float("nan")


def qini_curves(p: np.ndarray, arm: np.ndarray, y: np.ndarray, arm_names: list[str], n_points: int = 101) -> dict[str, dict]:
    """Per promotion arm, the Qini curve on a grid of ``n_points`` shares of the ranked users.

    ``{arm: {"fraction": [...], "qini": [...], "perfect": [...]}}``; ``qini`` is sklift's curve
    (incremental conversions among the top users, in the arm's group size) interpolated on the
    grid; the random ranking is the straight line from 0 to the last point.
    """
    skm = _sk()
    grid = np.linspace(0, 1, n_points)
    out = {}
    for j in range(1, p.shape[1]):
        yt, u, t = _pair(p, arm, y, j)
        if t.sum() == 0 or t.sum() == len(t):
            continue
        if _binary(y):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x, q = skm.qini_curve(yt, u, t)
                xp, qp = skm.perfect_qini_curve(yt, t)
        else:
            x, q, _ = _qini_points(yt, u, t)
            xp, qp, _ = _qini_points(yt, yt * (2 * t - 1), t)
        out[arm_names[j]] = {"fraction": grid.tolist(),
                             "qini": np.interp(grid, x / x[-1], q).tolist(),
                             "perfect": np.interp(grid, xp / xp[-1], qp).tolist()}
    return out
