"""The typed entry point of ``promo-opt ltv``: long-term value of every promotion arm.

``estimate_ltv(config)`` reads and checks the panel, fits the system (with bootstrap-by-customer
replicates), and values, for every non-control arm, the shock "this arm once in week 0 instead
of control": ``immediate`` (the outcome's change in week 0) and ``long_term`` (its change summed
over weeks 0..H-1), their ratio (the long-term multiplier), the Shapley attribution of
``long_term`` across the surrogate groups, and the configured extra shocks, each with a 95%
percentile interval over the replicates. ``write_ltv`` writes ``ltv.json``, ``weights.csv`` and
``report.html`` (each to a temp name, then renamed; nothing is written if any part fails).

Per segment (``ltv.segment: s``, a column constant within a customer). Every level g of s with at
least ``ltv.segment_min_customers`` customers is valued on its own fit: the same system refitted on
the customers of level g (controls constant among them dropped: they are collinear with the
intercept), with its own bootstrap. This is the fully interacted model. Interact every regressor of
every equation with the indicators 1[s = g]: each row has non-zero columns only in its own level's
block, so ``Z'Z = diag(Z_g'Z_g)``, the normal equations split into one system per level and their
solutions are the per-level fits (the ridge penalty, scaled by each column's centred sum of squares,
becomes each level's own). Interacting only the arm terms would not do: the multiplier is
``sum_h IRF_h / IRF_0`` with the impulse response ``IRF_h = d y[t+h] / d arm[t]`` running through
the lag weights. For an outcome ``y[t] = phi y[t-1] + b arm[t] + e`` the multiplier is
``(1 - phi^H) / (1 - phi)`` whatever b is, so a level with a habit (phi > 0) and one where the
promotion pulls bookings forward (phi < 0, or negative lagged arm terms) differ through phi, which
arm interactions leave pooled. The levels partition the customers, so the Poisson(1) bootstrap by
customer restricted to a level is that level's bootstrap: each level's intervals come from its own
replicates, as the population's do. The pooled fit is one system for a mixture; its lag weights are
a blend of the levels' (weighted by their rows and residual variances), so its multiplier usually
lies between theirs and is biased for each of them.

Where the panel does not support a level (fewer customers than ``segment_min_customers``, a fit the
model refuses, e.g. an arm never given to that level, or an arm whose immediate effect there is not
positive, so no multiplier) the level carries the pooled values, ``source: pooled`` and the reason,
also listed in ``notes``. ``ltv.json`` then has ``segments: {s: {level: {arm: {immediate, long_term,
multiplier, n_customers, source[, reason]}}}}``; ``multiplier`` is always what ``objective:
long_term_value`` uses for that level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.data import write_bytes, write_json, write_table
from promo_opt.errors import ConfigError, DataError
from promo_opt.ltv.model import FittedSystem, fit_system
from promo_opt.ltv.panel import Panel, check_panel, read_panel
from promo_opt.ltv.settings import LtvConfig, ShockConfig
from promo_opt.ltv.shapley import ShapleyResult, shapley
from promo_opt.ltv.shocks import ShockPath, Start, plan_shocks, propagate, simulate

log = logging.getLogger(__name__)


def interval(x: np.ndarray) -> dict:
    """``{"estimate", "ci_low", "ci_high"}`` from replicates ``x (R,)``: x[0] the fit, x[1:] bootstrap."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3:
        return {"estimate": float(x[0]), "ci_low": None, "ci_high": None}
    return {"estimate": float(x[0]), "ci_low": float(np.quantile(x[1:], 0.025)),
            "ci_high": float(np.quantile(x[1:], 0.975))}


@dataclass
class ArmValue:
    arm: str
    path: ShockPath  # arm once in week 0
    immediate: np.ndarray  # (R,)
    long_term: np.ndarray  # (R,)
    shapley: ShapleyResult | None = None

    @property
    def multiplier(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.long_term / self.immediate


@dataclass
class SegmentValue:
    """One level of ``ltv.segment``: its own arm values (``source`` "segment") or the pooled ones ("pooled")."""

    level: str
    n_customers: int
    source: str  # "segment" or "pooled"
    arms: list[ArmValue]
    reason: str | None = None  # why the pooled values (source "pooled")

    def to_dict(self) -> dict:
        extra = {"reason": self.reason} if self.reason else {}
        return {a.arm: {"immediate": interval(a.immediate), "long_term": interval(a.long_term),
                        "multiplier": interval(a.multiplier), "n_customers": self.n_customers,
                        "source": self.source, **extra} for a in self.arms}


@dataclass
class LtvResult:
    outcome: str
    horizon: int
    control: str
    fit: FittedSystem
    start: Start
    arms: list[ArmValue]
    shocks: dict[str, ShockPath] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    segment: str | None = None  # ltv.segment
    segments: list[SegmentValue] = field(default_factory=list)

    def arm(self, name: str) -> ArmValue:
        return next(a for a in self.arms if a.arm == name)

    def to_dict(self) -> dict:
        o = self.outcome
        out = {"outcome": o, "horizon": self.horizon, "control": self.control, "arms": {}}
        for a in self.arms:
            out["arms"][a.arm] = {
                "immediate": interval(a.immediate), "long_term": interval(a.long_term),
                "multiplier": interval(a.multiplier),
                "path": {"week": list(range(self.horizon)),
                         **{k: [interval(a.path.effect[:, t, a.path.variables.index(o)])[k] for t in range(self.horizon)]
                            for k in ("estimate", "ci_low", "ci_high")}},
            }
        out["shapley"] = {a.arm: shapley_dict(a.shapley) for a in self.arms if a.shapley is not None}
        out["shocks"] = {name: {v: interval(p.total(v)) for v in p.variables} for name, p in self.shocks.items()}
        if self.segment is not None:
            out["segments"] = {self.segment: {s.level: s.to_dict() for s in self.segments}}
        f = self.fit
        out["model"] = {
            "variables": f.design.variables, "same_period_order": f.order, "lags": f.design.lags, "alpha": f.alpha,
            "n_rows": f.n_rows, "n_customers": f.n_customers, "boot": f.n_boot, "r2": f.r2,
            "spectral_radius": f.spectral_radius(),
            "start": {"lags_mean": dict(zip(f.design.variables, self.start.lags[0].tolist())),
                      "controls_mean": dict(zip(f.design.control_names, self.start.controls.tolist()))},
            "weights": {var: {f.design.regressors[c]: float(f.coef[var][0, i]) for i, c in enumerate(cols)}
                        for var, cols in f.columns.items()},
        }
        out["notes"] = list(self.notes)
        return out


def shapley_dict(s: ShapleyResult) -> dict:
    d = {"method": s.method, "players": s.players, "total": interval(s.total),
         "not_attributed": interval(s.empty),  # the arm's effect with every surrogate channel blocked
         "attribution": {p: interval(s.phi[i]) for i, p in enumerate(s.players)},
         "efficiency_gap": float(np.max(np.abs(s.efficiency_gap)))}
    if s.std_error is not None:
        d["permutations"] = s.permutations
        d["std_error"] = {p: float(s.std_error[i][0]) for i, p in enumerate(s.players)}
    return d


def average_start(panel: Panel, lags: int) -> Start:
    """An average customer: every variable at its panel mean in the L weeks before week 0."""
    return Start(lags=np.tile(panel.y.mean(axis=0, dtype=np.float64), (lags, 1)),
                 controls=panel.controls.mean(axis=0) if panel.controls.size else np.zeros(panel.controls.shape[1]))


def value_arms(fit: FittedSystem, start: Start, ltv: LtvConfig, arm_names: list[str], seed: int = 0,
               attribute: bool = True) -> list[ArmValue]:
    """The shock "arm once in week 0" for every non-control arm, with Shapley over the surrogate groups
    (``attribute`` False: without)."""
    o = ltv.outcome
    groups = ltv.player_groups() if attribute else {}
    V = fit.design.variables
    out = []
    for a in arm_names[1:]:
        plan = plan_shocks(fit, [ShockConfig(target=a, kind="set")], ltv.horizon, arm_names, ltv.groups)
        path = propagate(fit, start, plan)
        val = ArmValue(arm=a, path=path, immediate=path.effect[:, 0, V.index(o)], long_term=path.total(o))
        if groups:
            players = list(groups)

            def value_many(coalitions: list[frozenset[int]], plan=plan, path=path) -> np.ndarray:
                """Long-term outcome change with the surrogates of every player outside the coalition blocked."""
                pins = np.zeros((len(coalitions), len(V)), dtype=bool)
                for c, s in enumerate(coalitions):
                    keep = {v for i in s for v in groups[players[i]]}
                    pins[c] = [v in ltv.surrogates and v not in keep for v in V]
                cf = simulate(fit, start, plan, pins, path.baseline)  # (C, R, H, m)
                return (cf - path.baseline[None])[..., V.index(o)].sum(axis=2)

            val.shapley = shapley(lambda s: value_many([s])[0], players, ltv.shapley_exact_max,
                                  ltv.shapley_permutations, seed, value_many=value_many)
        out.append(val)
    return out


def estimate_ltv(config: CampaignConfig, boot: int | None = None, panel: pd.DataFrame | None = None) -> LtvResult:
    """Fit the config's ``ltv:`` model and value every arm (see the module docstring).

    ``panel``: the panel as a data frame (default: read ``ltv.panel``); ``boot`` overrides ``ltv.boot``.
    """
    ltv = config.ltv
    if ltv is None:
        raise ConfigError("the config has no ltv: section (panel, customer, week, treatment, outcome, surrogates)")
    if ltv.panel is None and panel is None:
        raise ConfigError("ltv.panel is not set: 'promo-opt ltv' fits the weekly customer panel")
    arm_names = config.arm_names
    check_shock_targets(ltv, arm_names)  # before reading anything
    panel = read_panel(ltv, arm_names) if panel is None else check_panel(panel, ltv, arm_names)
    fit = fit_system(ltv, panel, seed=config.seed, boot=boot)
    res = value_fit(config, fit, average_start(panel, ltv.lags))
    if ltv.segment is not None:
        res.segment = ltv.segment
        res.segments = value_segments(config, panel_levels(config, panel, boot), res.arms, res.notes)
    return res


@dataclass
class SegmentLevel:
    """One level of ``ltv.segment`` as an engine found it: its customers, and how to fit them (the local
    engine refits the level's sub-panel; Spark solves the level's summed Gram matrices)."""

    level: str
    n_customers: int
    fit: Callable[[], tuple[FittedSystem, Start]]  # raises DataError where the level's panel cannot be fitted


def value_segments(config: CampaignConfig, levels: list[SegmentLevel], pooled: list[ArmValue],
                   notes: list[str]) -> list[SegmentValue]:
    """Every level of ``ltv.segment`` valued on its own fit, or given the ``pooled`` values with the reason
    (see the module docstring); what a reader must know is appended to ``notes``. Both engines call it."""
    ltv = config.ltv
    out = []
    for lv in sorted(levels, key=lambda x: x.level):
        level, n = lv.level, lv.n_customers
        if n < ltv.segment_min_customers:
            out.append(SegmentValue(level, n, "pooled", pooled, f"{n:,} customers, fewer than "
                                    f"ltv.segment_min_customers = {ltv.segment_min_customers:,}"))
            continue
        try:
            fit, start = lv.fit()
        except DataError as err:  # recorded as the reason, in ltv.json and the notes
            out.append(SegmentValue(level, n, "pooled", pooled, f"its own fit was refused: {err}"))
            continue
        arms = value_arms(fit, start, ltv, config.arm_names, attribute=False)
        flat = [a.arm for a in arms if not a.immediate[0] > 0]
        if flat:
            out.append(SegmentValue(level, n, "pooled", pooled, f"the immediate effect of {flat} is not "
                                    "positive there, so it has no multiplier"))
            continue
        rho = fit.spectral_radius()
        log.info("ltv: segment %s=%s fitted on %d customers; spectral radius %.3f", ltv.segment, level, n, rho)
        if rho >= 1:
            notes.append(f"ltv.segment '{ltv.segment}' = {level!r}: the fitted dynamics are not stable (spectral "
                         f"radius {rho:.3f} >= 1); do not trust its long-term values beyond a few weeks")
        out.append(SegmentValue(level, n, "segment", arms))
    notes += [f"ltv.segment '{ltv.segment}' = {s.level!r}: pooled values ({s.reason})" for s in out if s.source == "pooled"]
    return out


def panel_levels(config: CampaignConfig, panel: Panel, boot: int | None) -> list[SegmentLevel]:
    """The local engine's levels of ``ltv.segment``: each level's customers refitted as a panel of their own."""
    ltv = config.ltv

    def fitter(keep: np.ndarray):
        def fit() -> tuple[FittedSystem, Start]:
            sub = panel.customers(keep)
            return fit_system(ltv, sub, seed=config.seed, boot=boot), average_start(sub, ltv.lags)
        return fit

    return [SegmentLevel(str(level), int((panel.segment == level).sum()), fitter(panel.segment == level))
            for level in np.unique(panel.segment)]


def check_shock_targets(ltv: LtvConfig, arm_names: list[str]) -> None:
    """Every configured shock names a variable, a group or an arm (ConfigError naming it otherwise)."""
    known = set(ltv.variables) | set(ltv.groups) | set(arm_names)
    for i, s in enumerate(ltv.shocks):
        if s.target not in known:
            raise ConfigError(f"ltv.shocks.{i}: shock target '{s.target}' is not a surrogate, the outcome, a group or "
                              f"an arm; known: variables {ltv.variables}, groups {sorted(ltv.groups)}, arms {arm_names}")
        if s.target in arm_names and s.kind != "set":
            raise ConfigError(f"ltv.shocks.{i}: an arm can only be given ('set'), not raised")


def value_fit(config: CampaignConfig, fit: FittedSystem, start: Start) -> LtvResult:
    """Every valuation of a fitted system (the engines differ only in how they fit)."""
    ltv = config.ltv
    arm_names = config.arm_names
    plans = {s.label: plan_shocks(fit, [s], ltv.horizon, arm_names, ltv.groups) for s in ltv.shocks}
    res = LtvResult(outcome=ltv.outcome, horizon=ltv.horizon, control=arm_names[0], fit=fit, start=start,
                    arms=value_arms(fit, start, ltv, arm_names, config.seed),
                    shocks={name: propagate(fit, start, p) for name, p in plans.items()})
    rho = fit.spectral_radius()
    log.info("ltv: valued %d arm(s) over %d weeks; spectral radius %.3f", len(res.arms), ltv.horizon, rho)
    if rho >= 1:
        res.notes.append(f"the fitted dynamics are not stable (spectral radius {rho:.3f} >= 1): effects do not die out "
                         "and long-term values grow with the horizon; do not trust them beyond a few weeks")
    if fit.n_boot == 0:
        res.notes.append("ltv.boot is 0: no intervals")
    elif fit.n_boot < 100:
        res.notes.append(f"only {fit.n_boot} bootstrap replicates: the 95% interval ends are rough")
    for a in res.arms:
        if a.shapley is not None and a.shapley.method == "sampled":
            res.notes.append(f"Shapley attribution of '{a.arm}' sampled over {a.shapley.permutations} permutations "
                             "(std_error in ltv.json)")
    return res


def write_ltv(result: LtvResult, out: str | Path, title: str = "campaign") -> Path:
    """``ltv.json``, ``weights.csv`` and ``report.html`` in ``out``; everything is built before anything is written."""
    from promo_opt.ltv.report import render_ltv_report

    out = Path(out)
    d = result.to_dict()
    page = render_ltv_report(result, d, title)
    weights = result.fit.weights()
    write_json(d, out / "ltv.json")
    write_table(weights, out / "weights.csv")
    write_bytes(page.encode(), out / "report.html")
    return out
