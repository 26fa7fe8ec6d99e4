"""Data fusion on the confounded_logs world: the fused model beats logged-only and randomized-only."""

import numpy as np
import pandas as pd
import pytest

from promo_opt.errors import DataError
from promo_opt.observational.fusion import FusedUplift
from promo_opt.observational.fusion_eval import fusion_experiment


def test_fused_beats_logged_and_randomized_on_hidden_confounding():
    r = fusion_experiment(arms=("control", "pct20"), n_logged=30_000, n_randomized=3_000, n_test=10_000,
                          hidden=("loyalty", "bookings_12m"), seed=0)
    rmse = {m: r[m]["rmse_mean"] for m in ("logged", "randomized", "fused_stacked", "fused_correction")}
    assert rmse["fused_stacked"] < rmse["logged"] and rmse["fused_stacked"] < rmse["randomized"], rmse
    assert r["logged"]["bias"]["pct20"] > 0.01  # the loyal, frequent travellers the rule targeted inflate it
    assert rmse["fused_correction"] <= rmse["logged"] + 1e-12  # never worse than trusting the logged model here


def test_fusion_needs_every_arm_in_the_randomized_sample():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=200)})
    with pytest.raises(DataError, match=r"no rows of arm\(s\) \[2\]"):
        FusedUplift(3).fit(X, rng.integers(0, 3, 200), rng.integers(0, 2, 200), X, rng.integers(0, 2, 200),
                           rng.integers(0, 2, 200))
