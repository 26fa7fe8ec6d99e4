"""Propensity score matching (k neighbours, caliper, with or without replacement, exact columns).

Arm ``k`` is matched with the control on the logit of the pairwise score
``s = e_k / (e_k + e_0)`` (the propensity of the binary comparison; with two arms it is ``e_1``).
The caliper is in standard deviations of that logit (Austin's 0.2 by default); units without a
match inside it are dropped and counted. ``exact`` codes restrict matches to equal codes.

Standard errors are Abadie & Imbens' (2006) for matching estimators (as in Abadie, Drukker,
Herr and Imbens 2004), generalized to units with fewer than ``M`` matches: with ``w_j`` the total
weight unit ``j`` receives as a match and ``w2_j`` the sum of its squared weights, and
``sigma2_j`` the conditional variance estimated from ``j``'s nearest same-arm neighbour,

    ATT: V = 1/N1^2 [ sum_treated (y_i - yhat0_i - tau)^2 + sum_controls (w_j^2 - w2_j) sigma2_j ]
    ATE: V = 1/N^2  [ sum_i (yhat1_i - yhat0_i - tau)^2 + sum_i (2 w_i + w_i^2 - w2_i) sigma2_i ]

They ignore that the score is estimated (Abadie & Imbens 2016), which for the ATT is usually
conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from promo_opt.errors import DataError
from promo_opt.observational.result import ArmEffect
from promo_opt.observational.weighting import overlap_rows


def pair_logit(e: np.ndarray, k: int) -> np.ndarray:
    s = np.clip(e[:, k] / np.maximum(e[:, k] + e[:, 0], 1e-12), 1e-9, 1 - 1e-9)
    return np.log(s / (1 - s))


def nearest(query: np.ndarray, pool: np.ndarray, M: int, caliper: float, replace: bool,
            q_codes: np.ndarray, p_codes: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """For every query value, up to ``M`` indices into ``pool`` within ``caliper`` (same code)."""
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(query)
    for code in np.unique(q_codes):
        qi, pi = np.flatnonzero(q_codes == code), np.flatnonzero(p_codes == code)
        if len(pi) == 0:
            continue
        if replace:
            nn = NearestNeighbors(n_neighbors=min(M, len(pi))).fit(pool[pi, None])
            dist, idx = nn.kneighbors(query[qi, None])
            for row, d, j in zip(qi, dist, idx):
                out[row] = pi[j[d <= caliper]]
            continue
        # greedy without replacement, in random order: nearest unused pool unit, M rounds
        order = np.argsort(pool[pi], kind="stable")
        sorted_vals, sorted_idx = pool[pi][order], pi[order]
        used = np.zeros(len(pi), dtype=bool)
        picks = {row: [] for row in qi}
        rng = np.random.default_rng(seed)
        for _ in range(M):
            for row in rng.permutation(qi):
                v = query[row]
                pos = int(np.searchsorted(sorted_vals, v))
                lo, hi, best = pos - 1, pos, -1
                while lo >= 0 and used[lo]:
                    lo -= 1
                while hi < len(sorted_vals) and used[hi]:
                    hi += 1
                cands = [p for p in (lo, hi) if 0 <= p < len(sorted_vals)]
                if cands:
                    best = min(cands, key=lambda p: abs(sorted_vals[p] - v))
                if best >= 0 and abs(sorted_vals[best] - v) <= caliper:
                    used[best] = True
                    picks[row].append(sorted_idx[best])
        for row in qi:
            out[row] = np.asarray(picks[row], dtype=np.int64)
    return out


def _own_variance(L: np.ndarray, y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """sigma2_i from the nearest same-group neighbour on the score: (y_i - y_j)^2 / 2."""
    s2 = np.zeros(len(y))
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        if len(idx) < 2:
            continue
        _, nb = NearestNeighbors(n_neighbors=2).fit(L[idx, None]).kneighbors(L[idx, None])
        other = np.where(nb[:, 0] == np.arange(len(idx)), nb[:, 1], nb[:, 0])
        s2[idx] = (y[idx] - y[idx[other]]) ** 2 / 2.0
    return s2


@dataclass
class MatchedSample:
    """Rows (indices into the full data) and the weights that make the matched comparison."""

    rows: np.ndarray  # (m,) row indices of arm k and control used
    weights: np.ndarray  # (m,) weight of each row in its group's mean after matching
    treated: np.ndarray  # (m,) bool


def _weights(matches: list[np.ndarray], n_pool: int) -> tuple[np.ndarray, np.ndarray]:
    w, w2 = np.zeros(n_pool), np.zeros(n_pool)
    for m in matches:
        if len(m):
            np.add.at(w, m, 1.0 / len(m))
            np.add.at(w2, m, 1.0 / len(m) ** 2)
    return w, w2


def _match_side(L, yy, codes, src, dst, M, cal, replace, seed, no_overlap):
    """Match each ``src`` row to up to ``M`` ``dst`` rows on the logit ``L``: which ``src`` rows found a
    match, the mean outcome of each one's matches, and every ``dst`` row's match weights (w, w^2).
    ``no_overlap(k)``: the error message when fewer than 2 ``src`` rows (``k``) found a match."""
    matches = nearest(L[src], L[dst], M, cal, replace, codes[src], codes[dst], seed)
    has = np.array([len(m) > 0 for m in matches])
    if has.sum() < 2:
        raise DataError(no_overlap(int(has.sum())))
    y_matched = np.array([yy[dst[m]].mean() if len(m) else np.nan for m in matches])
    w, w2 = _weights(matches, len(dst))  # rows without a match add nothing
    return has, y_matched, w, w2


def psm(y: np.ndarray, arm: np.ndarray, e: np.ndarray, k: int, estimand: str = "att", caliper: float | None = 0.2,
        neighbors: int = 1, replace: bool = True, exact: np.ndarray | None = None, name: str = "arm",
        seed: int = 0) -> tuple[ArmEffect, MatchedSample]:
    """Matching estimate of arm ``k`` vs control; returns the effect and the matched sample."""
    if estimand not in ("ate", "att"):
        raise ValueError(f"estimand must be 'ate' or 'att', got {estimand!r}")
    overlap_rows(e, arm, k, 0.0, name, estimand=estimand)  # raises when the groups' propensities barely overlap
    rows = np.flatnonzero((arm == k) | (arm == 0))
    L, yy, tr = pair_logit(e[rows], k), y[rows].astype(np.float64), arm[rows] == k
    codes = np.zeros(len(rows), dtype=np.int64) if exact is None else exact[rows]
    cal = np.inf if caliper is None else caliper * float(L.std())
    ti, ci = np.flatnonzero(tr), np.flatnonzero(~tr)
    M = neighbors
    sigma2 = _own_variance(L, yy, tr.astype(np.int64) * (codes.max() + 1) + codes)
    has_t, y0_t, wc, w2c = _match_side(  # controls for each treated
        L, yy, codes, ti, ci, M, cal, replace, seed,
        lambda k: f"no overlap between arm '{name}' and the control: {k} of {len(ti)} '{name}' rows have a control "
                  f"match within the caliper ({caliper} SD of the logit propensity)")
    details = {"unmatched_arm_rows": int((~has_t).sum()), "caliper_logit": float(cal), "neighbors": M,
               "replace": replace, "distinct_controls_used": int((wc > 0).sum())}
    if estimand == "att":
        d = yy[ti][has_t] - y0_t[has_t]
        tau, n1 = float(d.mean()), int(has_t.sum())
        var = (((d - tau) ** 2).sum() + ((wc**2 - w2c) * sigma2[ci]).sum()) / n1**2
        sample = MatchedSample(rows[np.r_[ti[has_t], ci[wc > 0]]], np.r_[np.ones(n1), wc[wc > 0]],
                               np.r_[np.ones(n1, bool), np.zeros(int((wc > 0).sum()), bool)])
        eff = ArmEffect(name, tau, float(np.sqrt(var)), n1, int((wc > 0).sum()), "psm", "att", details)
        return eff, sample
    has_c, y1_c, wt, w2t = _match_side(  # treated for each control
        L, yy, codes, ci, ti, M, cal, replace, seed + 1,
        lambda k: f"no overlap between arm '{name}' and the control: {k} of {len(ci)} control rows have a '{name}' "
                  f"match within the caliper")
    d = np.r_[yy[ti][has_t] - y0_t[has_t], y1_c[has_c] - yy[ci][has_c]]
    tau, n = float(d.mean()), len(d)
    # every row's own weight: 1 if it has matches (it is in the sample) plus its weight as a match
    w_all, w2_all = np.r_[wt, wc], np.r_[w2t, w2c]
    s2_all = np.r_[sigma2[ti], sigma2[ci]]
    var = (((d - tau) ** 2).sum() + ((2 * w_all + w_all**2 - w2_all) * s2_all).sum()) / n**2
    own = np.r_[has_t, has_c].astype(float)
    weight = own + w_all
    used = weight > 0
    details["unmatched_control_rows"] = int((~has_c).sum())
    sample = MatchedSample(rows[np.r_[ti, ci]][used], weight[used], np.r_[np.ones(len(ti), bool), np.zeros(len(ci), bool)][used])
    return ArmEffect(name, tau, float(np.sqrt(var)), int(has_t.sum()), int(has_c.sum()), "psm", "ate", details), sample
