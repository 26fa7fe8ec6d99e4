"""promo-opt ltv --engine spark: the same coefficients and values as the local engine on the same panel."""

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("pyspark")

from promo_opt.config import load_config  # noqa: E402
from promo_opt.errors import DataError  # noqa: E402
from promo_opt.ltv.simulate import load_panel_world  # noqa: E402
from promo_opt.ltv.valuation import estimate_ltv  # noqa: E402
from promo_opt.spark.session import java_available  # noqa: E402
from tests.conftest import invoke  # noqa: E402

pytestmark = pytest.mark.skipif(not java_available(), reason="Spark needs Java")


@pytest.fixture(scope="module")
def panel_campaign(tmp_path_factory):
    d = tmp_path_factory.mktemp("ltv_spark")
    path = load_panel_world("same_period").write_campaign(d, seed=4, customers=600, boot=0)
    raw = yaml.safe_load(path.read_text())
    raw["spark"] = {"master": "local[2]", "partitions": 3,
                    "conf": {"spark.sql.shuffle.partitions": "3", "spark.sql.execution.arrow.maxRecordsPerBatch": "1000"}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_spark_fit_and_values_equal_local(panel_campaign, tmp_path):
    from promo_opt.spark.ltv import estimate_ltv_spark

    cfg = load_config(panel_campaign)
    local = estimate_ltv(cfg)
    dist = estimate_ltv_spark(cfg)
    for var in local.fit.coef:
        assert np.allclose(dist.fit.coef[var], local.fit.coef[var], rtol=0, atol=1e-6)
    a, b = local.to_dict(), dist.to_dict()
    for arm in a["arms"]:
        for q in ("immediate", "long_term"):
            assert b["arms"][arm][q]["estimate"] == pytest.approx(a["arms"][arm][q]["estimate"], abs=1e-6)
        assert np.allclose(b["shapley"][arm]["attribution"]["visits"]["estimate"],
                           a["shapley"][arm]["attribution"]["visits"]["estimate"], atol=1e-6)
    assert b["model"]["n_rows"] == a["model"]["n_rows"] and b["model"]["n_customers"] == a["model"]["n_customers"]


def test_cli_ltv_engine_spark_with_bootstrap(panel_campaign, tmp_path):
    r = invoke("ltv", panel_campaign, "--out", tmp_path / "o", "--engine", "spark", "--boot", 30)
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "o" / "ltv.json").read_text())
    lt = d["arms"]["discount_20"]["long_term"]
    assert lt["ci_low"] < lt["estimate"] < lt["ci_high"]
    assert d["model"]["boot"] == 30


def test_spark_bad_panel_is_the_local_error(panel_campaign, tmp_path):
    import pandas as pd

    from promo_opt.spark.ltv import estimate_ltv_spark

    cfg = load_config(panel_campaign)
    p = pd.read_parquet(cfg.ltv.panel)
    bad = tmp_path / "bad.parquet"
    pd.concat([p, p.iloc[[7]]]).to_parquet(bad)
    with pytest.raises(DataError, match=r"duplicate \(customer, week\) row"):
        estimate_ltv_spark(cfg.model_copy(update={"ltv": cfg.ltv.model_copy(update={"panel": bad})}))
    p.assign(arm=p.arm.replace("discount_5", "promo_x")).to_parquet(bad)
    with pytest.raises(DataError, match=r"\['promo_x'\] that are not arms"):
        estimate_ltv_spark(cfg.model_copy(update={"ltv": cfg.ltv.model_copy(update={"panel": bad})}))


def test_spark_segments_equal_local(tmp_path):
    # two tiers from a habit and a pull-forward world, plus a small tier the model gives the pooled values;
    # tier also a 0/1 control, constant within each level (dropped from each level's own fit on both engines)
    from promo_opt.ltv.simulate import segmented_panel
    from promo_opt.spark.ltv import estimate_ltv_spark

    worlds = {"habit": load_panel_world("habit"), "pull": load_panel_world("pull_forward")}
    panel = segmented_panel(worlds, "tier", seed=2, customers=700)
    small = panel.user_id.isin(panel.user_id.unique()[:150])
    panel.loc[small, "tier"] = "new"
    panel["is_habit"] = (panel.tier == "habit").astype(float)
    panel.to_parquet(tmp_path / "panel.parquet")
    raw = worlds["habit"].campaign_config("panel.parquet", boot=0)
    raw["ltv"].update({"segment": "tier", "segment_min_customers": 300, "controls": ["age", "loyalty", "is_habit"]})
    raw["spark"] = {"master": "local[2]", "partitions": 3, "conf": {"spark.sql.shuffle.partitions": "3"}}
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(tmp_path / "campaign.yaml")
    a, b = estimate_ltv(cfg).to_dict(), estimate_ltv_spark(cfg).to_dict()
    sa, sb = a["segments"]["tier"], b["segments"]["tier"]
    assert set(sa) == set(sb) == {"habit", "pull", "new"}
    for level in sa:
        for arm, v in sa[level].items():
            w = sb[level][arm]
            assert (w["source"], w["n_customers"], w.get("reason")) == (v["source"], v["n_customers"], v.get("reason"))
            for q in ("immediate", "long_term", "multiplier"):
                assert w[q]["estimate"] == pytest.approx(v[q]["estimate"], abs=1e-6), (level, arm, q)
    assert sa["habit"]["discount_20"]["source"] == "segment" and sa["new"]["discount_20"]["source"] == "pooled"
    assert sa["habit"]["discount_20"]["multiplier"]["estimate"] > 1.5 * sa["pull"]["discount_20"]["multiplier"]["estimate"]
