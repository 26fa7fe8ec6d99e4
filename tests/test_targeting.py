"""Targeting rules (issue 14, "from drivers to targeting"): the rule grammar and its errors, the config
contract, a rule as a strategy of the policy comparison (valued by the truth, checked against totals computed
by hand from the truth table; and by DR on the training rows), and the rules a drivers run suggests."""

import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt.config import parse_config
from promo_opt.errors import ConfigError
from promo_opt.targeting import RuleSyntaxError, parse_rule
from tests.conftest import invoke, write_config

FRAME = pd.DataFrame({"homeowner": [1, 0, 1, np.nan, 0], "loyalty": ["gold", "none", None, "silver", "none"],
                      "age": [20, 40, 60, 30, 35], "member": [True, False, True, False, True],
                      "odd col": [1.0, 2.0, 3.0, 4.0, 5.0]})


# -- grammar ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rule, rows", [
    ("homeowner == 1", [0, 2]),
    ("homeowner != 1", [1, 4]),  # a missing value matches no condition, != included
    ("loyalty == 'gold'", [0]),
    ('loyalty != "gold"', [1, 3, 4]),
    ("age >= 35 and homeowner == 0", [1, 4]),
    ("loyalty == 'gold' or (age >= 35 and homeowner == 1)", [0, 2]),
    ("(age < 30 or age > 50) and member == True", [0, 2]),
    ("member == 1 and age<=35", [0, 4]),
    ("`odd col` > 2.5e0", [2, 3, 4]),
    ("age > -1 and age < 1e9", [0, 1, 2, 3, 4]),
])
def test_rule_selects_the_rows_pandas_would(rule, rows):
    r = parse_rule(rule)
    assert r.problems(FRAME) == []
    assert np.flatnonzero(r.mask(FRAME)).tolist() == rows


@pytest.mark.parametrize("rule, msg", [
    ("", 'the rule is empty; expected e.g. "homeowner == 1"'),
    ("homeowner = 1", "single '=' at position 11; compare with '=='"),
    ("homeowner ==", "expected a value (a number, 'text', True or False) after '==' at position 13, got the end of "
                     "the rule"),
    ("loyalty == gold", "expected a value (a number, 'text', True or False) after '==' at position 12, got 'gold' "
                        "(text goes in quotes)"),
    ("loyalty == 'gold", "text opened with ' at position 12 is never closed; expected a closing '"),
    ("(age > 1", "missing ')' for the '(' at position 1; got the end of the rule at position 9"),
    ("age > 1)", "unexpected ')' without its '(' at position 8 after a complete condition; join conditions with "
                 "'and' or 'or'"),
    ("age > 1 homeowner == 1", "unexpected 'homeowner' at position 9 after a complete condition"),
    ("age > 1 & member == 1", "unexpected character '&' at position 9; write 'and'"),
    ("age is 1", "expected a comparison (==, !=, <=, >=, <, >) after column 'age' at position 5, got 'is'"),
    ("1 == age", "expected a column name at position 1, got '1'"),
    ("age > 1 and", "expected a column name at position 12, got the end of the rule"),
    ("loyalty >= 'a'", "'>=' at position 9 compares text; text compares with == or != only"),
    ("__import__('os') == 1", "expected a comparison (==, !=, <=, >=, <, >) after column '__import__' at position 11, "
                              "got '('"),
])
def test_rule_syntax_errors_say_where_and_what_was_expected(rule, msg):
    with pytest.raises(RuleSyntaxError) as err:
        parse_rule(rule)
    assert msg in str(err.value)


@pytest.mark.parametrize("rule, msg", [
    ("homeownr == 1", "unknown column 'homeownr'; expected one of the feature columns ['homeowner', 'loyalty', "
                      "'age', 'member', 'odd col']"),
    ("loyalty == 1", "column 'loyalty' holds text, got 1; expected quoted text, e.g. loyalty == '1'"),
    ("age == 'old'", "column 'age' holds numbers, got the text 'old'; expected a number, e.g. age == 1"),
    ("loyalty == 'platinum'", "column 'loyalty' never holds 'platinum'; its values: ['gold', 'none', 'silver']"),
])
def test_rule_against_the_data_names_the_column_and_what_was_expected(rule, msg):
    assert parse_rule(rule).problems(FRAME) == [msg]


# -- config -----------------------------------------------------------------------------------
BASE = {"data": {"train": "t.csv"}, "arms": [{"name": "control", "control": True}, {"name": "pct10"}]}


@pytest.mark.parametrize("rules, msg", [
    ([{"name": "owners", "rule": "homeowner =="}],
     "key 'targeting_rules.0.rule': rule 'owners': expected a value (a number, 'text', True or False) after '==' at "
     "position 13, got the end of the rule (got 'homeowner ==')"),
    ([{"name": "owners", "rule": "homeowner == 1", "arm": "pct15"}],
     "targeting_rules.0 'owners': arm 'pct15' is not an arm of this config; expected one of the promotion arms "
     "['pct10'] (or no arm: the best one for the segment)"),
    ([{"name": "owners", "rule": "homeowner == 1", "arm": "control"}],
     "targeting_rules.0 'owners': arm 'control' is the control arm"),
    ([{"name": "a", "rule": "x == 1"}, {"name": "a", "rule": "x == 2"}],
     "targeting_rules.0: the name 'a' is used by more than one rule"),
    ([{"name": "a", "rule": "x == 1", "arms": "pct10"}], "unknown key 'targeting_rules.0.arms'"),
])
def test_bad_rules_in_the_config_are_one_clear_error(rules, msg):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "targeting_rules": rules}, source="c.yaml")
    assert msg in str(err.value)


def test_rule_columns_checked_before_any_fit_and_nothing_written(campaign_copy, tmp_path):
    d, raw = campaign_copy
    cases = [("homeownr == 1", "targeting_rules.0 'bad' (homeownr == 1): unknown column 'homeownr'; expected one of "
                               "the feature columns ['age', 'bookings_12m'"),
             ("loyalty == 'platnum'", "column 'loyalty' never holds 'platnum'; its values: ['gold', 'none', 'silver']"),
             ("device == 2", "column 'device' holds text, got 2; expected quoted text, e.g. device == '2'")]
    for i, (rule, msg) in enumerate(cases):
        path = write_config(d, {**raw, "targeting_rules": [{"name": "bad", "rule": rule}]})
        r = invoke("run", path, "--out", tmp_path / f"o{i}")
        assert r.exit_code == 2 and msg in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / f"o{i}").exists()


# -- a rule as a strategy of the policy comparison -------------------------------------------------
def test_rule_policy_fills_the_budget_in_random_order_and_picks_the_best_arm(small_campaign):
    from promo_opt.economics import compute_economics
    from promo_opt.evaluation.policies import rule_policies

    raw = yaml.safe_load(small_campaign.read_text())
    raw["targeting_rules"] = [{"name": "young", "rule": "age < 40"}, {"name": "young10", "rule": "age < 40",
                                                                      "arm": "pct10"}]
    cfg = parse_config(raw, base_dir=small_campaign.parent)
    rng = np.random.default_rng(1)
    n = 600
    X = pd.DataFrame({"age": rng.integers(18, 80, n)})
    p = np.full((n, 4), 0.05)
    p[:, 2] += np.where(X["age"] < 40, 0.10, 0.0)  # pct10 is the best arm for the young, by far
    p[:, 1] += 0.01
    p[:, 3] += 0.02
    econ = compute_economics(p, rng.uniform(50, 400, n), cfg.ordered_arms)
    young = (X["age"] < 40).to_numpy()
    rows = np.arange(n)
    for budget in (1e9, 200.0):
        pols = {r.name: r for r in rule_policies(econ, cfg, X, budget, seed=0)}
        assert pols["young"].arm_name == "pct10" and pols["young"].arm_from == "most expected gain in the segment"
        assert pols["young10"].arm_from == "config" and pols["young"].matching_users == young.sum()
        for r in pols.values():
            got = r.arm != 0
            assert set(r.arm[got]) == {2} and not (got & ~young).any()
            spend = econ.spend[rows, r.arm].sum()
            assert spend <= budget + 1e-9
            if budget == 1e9:
                assert (got == young).all()
            else:  # taken in order until the next would break the budget: nothing left that fits the gap
                left = young & ~got
                assert left.any() and budget - spend < econ.spend[left, 2].max()


@pytest.fixture(scope="module")
def fitted(small_campaign, tmp_path_factory):
    """A quick model of the small campaign (one fast learner, 2 folds), its scores and allocation, with two rules."""
    from promo_opt import pipeline

    raw = yaml.safe_load(small_campaign.read_text())
    raw["model"] = {"learner": "pooled_smooth", "folds": 2}
    raw["targeting_rules"] = [
        {"name": "cheap_new", "rule": "loyalty == 'none' and bookings_12m == 0 and avg_stay_price < 200",
         "arm": "pct20"},
        {"name": "no_loyalty", "rule": "loyalty == 'none'"}]
    cfg = parse_config(raw, base_dir=small_campaign.parent)
    model = pipeline.train(cfg)
    scores = pipeline.score_candidates(cfg, model)
    outcome = pipeline.allocate(cfg, scores, correction=model.metrics.get("forecast_correction"))
    return cfg, model, scores, outcome


def _hand_totals(cfg, cand, truth, users, arm: str) -> dict:
    """True totals of giving ``arm`` to ``users`` (ids), from the truth table and the arm's discount alone."""
    t = truth.set_index("user_id").loc[users]
    disc = next(a.discount for a in cfg.arms if a.name == arm)
    lift = t[f"p_{arm}"] - t["p_control"]
    return {"users_treated": len(users), "incremental_conversions": lift.sum(),
            "incremental_revenue": (lift * t["value"]).sum(), "spend": (t[f"p_{arm}"] * disc * t["value"]).sum()}


def test_rule_strategy_scored_by_the_truth_matches_a_hand_computed_total(fitted):
    from promo_opt.evaluation.policies import compare_policies

    cfg, model, scores, outcome = fitted
    comp = compare_policies(cfg, model, outcome, n_boot=20, n_bands=2)
    names = [r["policy"] for r in comp["rows"]]
    assert names[0] == "optimized" and names[-2:] == ["rule: cheap_new", "rule: no_loyalty"]
    rows = {r["policy"]: r for r in comp["rows"]}
    info = {r["name"]: r for r in comp["targeting_rules"]}
    cand = pd.read_csv(cfg.data.candidates).set_index("user_id").loc[outcome.ids[~outcome.holdout]]
    truth = pd.read_parquet(cfg.data.truth)
    # the narrow segment fits the budget: every treatable user in it gets pct20, whatever the order
    seg = cand[(cand["loyalty"] == "none") & (cand["bookings_12m"] == 0) & (cand["avg_stay_price"] < 200)].index
    assert 50 < len(seg) and info["cheap_new"] == {"name": "cheap_new", "rule": cfg.targeting_rules[0].rule,
                                                   "arm": "pct20", "arm_from": "config", "matching_users": len(seg),
                                                   "users_treated": len(seg)}
    hand = _hand_totals(cfg, cand, truth, seg, "pct20")
    for k, v in hand.items():
        assert rows["rule: cheap_new"][k] == pytest.approx(v, rel=1e-9), k
    # the wide segment does not: the budget binds (by the model's expected spend), the arm is the model's choice
    wide = cand[cand["loyalty"] == "none"].index
    r = rows["rule: no_loyalty"]
    assert info["no_loyalty"]["matching_users"] == len(wide) > r["users_treated"] > 0
    assert info["no_loyalty"]["arm_from"] == "most expected gain in the segment"
    # the arm: of the three budget-filled policies (same order), the one the model expects to convert most
    p = scores.set_index("user_id")
    gain = {}
    for a in ("pct5", "pct10", "pct20"):
        rules = [cfg.targeting_rules[0], cfg.targeting_rules[1].model_copy(update={"arm": a})]
        ids = _treated(cfg.model_copy(update={"targeting_rules": rules}), outcome, "no_loyalty").index
        gain[a] = (p.loc[ids, f"p_{a}"] - p.loc[ids, "p_control"]).sum()
    assert info["no_loyalty"]["arm"] == max(gain, key=gain.get) and len(set(gain.values())) == 3
    pols = _treated(cfg, outcome, "no_loyalty")
    assert set(pols.index) <= set(wide) and len(pols) == r["users_treated"]
    hand = _hand_totals(cfg, cand, truth, pols.index, info["no_loyalty"]["arm"])
    for k, v in hand.items():
        assert r[k] == pytest.approx(v, rel=1e-9), k
    # the strategies fill the expected spend the optimized list holds (the budget held on the forecast)
    assert comp["budget"] == outcome.budget and pols["expected_spend"].sum() <= outcome.allocated_budget + 1e-6


def _treated(cfg, outcome, name):
    """The users a rule treats (ids) with their expected spend, rebuilt from the public function."""
    from promo_opt.evaluation.policies import candidate_features, rule_policies

    treat = ~outcome.holdout
    X = candidate_features(cfg, list(pd.read_csv(cfg.data.candidates).columns.drop("user_id")), outcome.ids)
    sub = outcome.econ.subset(treat)
    rp = next(r for r in rule_policies(sub, cfg, X[treat].reset_index(drop=True), outcome.allocated_budget, seed=cfg.seed)
              if r.name == name)
    got = rp.arm != 0
    return pd.DataFrame({"expected_spend": sub.spend[np.flatnonzero(got), rp.arm[got]]},
                        index=pd.Index(outcome.ids[treat][got], name="user_id"))


def test_rule_strategy_without_truth_is_valued_by_dr_on_the_training_rows(fitted):
    from promo_opt.evaluation.policies import compare_policies

    cfg, model, _, outcome = fitted
    blind = cfg.model_copy(update={"data": cfg.data.model_copy(update={"truth": None})})
    comp = compare_policies(blind, model, outcome, n_boot=100, n_bands=2)
    assert comp["scored_by"].startswith("doubly robust")
    rows = {r["policy"]: r for r in comp["rows"]}
    info = {r["name"]: r for r in comp["targeting_rules"]}
    train = pd.read_csv(cfg.data.train)
    n_cand = int((~outcome.holdout).sum())
    seg = (train["loyalty"] == "none") & (train["bookings_12m"] == 0) & (train["avg_stay_price"] < 200)
    assert info["cheap_new"]["matching_users"] == round(seg.sum() * n_cand / len(train))
    r = rows["rule: cheap_new"]
    assert r["users_treated"] == info["cheap_new"]["users_treated"] == info["cheap_new"]["matching_users"]
    # the truth of the same segment among the candidates, within the DR interval (scaled to the candidates)
    cand = pd.read_csv(cfg.data.candidates).set_index("user_id").loc[outcome.ids[~outcome.holdout]]
    cseg = cand[(cand["loyalty"] == "none") & (cand["bookings_12m"] == 0) & (cand["avg_stay_price"] < 200)].index
    truth = _hand_totals(cfg, cand, pd.read_parquet(cfg.data.truth), cseg, "pct20")
    per_user = truth["incremental_conversions"] / len(cseg) * r["users_treated"]
    assert r["ci_low"] <= per_user <= r["ci_high"], (r, per_user)
    assert r["ci_low"] <= r["incremental_conversions"] <= r["ci_high"]


def test_report_lists_the_rules_with_their_arm_and_users():
    from promo_opt.report.policies import policy_comparison_section

    row = {"users_treated": 10, "incremental_conversions": 1.0, "incremental_revenue": 5.0, "spend": 2.0, "roi": 2.5,
           "net_revenue": 3.0}
    comp = {"scored_by": "simulated truth (exact)", "budget": 5.0,
            "rows": [{"policy": "optimized", **row}, {"policy": "rule: owners", **row}],
            "targeting_rules": [{"name": "owners", "rule": "homeowner == 1 and age < 40", "arm": "pct10",
                                 "arm_from": "config", "matching_users": 1234, "users_treated": 10}]}
    html = "".join(policy_comparison_section(comp, "conversions"))
    assert ("<b>rule: owners</b> <code>homeowner == 1 and age &lt; 40</code>: 1,234 users match, 10 get <b>pct10</b> "
            "(config)") in html


# -- from drivers to rules ----------------------------------------------------------------------
def test_drivers_suggest_the_known_driver_as_a_rule_to_paste(tmp_path):
    from promo_opt.graph.worlds import load_graph_world

    w = load_graph_world("promo_funnel")
    df = w.sample(20000, seed=11)
    df.to_csv(tmp_path / "funnel.csv", index_label="user_id")
    tiers = [["age"], ["homeowner", "new_user"], ["promo"], ["entered_room", "switched_room"], ["add_to_cart"],
             ["complaint"]]
    drivers = {"data": "funnel.csv", "id": "user_id", "outcome": "add_to_cart", "tiers": tiers, "bootstrap": 5,
               "effect_bootstrap": 50, "targetable": ["age", "homeowner", "new_user"]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"name": "funnel", "drivers": drivers}))
    r = invoke("drivers", tmp_path / "d.yaml", "--out", tmp_path / "dr")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "dr" / "suggested_rules.yaml").read_text()
    block = yaml.safe_load(text)["targeting_rules"]
    # homeowner is the strongest driver (true +0.33), age raises the outcome (its high side: the 75% quantile),
    # new users convert less (the segment is new_user == 0); promo is a driver but not targetable
    q75 = float(np.quantile(df["age"], 0.75))
    assert [b["rule"] for b in block] == ["homeowner == 1", f"age >= {q75:.10g}", "new_user == 0"]
    assert [b["name"] for b in block] == ["homeowner_1", "age_high", "new_user_0"]
    table = pd.read_csv(tmp_path / "dr" / "drivers.csv").set_index("variable")
    assert f"# homeowner: effect {table.loc['homeowner', 'effect']:+.4g}" in text
    assert "Suggested targeting rules" in (tmp_path / "dr" / "report.html").read_text()
    # pasted into a campaign config over the same columns, they parse and select the segments they say
    cfg = parse_config({**BASE, "targeting_rules": block})
    masks = [rule.parsed.mask(df) for rule in cfg.targeting_rules]
    assert (masks[0] == (df["homeowner"] == 1)).all() and (masks[1] == (df["age"] >= q75)).all()
    # an unknown targetable variable is refused before the search, nothing written
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "funnel", "drivers": {**drivers,
                                                                                      "targetable": ["agee"]}}))
    r = invoke("drivers", tmp_path / "bad.yaml", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "drivers.targetable names ['agee']" in r.output and not (tmp_path / "bad").exists()


def test_drivers_suggest_nothing_when_no_interval_excludes_zero(tmp_path):
    from promo_opt.graph.data import prepare_drivers_data
    from promo_opt.graph.drivers import driver_effects
    from promo_opt.graph.model import CausalGraph
    from promo_opt.graph.targeting import rules_yaml, suggest_rules
    from promo_opt.config import DriversConfig

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=500), "b": rng.integers(0, 2, 500)})
    df["y"] = rng.integers(0, 2, 500)
    data = prepare_drivers_data(df, DriversConfig(data="x.csv", outcome="y"))
    effects = driver_effects(data, CausalGraph(["a", "b", "y"], {("a", "y"), ("b", "y")}), B=50)
    assert all(e.ci_low <= 0 <= e.ci_high for e in effects)
    assert suggest_rules(data, effects, ["a", "b"]) == []
    assert yaml.safe_load(rules_yaml([], "y", "x")) == {"targeting_rules": []}
    from promo_opt.graph.targeting import SuggestedRule

    odd = SuggestedRule("tier_it's", "`plan tier` == \"it's\"", "plan tier", 0.1, 0.05, 0.15, "do(...)")
    assert yaml.safe_load(rules_yaml([odd], "y", "x"))["targeting_rules"][0]["rule"] == odd.rule
    assert parse_rule(odd.rule).mask(pd.DataFrame({"plan tier": ["it's", "no"]})).tolist() == [True, False]
