"""Economics on hand-computed cases."""

import numpy as np
import pytest

from promo_opt.config import ArmConfig
from promo_opt.economics import compute_economics
from promo_opt.errors import DataError

ARMS = [ArmConfig(name="control", control=True), ArmConfig(name="pct10", discount=0.1),
        ArmConfig(name="v5", cost_per_conversion=5), ArmConfig(name="mail", cost_per_send=0.02, discount=0.05)]


def test_hand_computed_user():
    p = np.array([[0.10, 0.15, 0.12, 0.11]])
    e = compute_economics(p, np.array([200.0]), ARMS)
    # pct10: 0.15 * 0.1 * 200 = 3.0; v5: 0.12 * 5 = 0.6; mail: 0.02 + 0.11 * 0.05 * 200 = 1.12
    np.testing.assert_allclose(e.spend, [[0.0, 3.0, 0.6, 1.12]])
    np.testing.assert_allclose(e.incremental_conversions, [[0.0, 0.05, 0.02, 0.01]])
    np.testing.assert_allclose(e.incremental_revenue, [[0.0, 10.0, 4.0, 2.0]])
    np.testing.assert_allclose(e.net_revenue, [[0.0, 7.0, 3.4, 0.88]])
    assert e.gain("conversions") is e.incremental_conversions
    t = e.totals(np.array([1]))
    assert t == pytest.approx({"incremental_conversions": 0.05, "incremental_revenue": 10.0, "spend": 3.0,
                               "roi": 10 / 3, "net_revenue": 7.0})


def test_negative_uplift_costs_more_than_it_brings():
    e = compute_economics(np.array([[0.2, 0.1, 0.2, 0.2]]), np.array([50.0]), ARMS)
    assert e.incremental_conversions[0, 1] == pytest.approx(-0.1)
    assert e.spend[0, 1] == pytest.approx(0.1 * 0.1 * 50)  # still paid on the conversions that happen


@pytest.mark.parametrize("p, v, needle", [
    (np.array([[0.1, 1.2, 0.1, 0.1]]), np.array([1.0]), "probabilities"),
    (np.array([[0.1, np.nan, 0.1, 0.1]]), np.array([1.0]), "probabilities"),
    (np.array([[0.1, 0.1, 0.1, 0.1]]), np.array([-1.0]), "order values"),
    (np.array([[0.1, 0.1]]), np.array([1.0]), "2 probability columns but 4 arms"),
])
def test_bad_inputs(p, v, needle):
    with pytest.raises(DataError, match=needle):
        compute_economics(p, v, ARMS)
