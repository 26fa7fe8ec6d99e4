"""From drivers to targeting: the top driver segments as ``targeting_rules`` a planner can paste into a campaign.

A driver's row in ``drivers.csv`` is the contrast do(v = high) vs do(v = low) (1 vs 0 for a 0/1 variable,
the ``contrast`` quantiles of a number, a level vs the first for text). Its suggested segment is the side
with the higher outcome: ``v == 1`` (or ``== 0``), ``v >= high`` (or ``<= low``), ``v == 'level'`` (a text
level that lowers the outcome names no segment and is skipped). Only drivers whose 95% interval excludes 0,
of the variables a targeting list can know (``drivers.targetable``; by default every variable but the
outcome and the ``funnel`` actions), at most :data:`SUGGESTED_RULES`, in the ranking of ``drivers.csv``.

A driver is not an uplift: a segment with a high outcome may be one the promotion does not move. That is
what ``policy_comparison`` then measures, at the same budget as the optimized policy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from promo_opt.config import DriversConfig
from promo_opt.errors import ConfigError
from promo_opt.graph.data import DriversData
from promo_opt.graph.drivers import DriverEffect
from promo_opt.targeting import Condition

SUGGESTED_RULES = 5


@dataclass
class SuggestedRule:
    name: str
    rule: str
    variable: str
    effect: float
    ci_low: float
    ci_high: float
    contrast: str  # e.g. "do(homeowner = 1) vs do(homeowner = 0)"

    def as_dict(self) -> dict:
        return {"name": self.name, "rule": self.rule, "variable": self.variable, "effect": self.effect,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "contrast": self.contrast}


def targetable_variables(cfg: DriversConfig, variables: list[str]) -> list[str]:
    """The variables a suggested rule may use; a name of ``drivers.targetable`` that is not one is a ConfigError."""
    if cfg.targetable == "auto":
        return [v for v in variables if v != cfg.outcome and v not in cfg.funnel]
    bad = [v for v in cfg.targetable if v not in variables or v == cfg.outcome]
    if bad:
        raise ConfigError(f"drivers.targetable names {bad}, which are not variables a rule can use; expected "
                          f"some of {[v for v in variables if v != cfg.outcome][:20]}")
    return list(cfg.targetable)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_") or "level"


def _segment(data: DriversData, row: DriverEffect) -> tuple[str, Condition, str, str] | None:
    """(variable, condition, name, contrast) of the higher-outcome side of ``row``'s contrast, or None."""
    up = row.effect > 0
    if row.variable in data.kinds:
        v = row.variable
        kind = data.kinds[v]
        contrast = f"do({v} = {row.high:.6g}) vs do({v} = {row.low:.6g})"
        if kind == "binary":
            level = 1.0 if up else 0.0
            return v, Condition(v, "==", level), f"{_slug(v)}_{int(level)}", contrast
        return (v, Condition(v, ">=", float(row.high)) if up else Condition(v, "<=", float(row.low)),
                f"{_slug(v)}_{'high' if up else 'low'}", contrast)
    for v, levels in data.levels.items():  # a text variable's row is labelled "v=level"
        if row.variable.startswith(f"{v}=") and row.variable[len(v) + 1:] in levels:
            if not up:
                return None
            level = str(row.high)
            return v, Condition(v, "==", level), f"{_slug(v)}_{_slug(level)}", f"do({v} = {level}) vs do({v} = {row.low})"
    return None


def suggest_rules(data: DriversData, effects: list[DriverEffect], targetable: list[str],
                  top: int = SUGGESTED_RULES) -> list[SuggestedRule]:
    """The top driver segments as rules (module doc), in the order of ``effects`` (ranked by |effect|)."""
    out, seen = [], set()
    allowed = set(targetable)
    for row in effects:
        if len(out) >= top:
            break
        if not np.isfinite(row.effect) or row.effect == 0 or row.ci_low <= 0 <= row.ci_high:
            continue
        seg = _segment(data, row)
        if seg is None or seg[0] not in allowed:
            continue
        v, cond, name, contrast = seg
        if cond.text() in seen:
            continue
        seen.add(cond.text())
        out.append(SuggestedRule(name, cond.text(), v, row.effect, row.ci_low, row.ci_high, contrast))
    return out


def rules_yaml(rules: list[SuggestedRule], outcome: str, name: str) -> str:
    """A ``targeting_rules:`` block, with each rule's driver as a comment, to paste into a campaign config."""
    lines = [f"# Suggested targeting rules from 'promo-opt drivers' ({name}): the top drivers of '{outcome}' whose",
             "# 95% interval excludes 0, each as the side of its do() contrast with the higher outcome.",
             "# A driver raises the outcome, not necessarily what a promotion adds: paste this block into a campaign",
             "# config and read policy_comparison (strategies 'rule: <name>') against the optimized policy.",
             "# Each rule's arm is left out: the promotion arm with the most expected gain in the segment."]
    if not rules:
        return "\n".join(lines + ["# No driver qualified (none with an interval excluding 0 among the targetable "
                                  "variables).", "targeting_rules: []", ""])
    lines.append("targeting_rules:")
    for r in rules:
        lines += [f"  # {r.variable}: effect {r.effect:+.4g} (95% CI {r.ci_low:+.4g} to {r.ci_high:+.4g}), {r.contrast}",
                  f"  - name: {json.dumps(r.name)}", f"    rule: {json.dumps(r.rule)}"]
    return "\n".join(lines) + "\n"
