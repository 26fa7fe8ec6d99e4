"""Covariate balance: standardized mean differences and variance ratios, before and after.

``SMD = (mean_arm - mean_control) / sqrt((var_arm + var_control) / 2)`` with the denominator
from the unweighted (before) sample in both columns, so the two are comparable; weighted means
and variances after weighting or matching. ``|SMD| < 0.1`` is the usual threshold of balance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _wmean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = w / w.sum()
    m = w @ x
    return m, w @ (x - m) ** 2


def balance_table(B: pd.DataFrame, treated: np.ndarray, control: np.ndarray,
                  w_treated: np.ndarray | None = None, w_control: np.ndarray | None = None) -> pd.DataFrame:
    """One row per covariate of ``B`` (numeric frame, e.g. :func:`design.balance_frame`).

    ``treated``/``control``: boolean row masks of the two groups; ``w_*``: weights of those rows
    after adjustment (same length as the mask's True count), or None for before only.
    """
    X = B.to_numpy(dtype=np.float64)
    xt, xc = X[treated], X[control]
    mt, vt = xt.mean(0), xt.var(0)
    mc, vc = xc.mean(0), xc.var(0)
    sd = np.sqrt((vt + vc) / 2)
    sd = np.where(sd > 0, sd, 1.0)
    out = pd.DataFrame({"covariate": B.columns, "mean_arm": mt, "mean_control": mc, "smd_before": (mt - mc) / sd,
                        "variance_ratio_before": np.divide(vt, vc, out=np.full_like(vt, np.nan), where=vc > 0)})
    if w_treated is not None and w_control is not None:
        amt, avt = _wmean_var(xt, np.asarray(w_treated, dtype=np.float64))
        amc, avc = _wmean_var(xc, np.asarray(w_control, dtype=np.float64))
        out["mean_arm_after"], out["mean_control_after"] = amt, amc
        out["smd_after"] = (amt - amc) / sd
        out["variance_ratio_after"] = np.divide(avt, avc, out=np.full_like(avt, np.nan), where=avc > 0)
    return out
