"""The typed entry point of ``promo-opt effect``: the effect of every promotion arm on the outcome.

``estimate_effect(config, method, estimand)`` reads the config's ``train`` table, estimates what
the method needs (propensities, outcome regressions) and returns an :class:`EffectResult` with,
for every non-control arm, the estimate and its 95% interval of the effect on the outcome (the
conversion rate for a 0/1 outcome), plus the diagnostics a user needs to trust it (overlap,
balance before/after, DID means and event study). ``write_effect`` writes ``effect.json`` and
``report.html`` atomically. The CLI and the service call these two functions only.

Methods: ``naive`` (difference in means), ``psm`` (propensity score matching), ``ipw``,
``aipw`` (doubly robust), ``did`` (difference-in-differences; needs ``data.time``, and
``data.unit`` for panels). A ``data.propensity`` column, when given, replaces the estimated
propensity of the arm each row received (the logged probability is better than any estimate).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.data import arm_codes, read_table, write_bytes, write_json
from promo_opt.errors import ConfigError, DataError
from promo_opt.observational import balance, matching, weighting
from promo_opt.observational import did as did_mod
from promo_opt.observational.design import balance_frame
from promo_opt.observational.outcome import cross_fitted_outcomes
from promo_opt.observational.propensity import FLOOR, estimate_propensity, overlap
from promo_opt.observational.result import ArmEffect

log = logging.getLogger(__name__)

METHODS = ("naive", "psm", "ipw", "aipw", "did")
ESTIMANDS = ("ate", "att")


@dataclass
class ObservationalData:
    X: pd.DataFrame  # covariates (data.features)
    arm: np.ndarray  # (n,) arm index, 0 = control
    y: np.ndarray  # (n,) outcome
    arm_names: list[str]
    logged_propensity: np.ndarray | None = None
    time: np.ndarray | None = None
    unit: np.ndarray | None = None
    dropped_missing_outcome: int = 0


@dataclass
class EffectResult:
    method: str
    estimand: str
    outcome: str
    arm_names: list[str]
    effects: list[ArmEffect]
    n_rows: int
    overlap: dict | None = None
    propensity: np.ndarray | None = None  # (n, K) used, for the histograms
    arm: np.ndarray | None = None
    balance: dict[str, pd.DataFrame] = field(default_factory=dict)
    did: dict[str, did_mod.DIDResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    adjustment: dict | None = None  # --adjust graph: the backdoor set read from the graph and how
    propensity_model: dict | None = None  # which propensity model, and why (balance after weighting)

    def effect(self, arm: str) -> ArmEffect:
        return next(e for e in self.effects if e.arm == arm)

    def to_dict(self) -> dict:
        out = {"method": self.method, "estimand": self.estimand, "outcome": self.outcome, "control": self.arm_names[0],
               "n_rows": self.n_rows,
               "effects": {e.arm: {k: v for k, v in e.to_dict().items() if k != "arm"} for e in self.effects}}
        if self.overlap is not None:
            out["overlap"] = self.overlap
        if self.balance:
            out["balance"] = {a: {"max_abs_smd_before": float(b["smd_before"].abs().max()),
                                  **({"max_abs_smd_after": float(b["smd_after"].abs().max())} if "smd_after" in b else {}),
                                  "table": b.to_dict(orient="records")} for a, b in self.balance.items()}
        if self.did:
            out["did"] = {a: {"means": r.means.to_dict(orient="records"), "pretrend_p": r.pretrend_p,
                              "pretrend": r.pretrend_note,
                              "event_study": None if r.event_study is None else r.event_study.to_dict(orient="records")}
                          for a, r in self.did.items()}
        if self.propensity_model is not None:
            out["propensity_model"] = self.propensity_model
        if self.adjustment is not None:
            out["adjustment_set"] = self.adjustment["adjustment_set"]
            out["adjustment"] = self.adjustment
        out["notes"] = self.notes
        return out


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def load_observational(config: CampaignConfig, need_time: bool = False) -> ObservationalData:
    """Read ``data.train`` for effect estimation (repeated ids allowed: panels have one row per period)."""
    d = config.data
    if d.train is None:
        raise DataError("data.train is not set: the effect is estimated on the past campaign's rows")
    df = read_table(d.train, "train")
    need = [d.treatment, d.outcome] + [c for c in (d.propensity, d.time if need_time else None, d.unit) if c]
    if need_time and d.time is None:
        raise ConfigError("method 'did' needs data.time: the column of the period of each row")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"train {d.train}: missing column(s) {missing}; present: {list(df.columns)[:20]}")
    names = config.arm_names
    codes = arm_codes(config, df, "train", d.train)
    present = sorted({names[k] for k in np.unique(codes)})
    if len(present) < 2:
        raise DataError(f"train {d.train}: column '{d.treatment}' has one arm only ({present}); an effect compares "
                        "an arm with the control, so both need rows")
    if names[0] not in present:
        raise DataError(f"train {d.train}: the control arm '{names[0]}' has no rows in column '{d.treatment}'")
    y = df[d.outcome].astype(float) if df[d.outcome].dtype == bool else pd.to_numeric(df[d.outcome], errors="coerce")
    bad = y.isna() & df[d.outcome].notna()
    if bad.any():
        raise DataError(f"train {d.train}: column '{d.outcome}' (data.outcome) must be numeric (0/1 for conversions); "
                        f"found {df.loc[bad, d.outcome].astype(str).unique()[:3].tolist()}")
    keep = y.notna().to_numpy()
    dropped = int((~keep).sum())
    if dropped:
        log.warning("train: %d row(s) with an empty '%s' (data.outcome) are left out", dropped, d.outcome)
    df, y = df[keep].reset_index(drop=True), y[keep].to_numpy(dtype=np.float64)
    reserved = {d.id, d.treatment, d.outcome, d.value, d.propensity, d.time, d.unit, d.segment} - {None}
    if d.features == "auto":
        feats = [c for c in df.columns if c not in reserved]
    else:
        feats = list(d.features)
        absent = [c for c in feats if c not in df.columns]
        if absent:
            raise DataError(f"train {d.train}: feature column(s) {absent} (data.features) are missing")
    arm = codes[keep]
    prop = None
    if d.propensity:
        prop = pd.to_numeric(df[d.propensity], errors="coerce").to_numpy(dtype=np.float64)
        if not ((prop > 0) & (prop <= 1)).all():
            raise DataError(f"train {d.train}: column '{d.propensity}' (data.propensity) must be in (0, 1]")
    return ObservationalData(df[feats], arm, y, names, prop,
                             df[d.time].to_numpy() if (d.time and d.time in df.columns) else None,
                             df[d.unit].to_numpy() if d.unit else None, dropped)


# --------------------------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------------------------
def propensity_matrix(config: CampaignConfig, data: ObservationalData, estimand: str = "ate",
                      selection: dict | None = None) -> np.ndarray:
    """(n, K) cross-fitted propensities; the logged arm's entry replaced by data.propensity when given.
    ``selection`` (a dict) receives the propensity model's choice (``PropensityModel.selection_``)."""
    if data.X.shape[1] == 0:
        raise DataError("no covariates: data.features is empty after removing the id/treatment/outcome columns, "
                        "so propensities cannot be estimated")
    model = estimate_propensity(config, data.X, data.arm, estimand)
    if selection is not None:
        selection.update(model.selection_)
    e = model.oof_
    if data.logged_propensity is not None:
        e[np.arange(len(data.arm)), data.arm] = data.logged_propensity
    return np.clip(e, FLOOR, 1.0)


def _marginal(arm: np.ndarray, k: int) -> np.ndarray:
    """(n, K) propensities without covariates: every row gets the arms' shares."""
    return np.tile(np.bincount(arm, minlength=k) / len(arm), (len(arm), 1))


def _arm_means(y: np.ndarray, arm: np.ndarray, k: int) -> np.ndarray:
    means = np.array([y[arm == j].mean() if (arm == j).any() else 0.0 for j in range(k)])
    return np.tile(means, (len(y), 1))


def _balance_weights(estimand: str, e: np.ndarray, arm: np.ndarray, k: int):
    t, c = arm == k, arm == 0
    if estimand == "ate":
        return 1.0 / e[t, k], 1.0 / e[c, 0]
    return np.ones(int(t.sum())), e[c, k] / e[c, 0]


def graph_adjustment(config: CampaignConfig, data: ObservationalData, graph_path: str | Path | None = None):
    """``--adjust graph``: the covariates restricted to a valid backdoor set of the treatment -> outcome
    effect read from ``graph_path`` (a graph.json of ``promo-opt drivers``) or the config's ``graph.edges``."""
    import json

    from promo_opt.graph.adjustment import backdoor_set
    from promo_opt.graph.model import CausalGraph

    if graph_path is not None:
        path = Path(graph_path)
        if not path.is_file():
            raise ConfigError(f"--graph: file not found: {path}")
        try:
            raw = json.loads(path.read_text())
        except ValueError as err:
            raise ConfigError(f"--graph {path}: not valid JSON: {err}") from None
        graph = CausalGraph.from_dict(raw, str(path))
    elif config.graph is not None:
        graph = CausalGraph.from_edges(config.graph.edges, "graph.edges")
    else:
        raise ConfigError("--adjust graph needs a causal graph: --graph graph.json (from 'promo-opt drivers') or "
                          "graph: {edges: [[from, to], ...]} in the config")
    adj = backdoor_set(graph, config.data.treatment, config.data.outcome, set(data.X.columns))
    info = {"adjustment_set": adj.adjustment_set, "rule": adj.rule, "causal_path": adj.causal_path,
            "graph": str(graph_path) if graph_path is not None else "config graph.edges",
            "left_out": sorted(set(data.X.columns) - set(adj.adjustment_set))}
    return adj.adjustment_set, info


def estimate_effect(config: CampaignConfig, method: str, estimand: str = "ate",
                    data: ObservationalData | None = None, adjust: str | None = None,
                    graph_path: str | Path | None = None) -> EffectResult:
    """Effect of every non-control arm on ``data.outcome``; see the module doc.

    ``adjust="graph"``: adjust only for a valid backdoor set read from a causal graph
    (:func:`graph_adjustment`) instead of every feature; recorded in ``adjustment``."""
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; expected one of {list(METHODS)}")
    if estimand not in ESTIMANDS:
        raise ConfigError(f"unknown estimand '{estimand}'; expected one of {list(ESTIMANDS)}")
    if adjust not in (None, "graph"):
        raise ConfigError(f"--adjust {adjust!r}: expected 'graph' (or leave it out to adjust for every feature)")
    o = config.observational
    data = data or load_observational(config, need_time=(method == "did"))
    adjustment = None
    if adjust == "graph":
        zset, adjustment = graph_adjustment(config, data, graph_path)
        data = dataclasses.replace(data, X=data.X[zset])
    names, arm, y = data.arm_names, data.arm, data.y
    res = EffectResult(method, "att" if method == "did" else estimand, config.data.outcome, names, [], len(y), arm=arm,
                       adjustment=adjustment)
    if adjustment is not None:
        res.notes.append(f"adjusted for the backdoor set {adjustment['adjustment_set']} read from the graph "
                         f"({adjustment['rule']}); left out: {adjustment['left_out']}")
        if not adjustment["causal_path"]:
            res.notes.append(f"the graph has no directed path from '{config.data.treatment}' to "
                             f"'{config.data.outcome}': by the graph the effect is zero, which the estimate checks")
    if data.dropped_missing_outcome:
        res.notes.append(f"{data.dropped_missing_outcome} row(s) with an empty outcome left out")
    arms = [k for k in range(1, len(names)) if (arm == k).any()]
    for k in range(1, len(names)):
        if k not in arms:
            res.notes.append(f"arm '{names[k]}' has no rows: no effect estimated")
    if method == "did":
        return _did(config, data, res, arms)
    if method == "naive":
        res.effects = [weighting.naive(y, arm, k, names[k]) for k in arms]
        return res

    empty = adjustment is not None and data.X.shape[1] == 0  # the graph says: nothing to adjust for
    selection: dict = {}
    e = _marginal(arm, len(names)) if empty else propensity_matrix(config, data, estimand, selection)
    if selection:
        res.propensity_model = selection
    ov = overlap(e, arm, o.trim)
    res.propensity, res.overlap = e, ov.to_dict(names)
    if ov.share_outside > 0.1:
        res.notes.append(f"{ov.share_outside:.0%} of the rows are outside the arms' common support: the estimate "
                         "there rests on extrapolation (see the propensity histograms)")
    B = balance_frame(data.X)
    if method in ("ipw", "aipw"):
        mu = None
        if method == "aipw":
            mu = (_arm_means(y, arm, len(names)) if empty else
                  cross_fitted_outcomes(data.X, arm, y, len(names), o.outcome_model, o.folds, config.seed))
        for k in arms:
            if method == "ipw":
                eff = weighting.ipw(y, arm, e, k, estimand, o.trim, names[k], names[0])
            else:
                eff = weighting.aipw(y, arm, e, mu, k, estimand, o.trim, names[k], names[0])
            res.effects.append(eff)
            if estimand == "att" and eff.details.get("trimmed_control_rows"):
                res.notes.append(f"{eff.details['trimmed_control_rows']:,} '{names[0]}' row(s) far from every "
                                 f"treated user (propensity of '{names[k]}' below {o.trim:g}) left out: they would carry "
                                 f"~zero weight, and the ATT needs overlap only where the treated are; "
                                 f"{eff.details['trimmed_arm_rows']:,} '{names[k]}' row(s) without comparable controls "
                                 "left out")
            wt, wc = _balance_weights(estimand, e, arm, k)
            res.balance[names[k]] = balance.balance_table(B, arm == k, arm == 0, wt, wc)
        return res
    # psm
    exact = None
    if o.exact:
        absent = [c for c in o.exact if c not in data.X.columns]
        if absent:
            raise ConfigError(f"observational.exact names column(s) {absent} that are not among the features "
                              f"{list(data.X.columns)[:20]}")
        exact = pd.factorize(pd.MultiIndex.from_frame(data.X[o.exact].astype("string").fillna("<missing>")))[0]
    for k in arms:
        eff, sample = matching.psm(y, arm, e, k, estimand, o.caliper, o.neighbors, o.replace, exact, names[k],
                                   config.seed)
        res.effects.append(eff)
        w = np.zeros(len(y))
        np.add.at(w, sample.rows, sample.weights)
        res.balance[names[k]] = balance.balance_table(B, arm == k, arm == 0, w[arm == k] + 1e-300, w[arm == 0] + 1e-300)
    return res


def _did(config: CampaignConfig, data: ObservationalData, res: EffectResult, arms: list[int]) -> EffectResult:
    o = config.observational
    names = data.arm_names
    controls = None
    if o.controls:
        absent = [c for c in o.controls if c not in data.X.columns]
        if absent:
            raise ConfigError(f"observational.controls names column(s) {absent} that are not among the features")
        controls = balance_frame(data.X[o.controls])
    for k in arms:
        rows = (data.arm == k) | (data.arm == 0)
        r = did_mod.did(data.y[rows], data.arm[rows] == k, data.time[rows],
                        None if data.unit is None else data.unit[rows], o.treatment_start,
                        None if controls is None else controls[rows], names[k], names[0],
                        time_col=config.data.time)
        res.effects.append(r.effect)
        res.did[names[k]] = r
    return res


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------
def write_effect(result: EffectResult, out: str | Path, title: str = "campaign") -> Path:
    """``effect.json`` and ``report.html`` in ``out`` (each written to a temp file, then renamed)."""
    from promo_opt.observational.report import render_effect_report

    out = Path(out)
    page = render_effect_report(result, title)  # render first: nothing is written if it fails
    write_json(result.to_dict(), out / "effect.json")
    write_bytes(page.encode(), out / "report.html")
    return out
