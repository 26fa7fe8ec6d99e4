"""The optimized policy side by side with the strategies people use instead, all at the same budget.

Strategies (every one spends at most the same budget by the model's expected spend; users are
taken in the strategy's order until the next one would break the budget):

* ``optimized``        the allocator's policy (budget, ROI floor, caps);
* ``everyone <arm>``   one arm for everyone, in random order (everyone, if the budget allows);
* ``random``           a random promotion arm per user, in random order;
* ``response model``   the classic response model: users ranked by predicted conversion probability
  under the best single arm, which they get (it ignores whether they would have bought anyway);
* ``best single arm``  the uplift-optimal policy with one promotion arm only (the best of them);
* ``rule: <name>``     a ``targeting_rules`` segment (``promo_opt.targeting``): its users, in random order, get
  the rule's arm (by default the promotion arm whose budget-filled policy has the largest expected gain
  in the segment).

Each is scored by the known truth in a simulated world (``data.truth``), else by doubly robust
off-policy evaluation on the training campaign's rows with the learner's out-of-fold predictions
(the policies are rebuilt there, the budget scaled to the training population, the figures scaled back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promo_opt.allocation import AllocationProblem, solve
from promo_opt.config import CampaignConfig
from promo_opt.economics import Economics, campaign_economics
from promo_opt.errors import DataError, PromoOptError

log = logging.getLogger(__name__)


def fill_budget(order: np.ndarray, arm: np.ndarray, spend: np.ndarray, budget: float | None) -> np.ndarray:
    """Give ``arm[i]`` to users in ``order`` while the cumulative expected ``spend`` (n, K) stays within budget."""
    out = np.zeros(len(arm), dtype=np.int64)
    cost = spend[order, arm[order]]
    take = order if budget is None else order[np.cumsum(cost) <= budget + 1e-9]
    out[take] = arm[take]
    return out


def _single_arm(econ: Economics, objective: str, k: int, budget, min_roi) -> np.ndarray:
    cols = [0, k]
    gain = econ.gain(objective)[:, cols]
    problem = AllocationProblem(gain, econ.spend[:, cols], econ.incremental_revenue[:, cols], budget=budget,
                                min_roi=min_roi)
    res = solve(problem, solver="dual")
    return np.where(res.arm == 1, k, 0)


def baseline_policies(econ: Economics, config: CampaignConfig, optimized: np.ndarray, budget: float | None,
                      min_roi: float | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Arm per user (``econ``'s users) of every strategy in the module doc; ``optimized`` is given."""
    if config.objective == "long_term_value":  # issue 13: the arms' long-term multipliers
        from promo_opt.ltv.objective import ensure_long_term

        econ = ensure_long_term(econ, config)
    n, K = econ.p.shape
    names = config.arm_names
    rng = np.random.default_rng(seed)
    gain = econ.gain(config.objective)
    pols = {"optimized": optimized}
    for k in range(1, K):
        pols[f"everyone {names[k]}"] = fill_budget(rng.permutation(n), np.full(n, k), econ.spend, budget)
    pols["random"] = fill_budget(rng.permutation(n), rng.integers(1, K, size=n), econ.spend, budget)
    singles = {}
    for k in range(1, K):
        try:
            singles[k] = _single_arm(econ, config.objective, k, budget, min_roi)
        except PromoOptError as err:  # e.g. no user of this arm meets the ROI floor
            log.info("best single arm: arm %s skipped (%s)", names[k], err)
    if singles:
        best = max(singles, key=lambda k: gain[np.arange(n), singles[k]].sum())
        order = np.argsort(-econ.p[:, best], kind="stable")
        pols["response model"] = fill_budget(order, np.full(n, best), econ.spend, budget)
        pols[f"best single arm ({names[best]})"] = singles[best]
    return pols


@dataclass
class RulePolicy:
    """A targeting rule as a strategy: ``arm`` (n,) per user, with what a reader needs to trust it."""

    name: str
    rule: str
    arm_name: str
    arm_from: str  # "config" or "most expected gain in the segment"
    matching_users: int
    arm: np.ndarray

    @property
    def strategy(self) -> str:
        return f"rule: {self.name}"

    def as_dict(self, scale: float = 1.0) -> dict:
        """``scale``: users counted on the training rows are scaled to the candidates (DR comparison)."""
        return {"name": self.name, "rule": self.rule, "arm": self.arm_name, "arm_from": self.arm_from,
                "matching_users": int(round(self.matching_users * scale)),
                "users_treated": int(round((self.arm != 0).sum() * scale))}


def rule_policies(econ: Economics, config: CampaignConfig, features: pd.DataFrame, budget: float | None,
                  seed: int = 0) -> list[RulePolicy]:
    """Each of ``config.targeting_rules`` as a strategy over ``econ``'s users, whose feature columns are
    ``features`` (same rows). The rule's users in a seeded random order get its arm while the expected spend
    stays within ``budget`` (:func:`fill_budget`); without an arm, each promotion arm is filled that way and the
    one with the largest expected gain (the config's objective) is kept: chosen on the model, never on a truth."""
    if config.objective == "long_term_value":
        from promo_opt.ltv.objective import ensure_long_term

        econ = ensure_long_term(econ, config)
    n, K = econ.p.shape
    if len(features) != n:
        raise ValueError(f"rule_policies: {len(features)} feature rows for {n} users")
    names = config.arm_names
    gain = econ.gain(config.objective)
    rows = np.arange(n)
    out = []
    for i, r in enumerate(config.targeting_rules):
        match = r.parsed.mask(features)
        # its own stream per rule: adding a rule changes no other strategy's draw
        order = np.random.default_rng([seed, 4243, i]).permutation(np.flatnonzero(match))
        if r.arm is not None:
            k, arm_from = names.index(r.arm), "config"
            arm = fill_budget(order, np.full(n, k), econ.spend, budget)
        else:
            filled = {k: fill_budget(order, np.full(n, k), econ.spend, budget) for k in range(1, K)}
            k = max(filled, key=lambda j: gain[rows, filled[j]].sum())  # ties: the first arm
            arm, arm_from = filled[k], "most expected gain in the segment"
        if not match.any():
            log.warning("targeting rule '%s' (%s) matches none of the %d users", r.name, r.rule, n)
        out.append(RulePolicy(r.name, r.rule, names[k], arm_from, int(match.sum()), arm))
    return out


def _row(name: str, arm: np.ndarray, totals: dict, objective: str) -> dict:
    return {"policy": name, "users_treated": int((arm != 0).sum()),
            "incremental_conversions": totals["incremental_conversions"],
            "incremental_revenue": totals["incremental_revenue"], "spend": totals["spend"],
            "roi": totals["incremental_revenue"] / totals["spend"] if totals["spend"] > 0 else float("nan"),
            "net_revenue": totals["incremental_revenue"] - totals["spend"]}


def compare_policies(config: CampaignConfig, model, outcome, n_boot: int = 200, n_bands: int = 11) -> dict:
    """The comparison table for ``run``: ``{"scored_by", "budget", "rows": [...], "budget_bands": [...]}``.

    ``model`` is the run's :class:`TrainedModel`, ``outcome`` its :class:`AllocationOutcome`. ``budget_bands``:
    for ``n_bands`` budgets from 0 to twice the campaign's, the doubly robust estimate (with its 95% interval)
    of the incremental conversions and net revenue that the optimal policy at that budget brings, from the
    training campaign's rows and out-of-fold predictions (always held-out, with or without truth).
    """
    from promo_opt.data import read_table

    treat = ~outcome.holdout
    n_treatable = int(treat.sum())
    sub = outcome.econ.subset(treat)
    budget = outcome.budget if outcome.budget else float(outcome.summary["expected"]["spend"])
    # the strategies fill the expected spend the optimized list holds (the budget held on the forecast)
    fill = outcome.allocated_budget if outcome.allocated_budget else budget
    held = _HeldOut(config, model, n_treatable, outcome.allocated_cost_weight)
    bands = held.bands(np.linspace(0.0, 2.0 * budget, n_bands), outcome.allocated_min_roi, n_boot)
    if config.data.truth is not None:
        from promo_opt.evaluation.truth import truth_economics

        pols = baseline_policies(sub, config, outcome.arm[treat], fill, outcome.allocated_min_roi, seed=config.seed)
        rules = []
        if config.targeting_rules:
            features = candidate_features(config, model.features, outcome.ids)[treat].reset_index(drop=True)
            rules = rule_policies(sub, config, features, fill, seed=config.seed)
            pols.update({r.strategy: r.arm for r in rules})
        true = truth_economics(config, outcome.ids, read_table(config.data.truth, "truth")).subset(treat)
        rows = [_row(name, arm, true.totals(arm), config.objective) for name, arm in pols.items()]
        out = {"scored_by": "simulated truth (exact)", "budget": budget, "rows": rows, "budget_bands": bands}
        if rules:
            out["targeting_rules"] = [r.as_dict() for r in rules]
        return out
    out = held.compare(fill, outcome.allocated_min_roi, n_boot)
    out["budget"] = budget
    out["budget_bands"] = bands
    return out


def candidate_features(config: CampaignConfig, features: list[str], ids: np.ndarray) -> pd.DataFrame:
    """The feature columns of the candidates ``ids`` (in that order), for the targeting rules."""
    from promo_opt.data import load_candidates
    from promo_opt.targeting import check_rules

    cand = load_candidates(config, features)
    X = cand.X.set_index(pd.Index(cand.ids))
    absent = pd.Index(ids).difference(X.index)
    if len(absent):
        raise DataError(f"candidates {config.data.candidates}: no features for {len(absent)} scored id(s), "
                        f"e.g. {list(absent[:3])}")
    X = X.loc[ids].reset_index(drop=True)
    # types only: a level the candidates lack is an empty segment, not an error (the values were checked on train)
    check_rules(config.targeting_rules, X, f"the feature columns of candidates {config.data.candidates}", values=False)
    return X


# Above this many training rows the comparison is valued on a random sample of them: 19 doubly robust
# estimates with 200 bootstrap draws each took 158 s of a 2.5-minute run at 1M rows (bench_default).
HELD_OUT_ROWS = 200_000


class _HeldOut:
    """The training campaign's rows with out-of-fold predictions: policies rebuilt there are valued by DR
    and scaled from the training population to the ``n_treatable`` candidates. ``cost_weight``: the net
    revenue's weight on spend the list was allocated with (``AllocationOutcome.allocated_cost_weight``)."""

    def __init__(self, config: CampaignConfig, model, n_treatable: int, cost_weight: float = 1.0):
        from promo_opt.data import load_training

        self.config = config
        self.data, _ = load_training(config)
        self.oof = model.uplift.oof_
        if len(self.data.arm) > HELD_OUT_ROWS:  # a seeded random sample: unbiased, its intervals a bit wider
            rows = np.sort(np.random.default_rng([config.seed, 6007]).choice(len(self.data.arm), HELD_OUT_ROWS,
                                                                              replace=False))
            self.data, self.oof = self.data.subset(rows), self.oof[rows]
        Z = model.preprocessor.transform(self.data.X)
        self.vhat = model.value_model.predict(Z) if model.value_model is not None else np.ones(len(self.data.arm))
        self.econ = campaign_economics(config, self.oof, self.vhat)
        self.n_treatable = n_treatable
        self.scale = n_treatable / len(self.data.arm)
        self.cost_weight = cost_weight

    def optimal(self, budget: float | None, min_roi: float | None) -> np.ndarray:
        from promo_opt.economics import build_problem

        b = None if budget is None else budget / self.scale
        full = build_problem(self.econ, self.config, budget=b, min_roi=min_roi, cost_weight=self.cost_weight)
        return solve(AllocationProblem(full.gain, full.spend, full.revenue, budget=b, min_roi=min_roi),
                     solver="dual").arm

    def value(self, arm: np.ndarray, n_boot: int):
        from promo_opt.evaluation.ope import evaluate_policy

        d = self.data
        return evaluate_policy(arm, d.arm, d.converted, d.value, self.config.ordered_arms, propensity=d.propensity,
                               mu=self.oof, vhat=self.vhat, n_boot=n_boot, seed=self.config.seed)["dr"]

    def bands(self, budgets, min_roi, n_boot: int) -> list[dict]:
        out = []
        for b in budgets:
            try:
                arm = self.optimal(float(b), min_roi)
            except PromoOptError as err:  # e.g. the ROI floor cannot be met at this budget
                log.info("budget band at %s skipped (%s)", b, err)
                continue
            dr = self.value(arm, n_boot)
            row = {"budget": float(b), "expected_spend": float(self.econ.spend[np.arange(len(arm)), arm].sum() * self.scale)}
            for q in ("incremental_conversions", "spend"):
                iv = dr[q]
                row.update({q: iv.estimate * self.scale, f"{q}_ci_low": iv.ci_low * self.scale,
                            f"{q}_ci_high": iv.ci_high * self.scale})
            out.append(row)
        return out

    def compare(self, budget: float, min_roi, n_boot: int) -> dict:
        """Without truth: the strategies rebuilt on the training rows and valued by DR."""
        b = budget / self.scale
        pols = baseline_policies(self.econ, self.config, self.optimal(budget, min_roi), b, min_roi, seed=self.config.seed)
        # the rules read the training rows' own features (checked against them by load_training)
        rules = rule_policies(self.econ, self.config, self.data.X.reset_index(drop=True), b, seed=self.config.seed)
        pols.update({r.strategy: r.arm for r in rules})
        rows = []
        for name, arm in pols.items():
            dr = self.value(arm, n_boot)
            totals = {q: dr[q].estimate * self.scale for q in ("incremental_conversions", "incremental_revenue", "spend")}
            row = _row(name, arm, totals, self.config.objective)
            row["users_treated"] = int(round(row["users_treated"] * self.scale))
            row["ci_low"] = dr["incremental_conversions"].ci_low * self.scale
            row["ci_high"] = dr["incremental_conversions"].ci_high * self.scale
            rows.append(row)
        out = {"scored_by": f"doubly robust estimate on the training campaign (out-of-fold predictions), scaled to "
                             f"{self.n_treatable:,} users; 95% intervals of incremental conversions",
                "budget": budget, "rows": rows}
        if rules:
            out["targeting_rules"] = [r.as_dict(self.scale) for r in rules]
        return out
