"""Long-term value per segment (issue 13, ltv.segment): per-level valuation, per-user multipliers, bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt import pipeline
from promo_opt.config import parse_config
from promo_opt.data import prepare_candidates
from promo_opt.economics import compute_economics
from promo_opt.errors import ConfigError, DataError
from promo_opt.ltv.panel import check_panel
from promo_opt.ltv.simulate import load_panel_world, segmented_panel
from promo_opt.ltv.valuation import estimate_ltv, write_ltv
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


def _candidates(n: int, seed: int) -> pd.DataFrame:
    """Known per-user probabilities (the scores are the truth), half of the users in each tier, same uplift law."""
    rng = np.random.default_rng([seed, 77])
    p0 = rng.uniform(0.02, 0.12, n)
    u5 = rng.gamma(2.0, 0.008, n)
    u20 = u5 * rng.uniform(1.2, 3.5, n) + rng.gamma(1.5, 0.01, n)
    return pd.DataFrame({"user_id": np.arange(n), "value": rng.lognormal(np.log(80), 0.5, n), "p_control": p0,
                         "p_discount_5": np.minimum(p0 + u5, 1), "p_discount_20": np.minimum(p0 + u20, 1),
                         "tier": rng.choice(["habit", "pull"], n)})


def _allocation_config(worlds, values: Path, budget: float, segment: str | None) -> object:
    raw = worlds["habit"].campaign_config("in-memory", boot=0)
    raw.update(objective="long_term_value", constraints={"budget": budget})
    raw["ltv"] = {"values": str(values), **({"segment": segment} if segment else {})}
    return parse_config(raw)


def test_segment_multipliers_give_the_habit_tier_more_of_the_budget(worlds, segmented, tmp_path):
    """Same budget, same scores: per-tier multipliers move spend to the habit tier, and the true long-run
    net value (each user's incremental revenue x its tier's TRUE multiplier - spend) is higher."""
    _, cfg, res = segmented
    write_ltv(res, tmp_path / "ltv")
    scores = _candidates(20_000, 0)
    econ = compute_economics(scores[[f"p_{a}" for a in cfg.arm_names]].to_numpy(), scores["value"].to_numpy(),
                             cfg.ordered_arms)
    budget = 0.3 * float(econ.spend[:, -1].sum())
    true_m = {lv: np.array([1.0] + [t[a]["long_term"] / t[a]["immediate"] for a in cfg.arm_names[1:]])
              for lv, t in ((lv, w.true_values()) for lv, w in worlds.items())}
    M = np.stack([true_m[t] for t in scores["tier"]])
    got = {}
    for segment in (None, "tier"):
        out = pipeline.allocate(_allocation_config(worlds, tmp_path / "ltv" / "ltv.json", budget, segment), scores)
        rows = np.arange(len(out.arm))
        rev, spend = econ.incremental_revenue[rows, out.arm], econ.spend[rows, out.arm]
        habit = (scores["tier"] == "habit").to_numpy()
        got[segment] = {"habit_share": float(spend[habit].sum() / spend.sum()),
                        "true_value": float((rev * M[rows, out.arm] - spend).sum()), "summary": out.summary}
        assert spend.sum() <= budget * (1 + 1e-6)
    assert got["tier"]["habit_share"] > got[None]["habit_share"] + 0.2
    assert got[None]["habit_share"] == pytest.approx(0.5, abs=0.05)  # one multiplier: the tiers look alike
    assert got["tier"]["true_value"] > 1.05 * got[None]["true_value"]
    lt = got["tier"]["summary"]["long_term"]
    seg = res.to_dict()["segments"]["tier"]
    assert lt["segment"]["levels"]["habit"]["multipliers"]["discount_20"] == pytest.approx(
        seg["habit"]["discount_20"]["multiplier"]["estimate"])
    assert lt["segment"]["unseen"]["users"] == 0
    assert lt["multipliers"]["discount_20"] == pytest.approx(res.to_dict()["arms"]["discount_20"]["multiplier"]["estimate"])
    assert sum(v["long_term_value"] for v in lt["segment"]["levels"].values()) == pytest.approx(lt["long_term_value"])
    assert "segment" not in got[None]["summary"]["long_term"]


def test_unseen_level_gets_the_pooled_multiplier_and_is_counted(worlds, segmented, tmp_path):
    _, _, res = segmented
    write_ltv(res, tmp_path / "ltv")
    scores = _candidates(2000, 1)
    scores.loc[:99, "tier"] = "platinum"
    scores.loc[100:109, "tier"] = None
    cfg = _allocation_config(worlds, tmp_path / "ltv" / "ltv.json", 2000.0, "tier")
    ids, econ = pipeline.economics_from_scores(cfg, scores)
    pooled = np.array([1.0] + [res.arm(a).multiplier[0] for a in cfg.arm_names[1:]])
    assert econ.long_term_multiplier.shape == (2000, 3)
    assert np.allclose(econ.long_term_multiplier[:110], pooled)
    habit = np.flatnonzero(scores["tier"] == "habit")
    assert np.allclose(econ.long_term_multiplier[habit], [1.0] + [res.segments[0].arms[k].multiplier[0] for k in (0, 1)])
    # the gain is revenue x the user's own multipliers; a subset keeps each user's row
    assert np.allclose(econ.gain("long_term_value"), econ.incremental_revenue * econ.long_term_multiplier - econ.spend)
    assert np.array_equal(econ.subset(habit[:5]).long_term_multiplier, econ.long_term_multiplier[habit[:5]])
    out = pipeline.allocate(cfg, scores)
    unseen = out.summary["long_term"]["segment"]["unseen"]
    assert unseen["users"] == 110 and unseen["levels"] == {"platinum": 100, "<missing>": 10}


def test_scores_carry_the_segment_column(worlds, segmented, tmp_path):
    """'promo-opt score' writes each candidate's ltv.segment level next to its probabilities."""
    _, _, res = segmented
    write_ltv(res, tmp_path / "ltv")
    cfg = _allocation_config(worlds, tmp_path / "ltv" / "ltv.json", 1000.0, "tier")
    cands = _candidates(50, 3)

    class Model:  # the scoring contract only: probabilities and values of the candidates' features
        features = ["value"]

        def predict(self, X):
            return cands[[f"p_{a}" for a in cfg.arm_names]].to_numpy(), X["value"].to_numpy()

    scores = pipeline.score_candidates(cfg, Model(), prepare_candidates(cfg, cands, ["value"]))
    assert scores["tier"].tolist() == cands["tier"].tolist()
    assert pipeline.allocate(cfg, scores).summary["long_term"]["segment"]["column"] == "tier"


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


def test_candidates_and_scores_without_the_segment_column(worlds, segmented, tmp_path):
    _, _, res = segmented
    write_ltv(res, tmp_path / "ltv")
    cfg = _allocation_config(worlds, tmp_path / "ltv" / "ltv.json", 1000.0, "tier")
    scores = _candidates(200, 2)
    with pytest.raises(DataError, match=r"candidates .*: no column 'tier' \(ltv.segment\); expected each candidate's"):
        prepare_candidates(cfg, scores.drop(columns=["tier"]), ["value"])
    assert list(prepare_candidates(cfg, scores, ["value"]).long_term_segment[:3]) == list(scores.tier[:3])
    with pytest.raises(DataError, match=r"scores: missing column 'tier' \(ltv.segment\).*re-run 'promo-opt score'"):
        pipeline.allocate(cfg, scores.drop(columns=["tier"]))
    # an ltv.json written without ltv.segment has no per-segment values to read
    d = json.loads((tmp_path / "ltv" / "ltv.json").read_text())
    d.pop("segments")
    (tmp_path / "pooled.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"no per-segment values for 'tier' \(ltv.segment\)"):
        pipeline.allocate(_allocation_config(worlds, tmp_path / "pooled.json", 1000.0, "tier"), scores)
