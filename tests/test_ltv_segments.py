"""Long-term value per segment (issue 13, ltv.segment): per-level valuation, bad input."""

import json

import numpy as np
import pytest
import yaml

from promo_opt.config import parse_config
from promo_opt.errors import ConfigError, DataError
from promo_opt.ltv.panel import check_panel
from promo_opt.ltv.simulate import load_panel_world, segmented_panel
from promo_opt.ltv.valuation import estimate_ltv
from tests.conftest import invoke

WORLDS = {"habit": "habit", "pull": "pull_forward"}  # tier level -> panel world: a habit, and pull-forward


@pytest.fixture(scope="module")
def worlds():
    return {lv: load_panel_world(w) for lv, w in WORLDS.items()}


def _ltv_raw(worlds, boot=100, **ltv):
    raw = worlds["habit"].campaign_config("in-memory", boot=boot)
    raw["ltv"].update({"segment": "tier", "segment_min_customers": 500, **ltv})
    return raw


@pytest.fixture(scope="module")
def segmented(worlds):
    """2 x 2500 customers x 52 weeks, tier also a control (dropped from each level's own fit), 100 replicates."""
    panel = segmented_panel(worlds, "tier", seed=0, customers=2500)
    cfg = parse_config(_ltv_raw(worlds, controls=["age", "loyalty", "tier"]))
    return panel, cfg, estimate_ltv(cfg, panel=panel)


def test_segment_values_cover_the_truth_and_pooled_lies_between(worlds, segmented):
    _, _, res = segmented
    d = res.to_dict()
    seg = d["segments"]["tier"]
    assert set(seg) == {"habit", "pull"} and not d["notes"]
    for lv, w in worlds.items():
        truth = w.true_values()
        for arm in ("discount_5", "discount_20"):
            v = seg[lv][arm]
            assert v["source"] == "segment" and v["n_customers"] == 2500
            lt = v["long_term"]
            assert lt["ci_low"] <= truth[arm]["long_term"] <= lt["ci_high"], (lv, arm, lt, truth[arm])
            m_true = truth[arm]["long_term"] / truth[arm]["immediate"]
            m = v["multiplier"]
            assert m["ci_low"] <= m_true <= m["ci_high"], (lv, arm, m, m_true)
    for arm in ("discount_5", "discount_20"):
        pooled = d["arms"][arm]
        hab, pull = worlds["habit"].true_values()[arm], worlds["pull"].true_values()[arm]
        assert pull["long_term"] < pooled["long_term"]["estimate"] < hab["long_term"]
        assert pull["long_term"] / pull["immediate"] < pooled["multiplier"]["estimate"] \
            < hab["long_term"] / hab["immediate"]
        # the single multiplier is far off for both levels (habit x2.5, pull-forward x0.3 in truth)
        assert seg["habit"][arm]["multiplier"]["estimate"] > 1.8 * pooled["multiplier"]["estimate"]
        assert seg["pull"][arm]["multiplier"]["estimate"] < 0.5 * pooled["multiplier"]["estimate"]


def test_small_level_gets_the_pooled_values_with_the_reason(worlds):
    panel = segmented_panel(worlds, "tier", seed=1, customers=1200)
    few = panel.user_id.isin(panel.user_id.unique()[:300])
    panel.loc[few, "tier"] = "new"  # 300 customers of the habit world
    res = estimate_ltv(parse_config(_ltv_raw(worlds, boot=0)), panel=panel)
    seg = res.to_dict()["segments"]["tier"]
    assert {lv: seg[lv]["discount_20"]["source"] for lv in seg} == {"habit": "segment", "pull": "segment",
                                                                     "new": "pooled"}
    assert seg["new"]["discount_20"]["n_customers"] == 300
    assert "300 customers, fewer than ltv.segment_min_customers = 500" in seg["new"]["discount_20"]["reason"]
    assert seg["new"]["discount_20"]["multiplier"] == res.to_dict()["arms"]["discount_20"]["multiplier"]
    assert any("'new': pooled values" in n for n in res.notes)


def test_cli_ltv_with_segment_writes_every_level(worlds, tmp_path):
    segmented_panel(worlds, "tier", seed=3, customers=600).to_csv(tmp_path / "panel.csv", index=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_ltv_raw(worlds, boot=20, panel="panel.csv")))
    r = invoke("ltv", tmp_path / "c.yaml", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "o" / "ltv.json").read_text())
    e = d["segments"]["tier"]["habit"]["discount_20"]
    assert set(e) == {"immediate", "long_term", "multiplier", "n_customers", "source"}
    assert e["n_customers"] == 600 and e["long_term"]["ci_low"] < e["long_term"]["estimate"] < e["long_term"]["ci_high"]
    assert "tier=habit (600 customers, segment): discount_5 multiplier" in r.output
    assert "Per level of 'tier'" in (tmp_path / "o" / "report.html").read_text()


# -------------------------------------------------------------------------------- bad input
def _small_panel(worlds, n=60):
    return segmented_panel(worlds, "tier", seed=2, customers=n)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.drop(columns=["tier"]),
     "no column 'tier' (ltv.segment); expected a time-invariant column of the panel"),
    (lambda d: d.assign(tier=np.where(d.week == 7, "gold", d.tier)),
     "column 'tier' (ltv.segment) changes within user_id=0 (from 'habit' to 'gold'); expected one level per customer"),
    (lambda d: d.assign(tier=d.user_id.astype(str)),
     "column 'tier' (ltv.segment) has 120 levels, e.g. ['0', '1', '10', '100', '101']; expected at most 20"),
])
def test_panel_segment_bad_input(worlds, mutate, message):
    cfg = parse_config(_ltv_raw(worlds, boot=0))
    with pytest.raises(DataError) as e:
        check_panel(mutate(_small_panel(worlds)), cfg.ltv, cfg.arm_names)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_cli_ltv_bad_segment_one_line_nothing_written(worlds, tmp_path):
    _small_panel(worlds).drop(columns=["tier"]).to_csv(tmp_path / "panel.csv", index=False)
    raw = _ltv_raw(worlds, boot=0, panel="panel.csv")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    r = invoke("ltv", tmp_path / "c.yaml", "--out", tmp_path / "o")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "no column 'tier' (ltv.segment)" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("ltv, message", [
    ({"segment": "bookings"}, "ltv.segment: 'bookings' is the customer, week or treatment column or a modelled"),
    ({"segment": "tier", "multipliers": {"discount_5": 1.0, "discount_20": 2.0}, "panel": None},
     "ltv.segment 'tier': per-segment multipliers come from ltv.values"),
])
def test_segment_config_errors(worlds, ltv, message):
    raw = _ltv_raw(worlds)
    raw["ltv"].update(ltv)
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert message in str(e.value)
