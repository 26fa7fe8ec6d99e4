"""Naive difference, inverse propensity weighting and augmented IPW (doubly robust), ATE and ATT.

Shapes: ``y`` (n,) outcome (binary or numeric), ``arm`` (n,) arm index (0 = control),
``e`` (n, K) propensities, ``mu`` (n, K) outcome predictions per arm. Each function compares one
arm ``k`` with the control and returns an :class:`ArmEffect` whose standard error comes from the
estimator's influence function (``sd(psi) / sqrt(n)``; the propensity is treated as known, which
for IPW is conservative).

- IPW is the stabilized (Hajek) form: weights normalized to sum to one within each arm.
  ATE: ``mean_w(y | arm k, w = 1/e_k) - mean_w(y | control, w = 1/e_0)``.
  ATT: ``mean(y | arm k) - mean_w(y | control, w = e_k / e_0)``.
- AIPW, ATE: ``psi = mu_k - mu_0 + 1[A=k](y - mu_k)/e_k - 1[A=0](y - mu_0)/e_0``;
  ATT: ``psi = (1[A=k](y - mu_0) - 1[A=0] e_k/e_0 (y - mu_0)) / P(A=k)``.
- Trimming: rows with ``e_k`` or ``e_0`` below ``trim`` are dropped (Crump-style; the estimand
  becomes the effect on the rows with overlap) and counted (``trimmed_arm_rows``,
  ``trimmed_control_rows``). When almost nothing is left the data have no overlap and a ``DataError``
  says so instead of returning a number -- for the ATT only when the *treated* lack overlap: controls
  far from every treated user carry ~zero weight and are simply dropped, however many they are.
"""

from __future__ import annotations

import numpy as np

from promo_opt.errors import DataError
from promo_opt.observational.result import ArmEffect

MAX_TRIMMED = 0.9  # more than this share of an arm's rows trimmed: no overlap


def naive(y: np.ndarray, arm: np.ndarray, k: int, name: str = "arm") -> ArmEffect:
    """Difference in means with the Welch standard error."""
    t, c = y[arm == k], y[arm == 0]
    if len(t) < 2 or len(c) < 2:
        raise DataError(f"arm '{name}' or the control has fewer than 2 rows; a difference in means needs both")
    se = float(np.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c)))
    return ArmEffect(name, float(t.mean() - c.mean()), se, len(t), len(c), "naive", "ate")


def overlap_rows(e: np.ndarray, arm: np.ndarray, k: int, trim: float, name: str = "arm",
                 control: str = "control", estimand: str = "ate") -> np.ndarray:
    """(n,) rows kept; raises when the arms do not overlap where the estimand needs it.

    Both estimands keep the rows with ``e_k >= trim`` and ``e_0 >= trim``. ATE: both groups must keep
    most of their rows inside the common support. ATT: overlap is needed only where the treated are, so
    only the treated can make it refuse (most treated trimmed, or above every control's ``e_k``); the
    controls far from every treated user (``e_k < trim``: weight ``e_k / e_0`` ~ 0) are dropped and
    counted, however many they are -- a large non-experimental control pool is not a reason to refuse."""
    t, c = arm == k, arm == 0
    if estimand == "att":
        return _att_rows(e, t, c, k, trim, name, control)
    keep = (e[:, k] >= trim) & (e[:, 0] >= trim)
    # min-max common support of e_k between the two groups (a regularized model never reaches 0 or 1)
    lo = max(e[t, k].min(), e[c, k].min()) if t.any() and c.any() else 1.0
    hi = min(e[t, k].max(), e[c, k].max()) if t.any() and c.any() else 0.0
    inside = (e[:, k] >= lo) & (e[:, k] <= hi)
    for rows, label in ((t, name), (c, control)):
        lost = 1.0 - keep[rows].mean() if rows.any() else 1.0
        outside = 1.0 - inside[rows].mean() if rows.any() else 1.0
        if keep[rows].sum() < 2 or lost > MAX_TRIMMED or outside > MAX_TRIMMED:
            why = (f"{lost:.0%} of the '{label}' rows have a propensity below {trim:g} (observational.trim)"
                   if lost > MAX_TRIMMED or keep[rows].sum() < 2 else
                   f"{outside:.0%} of the '{label}' rows have a propensity of '{name}' outside the range the other "
                   f"group covers ({lo:.3g} to {hi:.3g})")
            _no_overlap(name, control, why)
    return keep


def _no_overlap(name: str, control: str, why: str):
    raise DataError(
        f"no overlap between arm '{name}' and control '{control}': {why}, so the features almost "
        "perfectly predict who was treated and the effect cannot be estimated from these data; "
        "restrict the population to comparable users, drop the features that separate the arms, "
        "or run a randomized test")


def _att_rows(e, t, c, k, trim, name, control) -> np.ndarray:
    """The rows the ATE rule keeps (both propensities >= trim), but only the treated can make it refuse."""
    if not t.any() or not c.any():
        _no_overlap(name, control, f"arm '{name}' or the control has no rows")
    keep = (e[:, k] >= trim) & (e[:, 0] >= trim)
    keep_t, keep_c = t & keep, c & keep
    lost = 1.0 - keep_t[t].mean()
    if keep_t.sum() < 2 or lost > MAX_TRIMMED:
        _no_overlap(name, control, f"{lost:.0%} of the '{name}' rows have a propensity of '{name}' or '{control}' "
                                   f"below {trim:g} (observational.trim): no comparable controls")
    hi = e[keep_c, k].max() if keep_c.sum() >= 2 else -1.0
    outside = (e[keep_t, k] > hi).mean()
    if keep_c.sum() < 2 or outside > MAX_TRIMMED:
        _no_overlap(name, control, f"{outside:.0%} of the '{name}' rows have a propensity of '{name}' above every "
                                   f"kept '{control}' row's ({hi:.3g})")
    return ~(t | c) | keep_t | keep_c


def _trimmed(keep: np.ndarray, arm: np.ndarray, k: int) -> dict:
    return {"trimmed_rows": int((~keep).sum()), "trimmed_arm_rows": int((~keep & (arm == k)).sum()),
            "trimmed_control_rows": int((~keep & (arm == 0)).sum())}


def ipw(y: np.ndarray, arm: np.ndarray, e: np.ndarray, k: int, estimand: str = "ate", trim: float = 0.01,
        name: str = "arm", control: str = "control") -> ArmEffect:
    keep = overlap_rows(e, arm, k, trim, name, control, estimand)
    trimmed = _trimmed(keep, arm, k)
    y, arm, e = y[keep], arm[keep], e[keep]
    n = len(y)
    t, c = (arm == k).astype(float), (arm == 0).astype(float)
    if estimand == "ate":
        wt, wc = t / e[:, k], c / e[:, 0]
    elif estimand == "att":
        wt, wc = t, c * e[:, k] / e[:, 0]
    else:
        raise ValueError(f"estimand must be 'ate' or 'att', got {estimand!r}")
    mt, mc = (wt * y).sum() / wt.sum(), (wc * y).sum() / wc.sum()
    psi = wt * (y - mt) / wt.mean() - wc * (y - mc) / wc.mean()
    ess = [float(w.sum() ** 2 / (w**2).sum()) for w in (wt, wc)]
    return ArmEffect(name, float(mt - mc), float(psi.std(ddof=1) / np.sqrt(n)), int(t.sum()), int(c.sum()),
                     "ipw", estimand, {**trimmed, "effective_n_arm": ess[0], "effective_n_control": ess[1]})


def aipw(y: np.ndarray, arm: np.ndarray, e: np.ndarray, mu: np.ndarray, k: int, estimand: str = "ate",
         trim: float = 0.01, name: str = "arm", control: str = "control") -> ArmEffect:
    keep = overlap_rows(e, arm, k, trim, name, control, estimand)
    trimmed = _trimmed(keep, arm, k)
    y, arm, e, mu = y[keep], arm[keep], e[keep], mu[keep]
    n = len(y)
    t, c = (arm == k).astype(float), (arm == 0).astype(float)
    if estimand == "ate":
        psi = mu[:, k] - mu[:, 0] + t * (y - mu[:, k]) / e[:, k] - c * (y - mu[:, 0]) / e[:, 0]
    elif estimand == "att":
        psi = (t * (y - mu[:, 0]) - c * e[:, k] / e[:, 0] * (y - mu[:, 0])) / t.mean()
    else:
        raise ValueError(f"estimand must be 'ate' or 'att', got {estimand!r}")
    return ArmEffect(name, float(psi.mean()), float(psi.std(ddof=1) / np.sqrt(n)), int(t.sum()), int(c.sum()),
                     "aipw", estimand, trimmed)
