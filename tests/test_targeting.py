"""Targeting rules (issue 14, "from drivers to targeting"): the rule grammar and its errors, the config
contract, a rule as a strategy of the policy comparison (valued by the truth, checked against totals computed
by hand from the truth table; and by DR on the training rows), and the rules a drivers run suggests."""

import numpy as np
import pandas as pd
import pytest

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
