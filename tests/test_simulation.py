"""Simulated worlds: loading, shapes, determinism, calibration of realized outcomes, validation."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt.config import load_config
from promo_opt.errors import ConfigError
from promo_opt.simulation import SimulatedSample, World, available_worlds, load_world, parse_world, scenario_dirs

WORLDS = ["travel", "retail_vouchers", "subscription_drift", "confounded_logs"]


def _raw(name: str) -> dict:
    return yaml.safe_load((scenario_dirs()[0] / f"{name}.yaml").read_text())


def test_shipped_worlds_are_found():
    assert set(WORLDS) <= set(available_worlds())


@pytest.mark.parametrize("name", WORLDS)
def test_world_loads_and_samples(name):
    world = load_world(name)
    assert isinstance(world, World) and world.name == name
    assert world.arms[0].control and world.arm_names[0] == world.arms[0].name
    k = len(world.arm_names)
    for population in ("train", "candidates"):
        s = world.sample(2000, seed=1, population=population)
        assert isinstance(s, SimulatedSample)
        assert list(s.features.columns) == ["user_id", *world.feature_names]
        assert s.features["user_id"].is_unique and len(s.features) == 2000
        assert s.true_p.shape == (2000, k) and s.true_value.shape == (2000,)
        assert np.all((s.true_p > 0) & (s.true_p < 1))
        assert np.all(s.true_value > 0)
        assert np.allclose(s.type_prob.sum(axis=1), 1.0)
        assert np.all(s.true_uplift[:, 0] == 0)
        if population == "train":
            assert s.propensity.shape == (2000, k)
            assert np.allclose(s.propensity.sum(axis=1), 1.0)
        else:
            assert s.propensity is None


@pytest.mark.parametrize("name", WORLDS)
def test_effects_are_realistic_and_heterogeneous(name):
    s = load_world(name).sample(20000, seed=5)
    control_rate = s.true_p[:, 0].mean()
    best = s.true_uplift.max(axis=1)
    top = np.sort(best)[::-1][: len(best) // 5]
    assert 0.04 < control_rate < 0.16
    assert 0.01 < best.mean() < 0.045
    assert top.sum() / best.sum() > 0.4  # the top 20% of users carry a large share of the uplift


def test_ids_are_unique_across_train_and_candidates():
    world = load_world("travel")
    train = world.sample(300, seed=1, population="train").features["user_id"]
    cand = world.sample(300, seed=1, population="candidates").features["user_id"]
    assert train.iloc[0] == "u0000001"
    assert not set(train) & set(cand)


def test_some_features_have_missing_values():
    s = load_world("travel").sample(5000, seed=2)
    assert 0.05 < s.features["avg_stay_price"].isna().mean() < 0.11
    assert s.features["age"].notna().all()


def test_sampling_and_realizing_are_deterministic():
    world = load_world("retail_vouchers")
    a, b = world.sample(2000, seed=7), world.sample(2000, seed=7)
    pd.testing.assert_frame_equal(a.features, b.features)
    np.testing.assert_array_equal(a.true_p, b.true_p)
    pd.testing.assert_frame_equal(world.realize(a, seed=3), world.realize(b, seed=3))
    c = world.sample(2000, seed=8)
    assert not np.array_equal(a.true_p, c.true_p)


def test_drift_shifts_candidates():
    world = load_world("subscription_drift")
    train = world.sample(20000, seed=1, population="train")
    cand = world.sample(20000, seed=1, population="candidates")
    assert cand.features["sessions_30d"].mean() > train.features["sessions_30d"].mean() + 1.0
    assert cand.true_p[:, 0].mean() < train.true_p[:, 0].mean() - 0.005


@pytest.mark.parametrize("name", ["travel", "confounded_logs"])
def test_realized_outcomes_match_the_truth(name):
    world = load_world(name)
    s = world.sample(20000, seed=11)
    df = world.realize(s, seed=12)
    assert {"arm", "converted", "order_value"} <= set(df.columns)
    assert ("propensity" in df.columns) == (name == "confounded_logs")
    idx = df["arm"].map({a: k for k, a in enumerate(world.arm_names)}).to_numpy()
    for k, arm in enumerate(world.arm_names):
        mask = idx == k
        p = s.true_p[mask, k]
        se = np.sqrt((p * (1 - p)).sum()) / mask.sum()
        assert abs(df["converted"].to_numpy()[mask].mean() - p.mean()) < 4 * se, arm
        # realized arm shares match the logging propensities
        share_se = np.sqrt((s.propensity[:, k] * (1 - s.propensity[:, k])).sum()) / len(df)
        assert abs(mask.mean() - s.propensity[:, k].mean()) < 4 * share_se, arm
    conv = df["converted"].to_numpy() == 1
    assert np.all(df["order_value"].to_numpy()[~conv] == 0)
    ratio = df["order_value"].to_numpy()[conv].mean() / s.true_value[conv].mean()
    assert 0.93 < ratio < 1.07
    if name == "confounded_logs":
        np.testing.assert_allclose(df["propensity"].to_numpy(), s.propensity[np.arange(len(df)), idx])


def test_write_campaign_is_byte_identical_and_valid(tmp_path):
    world = load_world("confounded_logs")
    paths = [world.write_campaign(tmp_path / d, seed=3, n_train=2000, n_candidates=1000) for d in ("a", "b")]
    for fname in ("train.csv", "candidates.csv", "truth.parquet", "campaign.yaml"):
        assert (tmp_path / "a" / fname).read_bytes() == (tmp_path / "b" / fname).read_bytes(), fname
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.endswith(".tmp")]

    cfg = load_config(paths[0])
    assert cfg.name == "confounded_logs" and cfg.arm_names == world.arm_names
    assert cfg.data.propensity == "propensity" and cfg.holdout.fraction == 0.05 and cfg.seed == 3
    cand = pd.read_csv(tmp_path / "a" / "candidates.csv")
    truth = pd.read_parquet(tmp_path / "a" / "truth.parquet")
    assert list(cand.columns) == ["user_id", *world.feature_names]
    assert list(truth.columns) == ["user_id", *[f"p_{a}" for a in world.arm_names], "value"]
    assert truth["user_id"].tolist() == cand["user_id"].tolist()
    train = pd.read_csv(tmp_path / "a" / "train.csv")
    assert len(train) == 2000 and not set(train["user_id"]) & set(cand["user_id"])

    # default budget: 30% of the expected spend of giving everyone their most expensive arm
    p = truth[[f"p_{a}" for a in world.arm_names]].to_numpy()
    disc = np.array([a.discount for a in world.arms])
    full = (p * disc * truth["value"].to_numpy()[:, None]).max(axis=1).sum()
    assert cfg.constraints.budget == pytest.approx(0.3 * full, abs=0.01)
    assert cfg.constraints.min_roi is None


def test_write_campaign_overrides(tmp_path):
    world = load_world("retail_vouchers")
    path = world.write_campaign(tmp_path, seed=1, budget=123.0, min_roi=1.5, n_train=500, n_candidates=200)
    cfg = load_config(path)
    assert cfg.constraints.budget == 123.0 and cfg.constraints.min_roi == 1.5
    assert cfg.data.propensity is None and cfg.objective == "conversions"
    assert "propensity" not in pd.read_csv(tmp_path / "train.csv").columns
    assert load_config(load_world("subscription_drift").write_campaign(
        tmp_path / "s", n_train=300, n_candidates=100)).objective == "net_revenue"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda r: r["features"][0].update(colour="red"), "features.0.colour"),
        (lambda r: r.update(extra_top=1), "extra_top"),
        (lambda r: r["base"]["linear"].update(no_such_feature=1.0), "base.linear.no_such_feature"),
        (lambda r: r["types"][0]["arm_lift"].update(control=0.1), "types.0.arm_lift.control"),
        (lambda r: r["arms"][1].update(control=True), "arms.1"),
        (lambda r: r["arms"][0].update(control=False), "key 'arms': exactly one arm"),
        (lambda r: r["features"][5]["levels"].update(mobile=0.9), "levels"),
        (lambda r: r.pop("base"), "base"),
    ],
)
def test_invalid_world_names_the_key(edit, key):
    raw = copy.deepcopy(_raw("travel"))
    edit(raw)
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_world(raw, source="travel.yaml")


def test_unknown_world_lists_available_ones():
    with pytest.raises(ConfigError, match="travel"):
        load_world("atlantis")


def test_load_world_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**_raw("travel"), "name": "mine"}))
    assert load_world(path).name == "mine"
    assert load_world(str(path)).name == "mine"
