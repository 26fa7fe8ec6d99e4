"""Training on logged (non-randomized) data: the propensity the learners weigh by comes from the
config's column, or is estimated when ``observational.estimate_propensity`` asks for it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from promo_opt import pipeline
from promo_opt.config import load_config
from promo_opt.simulation import load_world


def _campaign(tmp_path, estimate: bool, keep_column: bool):
    path = load_world("confounded_logs").write_campaign(tmp_path, seed=3, n_train=4000, n_candidates=1000)
    raw = yaml.safe_load(path.read_text())
    if not keep_column:
        raw["data"].pop("propensity")
        df = pd.read_csv(tmp_path / "train.csv")
        df.drop(columns=["propensity"]).to_csv(tmp_path / "train.csv", index=False)
    raw["model"] = {"learner": "pooled", "folds": 3}
    raw["observational"] = {"estimate_propensity": estimate}
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_estimated_propensity_reaches_the_learner(tmp_path):
    cfg = _campaign(tmp_path, estimate=True, keep_column=False)
    model = pipeline.train(cfg)
    assert model.metrics["propensity"] == "estimated (auto, cross-fitted)"  # auto: chosen by balance (issue 14)
    ov = model.metrics["selection"]["overlap"]
    # the logging policy of this world is far from uniform: the estimated P(logged arm) must show it
    assert 0 < ov["min_propensity"] < 0.25


def test_given_column_wins_and_randomized_data_uses_arm_shares(tmp_path):
    cfg = _campaign(tmp_path / "a", estimate=True, keep_column=True)
    assert pipeline.train(cfg).metrics["propensity"] == "column 'propensity'"
    cfg = _campaign(tmp_path / "b", estimate=False, keep_column=False)
    model = pipeline.train(cfg)
    assert model.metrics["propensity"] == "randomized: observed arm shares"
    assert model.metrics["selection"]["overlap"] == {}
    assert np.isfinite(model.metrics["seconds"])
