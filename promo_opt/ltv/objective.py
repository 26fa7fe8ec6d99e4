"""``objective: long_term_value``: each arm's incremental conversions valued over the long run.

The long-term multiplier of an arm is ``long_term / immediate`` of the outcome (from an
``ltv.json`` named by ``ltv.values``, or from fitting the ``ltv.panel`` model without bootstrap):
one incremental conversion in the week of the promotion comes with ``multiplier`` conversions'
worth of change over the horizon (below 1 when it only pulls bookings forward, above 1 when it
starts a habit). The allocation gain of user i and arm k is then
``incremental_revenue[i, k] * multiplier[i, k] - spend[i, k]``.

Without ``ltv.segment`` every user has the pooled multipliers (one per arm). With it, a user's
multipliers are those of its level of that column in the candidates (``segments`` of the ltv.json;
see :mod:`promo_opt.ltv.valuation` for how a level is valued); a level the ltv.json does not know
gets the pooled multipliers and is counted in the summary's ``long_term.segment.unseen``. Users
without the column (the training rows of the held-out checks) are valued by the pooled multipliers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.economics import Economics
from promo_opt.errors import ConfigError, DataError


@dataclass(frozen=True)
class LongTermMultipliers:
    """Multipliers in arm order (control first, 1): ``pooled (K,)`` and, with ``ltv.segment``, per level."""

    pooled: np.ndarray  # (K,)
    segment: str | None = None  # the column the levels are read from (ltv.segment)
    levels: dict[str, np.ndarray] = field(default_factory=dict)  # level -> (K,)

    def per_user(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(n, K)`` multipliers of users with levels ``labels`` (n,) (text, as ``segment_labels`` gives), and
        the ``(n,)`` mask of users whose level has no multipliers of its own (given the pooled ones)."""
        table = np.vstack([self.pooled, *self.levels.values()])
        row = pd.Index(list(self.levels)).get_indexer(np.asarray(labels, dtype=object)) + 1  # 0: pooled
        return table[row], row == 0


def _ratio(entry, where: str) -> float:
    """long_term / immediate of one ltv.json entry (``{immediate: {estimate}, long_term: {estimate}}``)."""
    try:
        imm = float(entry["immediate"]["estimate"])
        lt = float(entry["long_term"]["estimate"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where} needs immediate.estimate and long_term.estimate numbers") from None
    if not np.isfinite(imm) or not np.isfinite(lt) or imm <= 0:
        raise DataError(f"{where} has immediate {imm:g}: a long-term multiplier (long_term / immediate) needs a "
                        "positive immediate effect")
    return lt / imm


def multipliers_from_ltv(d: dict, arm_names: list[str], source: str = "ltv.json",
                         segment: str | None = None) -> LongTermMultipliers:
    """The multipliers in ``arm_names`` order (control first, set to 1) from an ltv.json mapping; with
    ``segment``, also those of every level of ``segments.<segment>``."""
    arms = d.get("arms") if isinstance(d, dict) else None
    if not isinstance(arms, dict):
        raise DataError(f"{source}: no 'arms' mapping; expected the ltv.json written by 'promo-opt ltv'")

    def row(entries: dict, where: str) -> np.ndarray:
        out = np.ones(len(arm_names))
        for k, a in enumerate(arm_names[1:], start=1):
            if not isinstance(entries, dict) or a not in entries:
                raise DataError(f"{source}: no long-term value for arm '{a}'{where} (it has "
                                f"{sorted(entries) if isinstance(entries, dict) else []}); re-run 'promo-opt ltv' "
                                "with this config's arms")
            out[k] = _ratio(entries[a], f"{source}: arm '{a}'{where}")
        return out

    pooled = row(arms, "")
    if segment is None:
        return LongTermMultipliers(pooled)
    segs = (d.get("segments") or {}).get(segment)
    if not isinstance(segs, dict) or not segs:
        raise DataError(f"{source}: no per-segment values for '{segment}' (ltv.segment); expected segments."
                        f"{segment} as written by 'promo-opt ltv' with ltv.segment: {segment} (it has "
                        f"{sorted(d.get('segments') or {})})")
    return LongTermMultipliers(pooled, segment, {str(lv): row(e, f" in segment {segment}={lv!r}")
                                                 for lv, e in segs.items()})


@lru_cache(maxsize=8)
def _fitted(config_json: str) -> LongTermMultipliers:
    from promo_opt.ltv.valuation import estimate_ltv

    config = CampaignConfig.model_validate_json(config_json)
    d = estimate_ltv(config, boot=0).to_dict()
    return multipliers_from_ltv(d, config.arm_names, str(config.ltv.panel), config.ltv.segment)


def long_term_multipliers(config: CampaignConfig) -> LongTermMultipliers:
    """The config's multipliers: ``ltv.multipliers``, else from ``ltv.values``, else from fitting ``ltv.panel``."""
    ltv = config.ltv
    if ltv is None:
        raise ConfigError("objective 'long_term_value' needs an ltv: section (ltv.values or ltv.panel)")
    if ltv.multipliers is not None:
        missing = [a for a in config.arm_names[1:] if a not in ltv.multipliers]
        unknown = sorted(set(ltv.multipliers) - set(config.arm_names[1:]))
        if missing or unknown:
            raise ConfigError(f"ltv.multipliers: give one number per promotion arm {config.arm_names[1:]}"
                              + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
        return LongTermMultipliers(np.array([1.0] + [float(ltv.multipliers[a]) for a in config.arm_names[1:]]))
    if ltv.values is not None:
        if not ltv.values.is_file():
            raise DataError(f"ltv.values: file not found: {ltv.values}")
        try:
            d = json.loads(ltv.values.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"ltv.values: {ltv.values} is not valid JSON: {err}") from None
        return multipliers_from_ltv(d, config.arm_names, str(ltv.values), ltv.segment)
    return _fitted(config.model_dump_json())


def with_long_term(econ: Economics, config: CampaignConfig, segment: np.ndarray | None = None) -> Economics:
    """``econ`` carrying the config's long-term multipliers (``econ.gain('long_term_value')`` uses them).

    ``segment``: each user's level of ``ltv.segment`` (text, ``segment_labels``); the multipliers are then
    ``(n, K)``, one row per user. Without it (or without ``ltv.segment``) they are the pooled ``(K,)``.
    """
    table = long_term_multipliers(config)
    if table.segment is None or segment is None:
        return dataclasses.replace(econ, long_term_multiplier=table.pooled, long_term_segment=None)
    m, _ = table.per_user(segment)
    return dataclasses.replace(econ, long_term_multiplier=m, long_term_segment=np.asarray(segment, dtype=object))


def ensure_long_term(econ: Economics, config: CampaignConfig) -> Economics:
    """``econ`` with the multipliers attached when the objective needs them and they are missing (pooled:
    these users carry no segment column)."""
    if config.objective != "long_term_value" or econ.long_term_multiplier is not None:
        return econ
    return with_long_term(econ, config)


def long_term_totals(econ: Economics, arm: np.ndarray, config: CampaignConfig) -> dict:
    """Immediate and long-term figures of a policy side by side (``arm`` (n,) per user); with per-segment
    multipliers, a ``segment`` block: each level's multipliers and users, and the users of unseen levels."""
    rows = np.arange(len(arm))
    rev = econ.incremental_revenue[rows, arm]
    spend = econ.spend[rows, arm]
    mult = np.broadcast_to(econ.long_term_multiplier, econ.spend.shape)[rows, arm]
    names = config.arm_names
    table = long_term_multipliers(config)
    out = {"incremental_revenue_immediate": float(rev.sum()),
           "incremental_revenue_long_term": float((rev * mult).sum()),
           "net_revenue_immediate": float((rev - spend).sum()),
           "long_term_value": float((rev * mult - spend).sum()),
           "multipliers": dict(zip(names, table.pooled.tolist()))}
    if econ.long_term_segment is not None:
        labels = econ.long_term_segment
        _, unseen = table.per_user(labels)
        treated = arm != 0
        out["segment"] = {
            "column": table.segment,
            "levels": {lv: {"multipliers": dict(zip(names, m.tolist())), "users": int((labels == lv).sum()),
                            "users_treated": int(((labels == lv) & treated).sum()),
                            "long_term_value": float((rev * mult - spend)[labels == lv].sum())}
                       for lv, m in table.levels.items()},
            "unseen": {"users": int(unseen.sum()), "users_treated": int((unseen & treated).sum()),
                       "levels": pd.Series(labels[unseen]).value_counts().head(10).to_dict(),
                       "note": "levels without multipliers of their own in the ltv values: valued by the pooled ones"},
        }
    return out
