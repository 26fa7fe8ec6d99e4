"""The budget curve answered in O(log m) per budget: the frontier path sorted once and cumulated.

:meth:`FrontierPath.points` bins and partially sorts the path on every call, the right trade for
one curve. A service answering many what-if questions on the same candidates sorts the path once
and keeps cumulative sums; each budget is then a binary search. ``SortedFrontier.points`` returns
the same dict as ``FrontierPath.points`` (same greedy prefix, same stable order of ties), so it can
be handed to :func:`promo_opt.allocation.frontier.plan` as ``path=``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promo_opt.allocation.frontier import FrontierPath
from promo_opt.errors import InfeasibleError

_FIELDS = {"spend": "dc", "gain": "dg", "conversions": "dconv", "revenue": "da"}


@dataclass
class SortedFrontier:
    base: dict[str, float]  # totals with every user at its start arm
    start_counts: np.ndarray  # (K,)
    key: np.ndarray  # (m,) ascending: decreasing marginal gain per unit of spend
    cum: dict[str, np.ndarray]  # (m + 1,) cumulative spend, gain, conversions, revenue along the path
    to: np.ndarray  # (m,) arm each segment moves its user to (path order)
    frm: np.ndarray  # (m,) arm it moves the user from
    checkpoints: np.ndarray  # (m // step + 1, K) users moved per arm after every ``step`` segments
    step: int
    # spend per arm (when the path carries it): start (K,), per segment in path order (m,), and the
    # net spend moved per arm after every ``step`` segments (m // step + 1, K)
    start_spend: np.ndarray | None = None
    spend_to: np.ndarray | None = None
    spend_frm: np.ndarray | None = None
    spend_checkpoints: np.ndarray | None = None

    @classmethod
    def from_path(cls, path: FrontierPath, step: int = 1024) -> "SortedFrontier":
        order = np.argsort(path.key, kind="stable")
        K = path.start_counts.size
        cum = {f: np.concatenate([[0.0], np.cumsum(getattr(path, attr)[order])]) for f, attr in _FIELDS.items()}
        to, frm = path.to[order], path.frm[order]
        m = order.size
        n_chk = m // step + 1
        checkpoints = np.zeros((n_chk, K), dtype=np.int64)
        if n_chk > 1:
            whole = (n_chk - 1) * step  # moves per block of ``step`` segments, then cumulated
            blocks = np.repeat(np.arange(n_chk - 1), step)
            moves = np.zeros((n_chk - 1, K), dtype=np.int64)
            np.add.at(moves, (blocks, to[:whole]), 1)
            np.add.at(moves, (blocks, frm[:whole]), -1)
            checkpoints[1:] = np.cumsum(moves, axis=0)
        spend = {}
        if path.spend_to is not None:
            s_to, s_frm = path.spend_to[order], path.spend_frm[order]
            spend_chk = np.zeros((n_chk, K))
            if n_chk > 1:
                net = np.zeros((n_chk - 1, K))
                np.add.at(net, (blocks, to[:whole]), s_to[:whole])
                np.add.at(net, (blocks, frm[:whole]), -s_frm[:whole])
                spend_chk[1:] = np.cumsum(net, axis=0)
            spend = {"start_spend": np.asarray(path.start_spend, dtype=np.float64), "spend_to": s_to,
                     "spend_frm": s_frm, "spend_checkpoints": spend_chk}
        return cls(base=dict(path.base), start_counts=path.start_counts.astype(np.int64), key=path.key[order],
                   cum=cum, to=to, frm=frm, checkpoints=checkpoints, step=step, **spend)

    @property
    def max_useful_spend(self) -> float:
        return self.base["spend"] + float(self.cum["spend"][-1])

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.cum.values()) + self.key.nbytes + self.to.nbytes + self.frm.nbytes
                   + self.checkpoints.nbytes)

    def points(self, budgets: np.ndarray, spend_per_arm: bool = False) -> dict[str, np.ndarray]:
        """Totals of the greedy path at each budget: the longest prefix whose spend fits.

        ``spend_per_arm``: also ``spend_per_arm`` (len(budgets), K), when the path carries per-arm spend."""
        budgets = np.asarray(budgets, dtype=np.float64)
        m = self.key.size
        room = budgets - self.base["spend"]
        t = np.clip(np.searchsorted(self.cum["spend"], room, side="right") - 1, 0, m)  # segments taken
        out = {f: self.base[f] + self.cum[f][t] for f in _FIELDS}
        out["marginal"] = np.where(t < m, -self.key[np.minimum(t, m - 1)], 0.0) if m else np.zeros(len(t))
        K = self.start_counts.size
        counts = np.tile(self.start_counts, (len(t), 1))
        for i, ti in enumerate(t):
            c0 = (ti // self.step) * self.step
            counts[i] += (self.checkpoints[ti // self.step] + np.bincount(self.to[c0:ti], minlength=K)
                          - np.bincount(self.frm[c0:ti], minlength=K))
        out["counts"] = counts
        if spend_per_arm and self.spend_to is not None:  # the same prefix, weighted by each move's spend
            spend = np.tile(self.start_spend, (len(t), 1))
            for i, ti in enumerate(t):
                c0 = (ti // self.step) * self.step
                spend[i] += (self.spend_checkpoints[ti // self.step]
                             + np.bincount(self.to[c0:ti], weights=self.spend_to[c0:ti], minlength=K)
                             - np.bincount(self.frm[c0:ti], weights=self.spend_frm[c0:ti], minlength=K))
            out["spend_per_arm"] = spend
        return out

    def curve(self, budgets, arm_names: list[str], spend_per_arm: bool = False) -> dict[str, np.ndarray]:
        """``frontier.plan``'s columns without an ROI floor, as arrays (no DataFrame: a hot service path).

        budget (sorted), spend, incremental_conversions, incremental_revenue, objective, roi (NaN at
        zero spend), marginal_gain_per_unit, users_<arm>... . With an ROI floor use ``frontier.plan``,
        which re-solves the budgets whose path point breaks it.
        """
        budgets = np.sort(np.asarray(budgets, dtype=np.float64))
        if (budgets < 0).any():
            raise InfeasibleError(f"budgets must be >= 0; got {budgets[budgets < 0][:3].tolist()}")
        pts = self.points(budgets, spend_per_arm=spend_per_arm)
        with np.errstate(divide="ignore", invalid="ignore"):
            roi = np.where(pts["spend"] > 0, pts["revenue"] / pts["spend"], np.nan)
        out = {"budget": budgets, "spend": pts["spend"], "incremental_conversions": pts["conversions"],
               "incremental_revenue": pts["revenue"], "objective": pts["gain"], "roi": roi,
               "marginal_gain_per_unit": pts["marginal"]}
        for k, name in enumerate(arm_names):
            out[f"users_{name}"] = pts["counts"][:, k]
        if "spend_per_arm" in pts:
            for k, name in enumerate(arm_names):
                out[f"spend_{name}"] = pts["spend_per_arm"][:, k]
        return out
