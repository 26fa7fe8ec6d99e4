"""The shared learner contract (every registered learner), the monotone pooled model, weights,
the registry's errors, and save/load of a trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_opt.errors import ConfigError, ModelError
from promo_opt.learners import LEARNERS, auto_candidates, learner_names, make_learner
from promo_opt.learners.honest import CrossFitted

N_ARMS = 3
TERMS = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])


def synthetic(n: int, seed: int = 0):
    """Randomized 3-arm data with known per-arm probabilities: arm 1 helps only users with a > 0,
    arm 2 helps everyone by 0.15; a categorical with missing values and a NaN-laden numeric."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    c = rng.choice(["north", "south", None], size=n)
    X = pd.DataFrame({"a": a, "b": b, "c": pd.Categorical(c, categories=["north", "south"])})
    X.loc[X.index[::23], "b"] = np.nan
    base = 0.10 + 0.05 * (np.nan_to_num(b) > 0)
    p = np.column_stack([base, base + 0.12 * (a > 0), base + 0.15])
    arm = rng.integers(0, N_ARMS, n)
    y = (rng.random(n) < p[np.arange(n), arm]).astype(np.int64)
    return X, arm, y, p


@pytest.fixture(scope="module")
def small():
    return synthetic(5000, seed=1), synthetic(500, seed=2)


@pytest.mark.parametrize("name", learner_names())
def test_learner_contract(name, small):
    """Every registered learner: fit returns self; (n, K) finite probabilities, control first;
    each arm's mean probability near the arm's observed rate (arm 2 lifts everyone by 0.15)."""
    (X, arm, y, _), (Xt, _, _, pt) = small
    m = make_learner(name, N_ARMS, TERMS, seed=0)
    assert m.fit(X, arm, y) is m
    assert not hasattr(make_learner(name, N_ARMS, TERMS, seed=0), "models_")  # learned state only in fit
    p = m.predict_proba(Xt)
    assert p.shape == (len(Xt), N_ARMS)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    for k in range(N_ARMS):
        assert abs(p[:, k].mean() - pt[:, k].mean()) < 0.05, (k, p[:, k].mean(), pt[:, k].mean())
    assert 0.07 < (p[:, 2] - p[:, 0]).mean() < 0.23


def _recovery(name, data):
    (X, arm, y, _), (Xt, _, _, pt) = data
    p = CrossFitted(name, N_ARMS, TERMS, folds=2, seed=0).fit(X, arm, y).predict_proba(Xt)
    tau, true_tau = p - p[:, :1], pt - pt[:, :1]
    assert abs(p[:, 0].mean() - pt[:, 0].mean()) < 0.02
    assert abs(tau[:, 2].mean() - 0.15) < 0.03
    pos = Xt["a"].to_numpy() > 0
    assert tau[pos, 1].mean() - tau[~pos, 1].mean() > 0.06, (tau[pos, 1].mean(), tau[~pos, 1].mean())
    assert np.corrcoef(tau[:, 1], true_tau[:, 1])[0, 1] > 0.7


@pytest.fixture(scope="module")
def medium():
    return synthetic(12000, seed=1), synthetic(1000, seed=2)


def test_cross_fitted_pooled_recovers_uplift(medium):
    """As used (cross-fitted, calibrated): levels, average uplift and where the uplift is."""
    _recovery("pooled", medium)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in learner_names() if n != "pooled"])
def test_cross_fitted_learner_recovers_uplift(name, medium):
    _recovery(name, medium)


def test_registry_lists_names_and_refuses_unknown():
    assert {"pooled", "tlearner", "causalml_x", "causalml_dr", "econml_dr", "uplift_forest",
            "pooled_monotone"} <= set(learner_names())
    assert set(auto_candidates()) <= set(learner_names())
    assert all(LEARNERS[n].weights for n in auto_candidates(weighted=True))
    with pytest.raises(ConfigError, match=r"unknown learner 'xgboost'; expected 'auto' or one of \['pooled_smooth'"):
        make_learner("xgboost", 2, None, 0)
    with pytest.raises(ConfigError, match="unknown learner"):
        CrossFitted("nope", 2)


def test_config_names_the_learner_key():
    from promo_opt.config import parse_config

    raw = {"data": {"train": "t.csv"}, "arms": [{"name": "c", "control": True}, {"name": "e"}],
           "model": {"learner": "deep_net"}}
    with pytest.raises(ConfigError, match=r"key 'model.learner': unknown learner; expected 'auto' or one of .*causalml_x"):
        parse_config(raw)


def test_weights_accepted_or_refused_by_name(small):
    (X, arm, y, _), _ = small
    w = np.full(len(y), 2.0)
    for name in [n for n, s in LEARNERS.items() if not s.weights]:
        with pytest.raises(ModelError, match=f"learner {name} cannot take inverse-propensity sample weights"):
            make_learner(name, N_ARMS, TERMS, 0).fit(X, arm, y, sample_weight=w)


@pytest.mark.parametrize("name", ["pooled", "tlearner"])
def test_weights_reach_the_model(name):
    """A featureless model predicts the weighted rate: weight 3 on converters turns rate r into 3r / (1 + 2r)."""
    rng = np.random.default_rng(0)
    n = 6000
    X = pd.DataFrame({"const": np.zeros(n)})
    arm = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.2).astype(np.int64)
    w = np.where(y == 1, 3.0, 1.0)
    p = make_learner(name, 2, TERMS[:2], 0).fit(X, arm, y, sample_weight=w).predict_proba(X[:1])
    r = y.mean()
    assert abs(p[0, 0] - 3 * r / (1 + 2 * r)) < 0.03, (p, r)


def test_monotone_pooled_never_lowers_conversion_with_a_bigger_discount():
    """Data where the bigger discount looks worse by noise for some users: the monotone model
    still predicts p(arm 2) >= p(arm 1) >= p(control) for every user, the unconstrained need not."""
    rng = np.random.default_rng(5)
    n = 6000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    arm = rng.integers(0, 3, n)
    p = 0.2 + 0.02 * arm + 0.05 * (X["b"].to_numpy() > 0) * np.where(arm == 2, -1, 1)  # arm 2 worse for b > 0
    y = (rng.random(n) < p).astype(np.int64)
    mono = make_learner("pooled_monotone", 3, TERMS, 0).fit(X, arm, y).predict_proba(X)
    assert (np.diff(mono, axis=1) >= -1e-12).all()
    free = make_learner("pooled_flexible", 3, TERMS, 0).fit(X, arm, y).predict_proba(X)
    assert (np.diff(free, axis=1) < -1e-3).any()  # the constraint is what holds it


def test_monotone_keeps_arms_with_equal_terms_apart():
    from promo_opt.learners.lgbm import POOLED_LEVELS, PooledLGBM

    same = np.array([[0.0, 0, 0], [0.0, 0, 1.0], [0.0, 0, 1.0]])  # two e-mails with the same cost
    assert PooledLGBM(3, same, monotone=True)._with_arm_column()
    assert not PooledLGBM(3, TERMS, monotone=True, **POOLED_LEVELS["pooled"])._with_arm_column()


def test_cross_fitted_meta_learner_is_calibrated(small):
    """A CATE-only learner (p0 + tau) through CrossFitted: out-of-fold levels match each arm's rate."""
    (X, arm, y, _), _ = small
    X, arm, y = X.iloc[:3000], arm[:3000], y[:3000]
    cf = CrossFitted("causalml_dr", N_ARMS, TERMS, folds=2, seed=0).fit(X, arm, y)
    assert cf.oof_.shape == (len(y), N_ARMS)
    for k in range(N_ARMS):
        assert abs(cf.oof_[arm == k, k].mean() - y[arm == k].mean()) < 0.01


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in auto_candidates() else pytest.mark.slow)
                                  for n in learner_names()])
def test_same_seed_same_predictions(name, small):
    """Reproducible runs: every random choice inside a learner (e.g. causalml's cross-fitting folds) is seeded."""
    (X, arm, y, _), (Xt, _, _, _) = small
    a, b = (make_learner(name, N_ARMS, TERMS, seed=0).fit(X, arm, y).predict_proba(Xt) for _ in range(2))
    np.testing.assert_array_equal(a, b)
