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
    return y[on].astype(int), (p[on, k] - p[on, 0]), (arm[on] == k).astype(int)


def arm_metrics(p: np.ndarray, arm: np.ndarray, y: np.ndarray, arm_names: list[str], k: float = 0.3) -> dict[str, dict]:
    """Per promotion arm: ``{arm: {qini, auuc, uplift_at_k, k, n_arm, n_control}}``."""
    skm = _sk()
    out = {}
    for j in range(1, p.shape[1]):
        yt, u, t = _pair(p, arm, y, j)
        if t.sum() == 0 or t.sum() == len(t) or yt.min() == yt.max():
            out[arm_names[j]] = {"qini": float("nan"), "auuc": float("nan"), "uplift_at_k": float("nan"), "k": k,
                                 "n_arm": int(t.sum()), "n_control": int(len(t) - t.sum())}
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, q = skm.qini_curve(yt, u, t)
            xp, qp = skm.perfect_qini_curve(yt, t)
        out[arm_names[j]] = {"fraction": grid.tolist(),
                             "qini": np.interp(grid, x / x[-1], q).tolist(),
                             "perfect": np.interp(grid, xp / xp[-1], qp).tolist()}
    return out
