"""Every config/data error path names the key/column/value, and happens before any output."""

import pandas as pd
import pytest

from promo_opt.config import load_config, parse_config
from promo_opt.data import load_training
from promo_opt.errors import ConfigError, DataError
from tests.conftest import write_config

BASE = {
    "data": {"train": "t.csv", "candidates": "c.csv", "id": "user_id", "value": "order_value"},
    "arms": [{"name": "control", "control": True}, {"name": "pct10", "discount": 0.1}],
    "constraints": {"budget": 100},
}


def _raw(**upd):
    import copy

    r = copy.deepcopy(BASE)
    for k, v in upd.items():
        node = r
        *ps, leaf = k.split(".")
        for p in ps:
            node = node[p]
        node[leaf] = v
    return r


def test_valid_config_and_defaults():
    cfg = parse_config(_raw())
    assert cfg.objective == "conversions" and cfg.seed == 0 and cfg.holdout.fraction == 0
    assert cfg.arm_names == ["control", "pct10"]
    assert cfg.data.features == "auto" and cfg.model.learner == "auto" and cfg.solver == "auto"


def test_control_column_first_whatever_the_order():
    raw = _raw(arms=[{"name": "v5", "cost_per_conversion": 5}, {"name": "ctl", "control": True}])
    assert parse_config(raw).arm_names == ["ctl", "v5"]


@pytest.mark.parametrize("raw, needle", [
    (_raw(budjet=5), "unknown key 'budjet'"),
    (_raw(**{"data.trian": "x.csv"}), "unknown key 'data.trian'"),
    (_raw(**{"arms": [{"name": "control", "control": True}, {"name": "p", "discount": -0.1}]}), "arms.1.discount"),
    (_raw(**{"arms": [{"name": "control", "control": True}, {"name": "v", "cost_per_conversion": -5}]}), "arms.1.cost_per_conversion"),
    (_raw(**{"arms": [{"name": "control", "control": True}, {"name": "m", "cost_per_send": -1}]}), "arms.1.cost_per_send"),
    (_raw(**{"arms": [{"name": "a"}, {"name": "b"}]}), "exactly one arm must have control: true"),
    (_raw(**{"arms": [{"name": "a", "control": True}, {"name": "a"}]}), "repeated: ['a']"),
    (_raw(**{"arms": [{"name": "c", "control": True, "discount": 0.1}, {"name": "b"}]}), "cannot have a cost"),
    (_raw(**{"constraints.budget": -1}), "constraints.budget"),
    (_raw(**{"constraints.min_roi": -0.5}), "constraints.min_roi"),
    (_raw(objective="revenue"), "key 'objective'"),
    (_raw(**{"holdout": {"fraction": 1.5}}), "holdout.fraction"),
    (_raw(**{"data": {"id": "user_id"}}), "arms ['pct10'] give a percentage discount"),
    ({"arms": BASE["arms"]}, "missing required key 'data'"),
])
def test_config_errors_name_the_key(raw, needle):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert needle in str(e.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_paths_relative_to_config_and_overrides(tmp_path):
    p = write_config(tmp_path, _raw())
    cfg = load_config(p, **{"constraints.budget": 7.5, "constraints.min_roi": None})
    assert cfg.data.train == (tmp_path / "t.csv").resolve()
    assert cfg.constraints.budget == 7.5


def _edit_train(d, fn):
    df = pd.read_csv(d / "train.csv")
    fn(df)
    df.to_csv(d / "train.csv", index=False)


@pytest.mark.parametrize("edit, needle", [
    (lambda df: df.__setitem__("arm", df["arm"].where(df.index != 5, "pct99")), "arm(s) ['pct99'] that the config does not name"),
    (lambda df: df.__setitem__("converted", df["converted"].where(df.index != 3, 2)), "column 'converted' (data.outcome) must be binary 0/1; found ['2']"),
    (lambda df: df.__delitem__("converted"), "missing column(s) ['converted']"),
    (lambda df: df.__setitem__("user_id", df["user_id"].where(df.index != 1, df["user_id"][0])), "must be unique"),
    (lambda df: df.__setitem__("order_value", df["order_value"].where(df["converted"] == 0, -3.0)), "column 'order_value' (data.value)"),
    (lambda df: df.__setitem__("arm", df["arm"].where(df["arm"] != "pct5", "pct10")), "arm(s) ['pct5'] have no rows"),
])
def test_training_data_errors_name_the_column(campaign_copy, edit, needle):
    d, raw = campaign_copy
    _edit_train(d, edit)
    cfg = load_config(write_config(d, raw))
    with pytest.raises(DataError) as e:
        load_training(cfg)
    assert needle in str(e.value)


def test_missing_feature_column_named(campaign_copy):
    d, raw = campaign_copy
    cols = list(pd.read_csv(d / "candidates.csv", nrows=1).columns)
    raw["data"]["features"] = [cols[1], "no_such_feature"]
    with pytest.raises(DataError, match=r"missing column\(s\) \['no_such_feature'\]"):
        load_training(load_config(write_config(d, raw)))


def test_identifier_like_feature_rejected(campaign_copy):
    from promo_opt.features import FeaturePreprocessor

    X = pd.DataFrame({"email": [f"user{i}@x.com" for i in range(1000)], "age": range(1000)})
    with pytest.raises(DataError, match="'email' has 1000 distinct text values"):
        FeaturePreprocessor().fit(X)


def test_features_round_trip_unseen_levels_and_bad_numbers():
    from promo_opt.features import FeaturePreprocessor

    tr = pd.DataFrame({"c": ["a", "b", None, "a"], "x": [1.0, None, 3.0, 4.0]})
    pre = FeaturePreprocessor().fit(tr)
    out = pre.transform(pd.DataFrame({"c": ["b", "zzz"], "x": [2, None]}))
    assert list(out["c"].cat.categories) == ["a", "b"]
    assert out["c"].isna().tolist() == [False, True]  # unseen level -> missing
    assert out["x"].dtype == float
    with pytest.raises(DataError, match="'x' was numeric in training"):
        pre.transform(pd.DataFrame({"c": ["a"], "x": ["ten"]}))
    with pytest.raises(DataError, match=r"\['x'\] are missing"):
        pre.transform(pd.DataFrame({"c": ["a"]}))


def test_shipped_policies_are_valid_configs():
    from pathlib import Path

    paths = sorted((Path(__file__).resolve().parents[1] / "policies").glob("*.yaml"))
    assert paths, "policies/ should ship at least one example campaign"
    for p in paths:
        cfg = load_config(p)
        assert cfg.arm_names[0] == cfg.control.name


def test_level_codes_read_as_numbers_still_match_training_levels():
    from promo_opt.features import FeaturePreprocessor

    pre = FeaturePreprocessor().fit(pd.DataFrame({"tier": ["1", "2", "gold"]}))
    # the candidates file had a blank, so pandas read the codes as floats
    out = pre.transform(pd.DataFrame({"tier": [1.0, 2.0, None]}))
    assert out["tier"].astype(object).tolist()[:2] == ["1", "2"] and out["tier"].isna().tolist() == [False, False, True]


def test_json_has_no_bare_nan(tmp_path):
    import json

    from promo_opt.data import write_json

    write_json({"roi": float("nan"), "x": [1.0, float("inf")]}, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == {"roi": None, "x": [1.0, None]}
