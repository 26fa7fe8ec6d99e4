"""``objective: long_term_value``: each arm's incremental conversions valued over the long run.

The long-term multiplier of an arm is ``long_term / immediate`` of the outcome (from an
``ltv.json`` named by ``ltv.values``, or from fitting the ``ltv.panel`` model without bootstrap):
one incremental conversion in the week of the promotion comes with ``multiplier`` conversions'
worth of change over the horizon (below 1 when it only pulls bookings forward, above 1 when it
starts a habit). The allocation gain of arm k is then
``incremental_revenue[:, k] * multiplier[k] - spend[:, k]``.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

import numpy as np

from promo_opt.config import CampaignConfig
from promo_opt.economics import Economics
from promo_opt.errors import ConfigError, DataError


def multipliers_from_ltv(d: dict, arm_names: list[str], source: str = "ltv.json") -> np.ndarray:
    """``(K,)`` multipliers in ``arm_names`` order (control first, set to 1) from an ltv.json mapping."""
    arms = d.get("arms") if isinstance(d, dict) else None
    if not isinstance(arms, dict):
        raise DataError(f"{source}: no 'arms' mapping; expected the ltv.json written by 'promo-opt ltv'")
    out = np.ones(len(arm_names))
    for k, a in enumerate(arm_names[1:], start=1):
        if a not in arms:
            raise DataError(f"{source}: no long-term value for arm '{a}' (it has {sorted(arms)}); re-run "
                            "'promo-opt ltv' with this config's arms")
        try:
            imm = float(arms[a]["immediate"]["estimate"])
            lt = float(arms[a]["long_term"]["estimate"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: arms.{a} needs immediate.estimate and long_term.estimate numbers") from None
        if not np.isfinite(imm) or not np.isfinite(lt) or imm <= 0:
            raise DataError(f"{source}: arm '{a}' has immediate {imm:g}: a long-term multiplier (long_term / "
                            "immediate) needs a positive immediate effect")
        out[k] = lt / imm
    return out


@lru_cache(maxsize=8)
def _fitted(config_json: str) -> tuple[float, ...]:
    from promo_opt.ltv.valuation import estimate_ltv

    config = CampaignConfig.model_validate_json(config_json)
    d = estimate_ltv(config, boot=0).to_dict()
    return tuple(multipliers_from_ltv(d, config.arm_names, str(config.ltv.panel)))


def long_term_multipliers(config: CampaignConfig) -> np.ndarray:
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
        return np.array([1.0] + [float(ltv.multipliers[a]) for a in config.arm_names[1:]])
    if ltv.values is not None:
        if not ltv.values.is_file():
            raise DataError(f"ltv.values: file not found: {ltv.values}")
        try:
            d = json.loads(ltv.values.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"ltv.values: {ltv.values} is not valid JSON: {err}") from None
        return multipliers_from_ltv(d, config.arm_names, str(ltv.values))
    return np.array(_fitted(config.model_dump_json()))


def with_long_term(econ: Economics, config: CampaignConfig) -> Economics:
    """``econ`` carrying the config's long-term multipliers (``econ.gain('long_term_value')`` uses them)."""
    return dataclasses.replace(econ, long_term_multiplier=long_term_multipliers(config))


def ensure_long_term(econ: Economics, config: CampaignConfig) -> Economics:
    """``econ`` with the multipliers attached when the objective needs them and they are missing."""
    if config.objective != "long_term_value" or econ.long_term_multiplier is not None:
        return econ
    return with_long_term(econ, config)


def long_term_totals(econ: Economics, arm: np.ndarray, arm_names: list[str]) -> dict:
    """Immediate and long-term figures of a policy side by side (``arm`` (n,) per user)."""
    rows = np.arange(len(arm))
    rev = econ.incremental_revenue[rows, arm]
    spend = econ.spend[rows, arm]
    mult = econ.long_term_multiplier[arm]
    return {"incremental_revenue_immediate": float(rev.sum()),
            "incremental_revenue_long_term": float((rev * mult).sum()),
            "net_revenue_immediate": float((rev - spend).sum()),
            "long_term_value": float((rev * mult - spend).sum()),
            "multipliers": dict(zip(arm_names, econ.long_term_multiplier.tolist()))}
