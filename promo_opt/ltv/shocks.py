"""Shocks propagated recursively through the fitted system over the horizon.

A path is simulated week by week: every variable, in the topological order of the same-period
edges, is its equation's value given the lags, the arms of this and the last L weeks, the
controls and its same-period parents. A shock sets or raises a variable (or every surrogate
of a group) in a window of weeks, or gives an arm in that window; the counterfactual path minus
the baseline path (control arm every week, same start) is the effect.

The start is an average customer: every variable at its panel mean in the L weeks before week 0,
controls at their panel means. For a ``raise`` or an arm the effect does not depend on the start
(the system is linear); for a ``set`` it does. Everything is vectorized over the replicates of
the fit (axis 0: the fit, then the bootstrap replicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promo_opt.errors import ConfigError
from promo_opt.ltv.model import FittedSystem
from promo_opt.ltv.settings import ShockConfig


@dataclass(frozen=True)
class Start:
    lags: np.ndarray  # (L, m) levels of the variables in weeks -L..-1 (row 0 = week -1)
    controls: np.ndarray  # (p,)


@dataclass(frozen=True)
class ShockPath:
    """Paths over weeks 0..H-1 of every variable, per replicate: ``(R, H, m)``."""

    variables: list[str]
    baseline: np.ndarray
    counterfactual: np.ndarray

    @property
    def effect(self) -> np.ndarray:
        return self.counterfactual - self.baseline

    def total(self, variable: str) -> np.ndarray:
        """Effect on ``variable`` summed over the horizon, per replicate ``(R,)``."""
        return self.effect[:, :, self.variables.index(variable)].sum(axis=1)


@dataclass(frozen=True)
class Plan:
    """What a shock does, as arrays over weeks 0..H-1 (NaN in ``set_to`` = not set)."""

    arm: np.ndarray  # (H,) arm index given each week (0 = control)
    set_to: np.ndarray  # (H, m)
    add: np.ndarray  # (H, m)


def plan_shocks(fit: FittedSystem, shocks: list[ShockConfig], horizon: int, arm_names: list[str],
                groups: dict[str, list[str]]) -> Plan:
    """Turn shocks into arrays; an unknown target or a clash is a ConfigError naming it."""
    V = fit.design.variables
    m = len(V)
    plan = Plan(arm=np.zeros(horizon, dtype=np.int64), set_to=np.full((horizon, m), np.nan), add=np.zeros((horizon, m)))
    for s in shocks:
        if s.start + s.weeks > horizon:
            raise ConfigError(f"shock '{s.label}': the window ends at week {s.start + s.weeks - 1}, beyond the "
                              f"horizon of {horizon} weeks")
        window = slice(s.start, s.start + s.weeks)
        if s.target in arm_names:
            if s.kind != "set":
                raise ConfigError(f"shock '{s.label}': an arm can only be given ('set'), not raised")
            if (plan.arm[window] != 0).any():
                raise ConfigError(f"shock '{s.label}': another arm is already given in those weeks (one arm per week)")
            plan.arm[window] = arm_names.index(s.target)
            continue
        if s.target in V:
            members = [s.target]
        elif s.target in groups:
            members = groups[s.target]
        else:
            raise ConfigError(f"shock target '{s.target}' is not a surrogate, the outcome, a group or an arm; "
                              f"known: variables {V}, groups {sorted(groups)}, arms {arm_names}")
        for v in members:
            j = V.index(v)
            if s.kind == "set":
                plan.set_to[window, j] = s.value
            else:
                plan.add[window, j] += s.value
    return plan


def simulate(fit: FittedSystem, start: Start, plan: Plan, pinned: np.ndarray | None = None,
             pinned_path: np.ndarray | None = None) -> np.ndarray:
    """Levels of every variable over the plan's weeks, per replicate ``(R, H, m)``.

    ``pinned`` ``(m,)`` or a batch ``(P, m)`` of bool masks: those variables follow ``pinned_path
    (R, H, m)`` instead of their equations (how Shapley blocks a surrogate channel); with a batch
    the result is ``(P, R, H, m)``, one path per mask, computed together.
    """
    R, L, m, _ = fit.lag.shape
    H = len(plan.arm)
    V = fit.design.variables
    batch = pinned is not None and np.ndim(pinned) == 2
    pins = np.zeros((1, m), dtype=bool) if pinned is None else np.atleast_2d(np.asarray(pinned, dtype=bool))
    P = len(pins)
    parents = {j: [V.index(v) for v in V if fit.design.current_col(V.index(v)) in fit.columns[V[j]]] for j in range(m)}
    order = [V.index(v) for v in fit.order]
    Y = np.zeros((P, R, L + H, m))
    Y[:, :, :L] = start.lags[::-1][None, None]  # row L-1 = week -1
    arms = np.r_[np.zeros(L, dtype=np.int64), plan.arm]
    fixed = fit.const + np.einsum("rjp,p->rj", fit.control, start.controls)  # (R, m)
    any_pin = pins.any(axis=0)
    for t in range(H):
        s = L + t
        # everything but the same-period terms, for all variables at once: (P, R, m)
        base = fixed[None] + np.einsum("rljv,prlv->prj", fit.lag, Y[:, :, np.arange(s - 1, s - 1 - L, -1)])
        for lag in range(L + 1):
            if arms[s - lag]:
                base += fit.arm[None, :, lag, :, arms[s - lag]]
        base += plan.add[t][None, None]
        for j in order:
            val = base[:, :, j]
            for v in parents[j]:
                val = val + fit.same[None, :, j, v] * Y[:, :, s, v]
            if not np.isnan(plan.set_to[t, j]):
                val = np.full_like(val, plan.set_to[t, j])
            if any_pin[j]:
                val = np.where(pins[:, j][:, None], pinned_path[None, :, t, j], val)
            Y[:, :, s, j] = val
    return Y[:, :, L:] if batch else Y[0, :, L:]


def no_shock(horizon: int, m: int) -> Plan:
    return Plan(arm=np.zeros(horizon, dtype=np.int64), set_to=np.full((horizon, m), np.nan), add=np.zeros((horizon, m)))


def propagate(fit: FittedSystem, start: Start, plan: Plan, pinned: np.ndarray | None = None) -> ShockPath:
    """Baseline (control every week) and counterfactual paths of a shock plan."""
    H, m = len(plan.arm), len(fit.design.variables)
    baseline = simulate(fit, start, no_shock(H, m))
    cf = simulate(fit, start, plan, pinned, baseline)
    return ShockPath(variables=list(fit.design.variables), baseline=baseline, counterfactual=cf)
