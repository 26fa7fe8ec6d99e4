"""Off-policy evaluation: estimators against a plain second implementation, coverage in a simulated
world with known truth, the campaign-level door, and the bad inputs the issue lists."""

import numpy as np
import pandas as pd
import pytest

from promo_opt.config import ArmConfig, load_config
from promo_opt.errors import DataError
from promo_opt.evaluation.ope import crossfit_arm_means, evaluate_policy, evaluate_targets

ARMS = [ArmConfig(name="control", control=True), ArmConfig(name="a", discount=0.1, cost_per_send=0.5),
        ArmConfig(name="b", cost_per_conversion=3.0)]


def _logged(n=60, seed=0):
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.3 + 0.1 * arm).astype(int)
    v = np.where(y == 1, rng.uniform(10, 50, n), 0.0)
    prop = rng.uniform(0.2, 0.6, n)
    mu = rng.uniform(0.1, 0.6, (n, 3))
    vhat = rng.uniform(10, 50, n)
    pi = rng.integers(0, 3, n)
    return arm, y, v, prop, mu, vhat, pi


def _reference(arm, y, v, prop, mu, vhat, pi):
    """The estimators written row by row, straight from their textbook definitions."""
    disc, send, pconv = [0, .1, 0], [0, .5, 0], [0, 0, 3.0]
    ips = dict(c=0.0, r=0.0, s=0.0)
    dr = dict(c=0.0, r=0.0, s=0.0)
    sn = dict(a1=0.0, b1=0.0, a0=0.0, b0=0.0, r1=0.0, r0=0.0, s1=0.0, nt=0)
    for i in range(len(y)):
        k = pi[i]
        if k == 0:
            continue
        cost = send[k] + y[i] * (disc[k] * v[i] + pconv[k])
        mcost = send[k] + mu[i, k] * (disc[k] * vhat[i] + pconv[k])
        w1 = 1 / prop[i] if arm[i] == k else 0.0
        w0 = 1 / prop[i] if arm[i] == 0 else 0.0
        ips["c"] += (w1 - w0) * y[i]
        ips["r"] += (w1 - w0) * y[i] * v[i]
        ips["s"] += w1 * cost
        dr["c"] += mu[i, k] - mu[i, 0] + w1 * (y[i] - mu[i, k]) - w0 * (y[i] - mu[i, 0])
        dr["r"] += (mu[i, k] - mu[i, 0]) * vhat[i] + w1 * (y[i] * v[i] - mu[i, k] * vhat[i]) - w0 * (y[i] * v[i] - mu[i, 0] * vhat[i])
        dr["s"] += mcost + w1 * (cost - mcost)
        sn["nt"] += 1
        sn["a1"] += w1; sn["b1"] += w1 * y[i]; sn["r1"] += w1 * y[i] * v[i]; sn["s1"] += w1 * cost
        sn["a0"] += w0; sn["b0"] += w0 * y[i]; sn["r0"] += w0 * y[i] * v[i]
    snips = dict(c=sn["nt"] * (sn["b1"] / sn["a1"] - sn["b0"] / sn["a0"]),
                 r=sn["nt"] * (sn["r1"] / sn["a1"] - sn["r0"] / sn["a0"]), s=sn["nt"] * sn["s1"] / sn["a1"])
    return {"ips": ips, "snips": snips, "dr": dr}


def test_estimates_equal_a_row_by_row_implementation():
    arm, y, v, prop, mu, vhat, pi = _logged()
    res = evaluate_policy(pi, arm, y, v, ARMS, propensity=prop, mu=mu, vhat=vhat, n_boot=50)
    ref = _reference(arm, y, v, prop, mu, vhat, pi)
    for est in ("ips", "snips", "dr"):
        got = res[est]
        assert got["incremental_conversions"].estimate == pytest.approx(ref[est]["c"], rel=1e-10)
        assert got["incremental_revenue"].estimate == pytest.approx(ref[est]["r"], rel=1e-10)
        assert got["spend"].estimate == pytest.approx(ref[est]["s"], rel=1e-10)
        assert got["roi"].estimate == pytest.approx(ref[est]["r"] / ref[est]["s"], rel=1e-10)
        for q in ("incremental_conversions", "spend"):
            assert got[q].ci_low <= got[q].estimate <= got[q].ci_high
    assert res.n_treated == int((pi != 0).sum()) and res.propensity_source == "given column"


def test_policy_as_function_and_names_equal_the_arm_array():
    arm, y, v, prop, mu, vhat, pi = _logged(seed=1)
    X = pd.DataFrame({"k": pi})
    a = evaluate_policy(pi, arm, y, v, ARMS, n_boot=100, seed=3).as_dict()
    b = evaluate_policy(lambda X: X["k"].to_numpy(), arm, y, v, ARMS, X=X, n_boot=100, seed=3).as_dict()
    c = evaluate_policy(np.array(["control", "a", "b"], dtype=object)[pi], arm, y, v, ARMS, n_boot=100, seed=3).as_dict()
    assert a == b == c
    assert a["propensity_source"] == "observed arm shares" and "per-arm means" in a["dr_outcome_model"]


def test_a_policy_that_treats_nobody_is_worth_exactly_zero():
    arm, y, v, *_ = _logged(seed=2)
    res = evaluate_policy(np.zeros(len(y), dtype=int), arm, y, v, ARMS, n_boot=50)
    for est in ("ips", "snips", "dr"):
        for q in ("incremental_conversions", "incremental_revenue", "spend"):
            assert res[est][q].as_dict() == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_crossfit_means_use_other_folds_only():
    arm = np.array([0, 0, 1, 1] * 5)
    y = np.array([1, 0, 1, 1] * 5)
    mu, vhat = crossfit_arm_means(arm, y, y * 10.0, 2, folds=5, seed=0)
    assert mu.shape == (20, 2) and np.allclose(mu[:, 1], 1.0) and np.allclose(vhat, 10.0)
    assert 0.4 < mu[:, 0].min() and mu[:, 0].max() < 0.6  # 8 control rows of the other folds, half converted
    flipped = y.copy()
    flipped[0] = 1 - y[0]
    mu2, _ = crossfit_arm_means(arm, flipped, flipped * 10.0, 2, folds=5, seed=0)
    assert mu2[0, 0] == mu[0, 0]  # a row's own outcome never predicts it
    assert (mu2[:, 0] != mu[:, 0]).sum() == 16  # ... but predicts every row of the other 4 folds


def test_intervals_cover_the_truth_in_a_simulated_world():
    """40 fresh randomized samples of retail_vouchers (users a mailing puts off): the 95% intervals of every
    estimator cover the exact true totals in most replications, and the estimates are centred on them."""
    from promo_opt.evaluation.coverage import coverage_study, fit_fixed_policy
    from promo_opt.simulation import load_world

    world = load_world("retail_vouchers")
    per, summ = coverage_study(world, reps=40, n=1500, n_boot=200, seed=5,
                               policy=fit_fixed_policy(world, n=4000, seed=6))
    s = summ.set_index(["estimator", "quantity"])
    for est in ("ips", "snips", "dr", "dr_means"):
        for q in ("incremental_conversions", "incremental_revenue", "spend"):
            assert 0.82 <= s.loc[(est, q), "coverage"] <= 1.0, (est, q, s.loc[(est, q)].to_dict())
    for q in ("incremental_conversions", "spend"):  # bias within 4 standard errors (the errors are skewed)
        g = per[(per["estimator"] == "ips") & (per["quantity"] == q)]
        err = g["estimate"] - g["truth"]
        assert abs(err.mean()) < 4 * err.std() / np.sqrt(len(err)) + 1e-9


# -- the campaign-level door and its errors ------------------------------------------------
@pytest.fixture(scope="module")
def door(small_campaign):
    cfg = load_config(small_campaign)
    truth = pd.read_parquet(cfg.data.truth)
    ids = truth["user_id"].to_numpy()[:1500]
    from promo_opt.simulation.outcomes import simulate_outcomes

    holdout = simulate_outcomes(cfg, truth, ids, seed=1)
    k = (np.arange(len(ids)) % 4)
    targets = pd.DataFrame({"user_id": ids, "arm": np.array(cfg.arm_names, dtype=object)[k], "holdout": False})
    return cfg, targets, holdout


def test_targets_naming_unknown_users_or_arms(door):
    cfg, targets, holdout = door
    extra = pd.concat([targets, pd.DataFrame({"user_id": ["nobody"], "arm": ["control"], "holdout": [False]})])
    with pytest.raises(DataError, match=r"1 target user\(s\) are not in the outcome rows, e.g. \['nobody'\]"):
        evaluate_targets(cfg, extra, holdout, n_boot=10)
    with pytest.raises(DataError, match=r"no target for 1 user"):
        evaluate_targets(cfg, targets.iloc[1:], holdout, n_boot=10)
    bad = targets.assign(arm=targets["arm"].replace({"pct5": "pct50"}))
    with pytest.raises(DataError, match=r"column 'arm' names arm\(s\) \['pct50'\] that the config does not have"):
        evaluate_targets(cfg, bad, holdout, n_boot=10)


def test_holdout_without_treatment_bad_propensity_and_empty_arm(door):
    cfg, targets, holdout = door
    with pytest.raises(DataError, match=r"holdout data .*missing column\(s\) \['arm'\]"):
        evaluate_targets(cfg, targets, holdout.drop(columns="arm"), n_boot=10)
    cfg_p = cfg.model_copy(update={"data": cfg.data.model_copy(update={"propensity": "propensity"})})
    with pytest.raises(DataError, match=r"column 'propensity' \(data.propensity\) must be in \(0, 1\]"):
        evaluate_targets(cfg_p, targets, holdout.assign(propensity=1.5), n_boot=10)
    no_pct20 = holdout.assign(arm=holdout["arm"].replace({"pct20": "pct10"}))
    with pytest.raises(DataError, match=r"arm\(s\) \['pct20'\] have no logged rows"):
        evaluate_targets(cfg, targets, no_pct20, n_boot=10)


def test_evaluate_targets_covers_the_true_value(door):
    from promo_opt.evaluation.truth import truth_economics

    cfg, targets, holdout = door
    res = evaluate_targets(cfg, targets, holdout, n_boot=400)
    arm = targets["arm"].map({a: k for k, a in enumerate(cfg.arm_names)}).to_numpy()
    true = truth_economics(cfg, targets["user_id"].to_numpy(), pd.read_parquet(cfg.data.truth)).totals(arm)
    for est in ("ips", "snips", "dr"):
        for q in ("incremental_conversions", "spend"):
            assert res[est][q].covers(true[q]), (est, q, res[est][q], true[q])
    assert res.n == 1500 and res.n_treated == 1125
