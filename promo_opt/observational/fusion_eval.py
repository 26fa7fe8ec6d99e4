"""Measuring data fusion on a simulated world with a biased logging policy (benchmark and tests).

The world's logged campaign follows its logging policy; the randomized sample is drawn from the
same world with the arms assigned uniformly at random. Features named in ``hidden`` are removed
from what every model sees (the logging policy and the outcomes still depend on them): the
realistic case of hidden confounding, where no reweighting of the logged data can remove the bias.
Three models are compared on fresh users against the world's true uplift:
``logged`` (PooledLGBM on the logged rows), ``randomized`` (PooledLGBM on the randomized rows),
``fused_stacked`` and ``fused_correction`` (:class:`FusedUplift`), by uplift RMSE per arm and by the true incremental conversions
of treating the top ``top_share`` of users ranked by each model's uplift of the last arm, as a
share of the oracle's.
"""

from __future__ import annotations

import numpy as np

from promo_opt.features import FeaturePreprocessor
from promo_opt.learners.lgbm import POOLED_LEVELS, PooledLGBM
from promo_opt.observational.fusion import FusedUplift
from promo_opt.simulation import load_world
from promo_opt.simulation.world import RandomLogging, World


def fusion_experiment(world: str = "confounded_logs", n_logged: int = 100_000, n_randomized: int = 10_000,
                      n_test: int = 20_000, hidden: tuple[str, ...] = ("loyalty", "bookings_12m"),
                      arms: tuple[str, ...] | None = None, seed: int = 0, learner: str = "pooled",
                      top_share: float = 0.3) -> dict:
    """One replication; returns {model: {"rmse": {arm: ...}, "rmse_mean", "policy_share_of_oracle", "bias"}}."""
    w = load_world(world)
    keep = list(arms) if arms else w.arm_names
    wr = World(w.spec.model_copy(update={"logging": RandomLogging(shares={a: 1.0 / len(keep) for a in keep})}))
    index = {a: i for i, a in enumerate(keep)}
    cols = [w.arm_names.index(a) for a in keep]
    feats = [f for f in w.feature_names if f not in hidden]

    def draw(world_, n, s):
        sample = world_.sample(n, seed=s)
        df = world_.realize(sample, seed=s + 1)
        df = df[df["arm"].isin(keep)].reset_index(drop=True)
        return df[feats], df["arm"].map(index).to_numpy(np.int64), df["converted"].to_numpy()

    Xl, al, yl = draw(w, n_logged, 1000 * seed + 1)
    Xr, ar, yr = draw(wr, n_randomized, 1000 * seed + 3)
    test = w.sample(n_test, seed=1000 * seed + 5, population="train")
    truth = test.true_uplift[:, cols] - test.true_uplift[:, [cols[0]]]
    pre = FeaturePreprocessor().fit(Xl)
    Xl, Xr, Xt = pre.transform(Xl), pre.transform(Xr), pre.transform(test.features[feats])
    K, params = len(keep), POOLED_LEVELS[learner]

    def uplift(p):
        return p - p[:, [0]]

    logged = PooledLGBM(K, seed=seed, **params).fit(Xl, al, yl)
    corrected = FusedUplift(K, seed=seed, method="correction", **params).fit(
        Xl, al, yl, Xr, ar, yr, shares=np.full(K, 1.0 / K), logged_model=logged)
    preds = {"logged": uplift(logged.predict_proba(Xt)),
             "randomized": uplift(PooledLGBM(K, seed=seed, **params).fit(Xr, ar, yr).predict_proba(Xt)),
             "fused_stacked": FusedUplift(K, seed=seed, method="stacked", **params).fit(
                 Xl, al, yl, Xr, ar, yr, logged_model=logged).predict_uplift(Xt),
             "fused_correction": corrected.predict_uplift(Xt)}
    n_top = int(top_share * n_test)
    oracle = np.sort(truth[:, -1])[::-1][:n_top].sum()
    out = {}
    for name, u in preds.items():
        rmse = np.sqrt(((u[:, 1:] - truth[:, 1:]) ** 2).mean(axis=0))
        top = np.argsort(-u[:, -1], kind="stable")[:n_top]
        out[name] = {"rmse": dict(zip(keep[1:], rmse.tolist())), "rmse_mean": float(rmse.mean()),
                     "bias": dict(zip(keep[1:], (u[:, 1:] - truth[:, 1:]).mean(axis=0).tolist())),
                     "policy_share_of_oracle": float(truth[top, -1].sum() / oracle)}
    out["fused_correction"]["correction"] = {keep[k]: corrected.choice_[k] for k in range(1, K)}
    out["sizes"] = {"logged_rows": int(len(al)), "randomized_rows": int(len(ar)), "test_users": n_test}
    return out
