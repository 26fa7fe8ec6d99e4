"""Analyses through the HTTP service: effect / ltv / drivers reports of a campaign and the policy comparison of a
targeting list, each equal to the core's own answer on the same files; refusals name the key.

One real server (subprocess, SQLite) for the module; two campaigns: a simulated travel campaign (past campaign
and candidates: effect and the policy comparison) and an ltv panel with a drivers table (ltv and drivers).
"""

from __future__ import annotations

import io

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from promo_opt import pipeline
from promo_opt.config import load_config, load_drivers_config
from promo_opt.graph.worlds import load_graph_world
from promo_opt.ltv.simulate import load_panel_world
from promo_opt.simulation import load_world
from tests.conftest import create_key
from tests.service_harness import Server, wait_job

FUNNEL_TIERS = [["age", "homeowner", "new_user"], ["promo"], ["entered_room", "switched_room"], ["add_to_cart"],
                ["complaint"]]


@pytest.fixture(scope="module")
def travel(tmp_path_factory):
    return load_world("travel").write_campaign(tmp_path_factory.mktemp("an-travel"), seed=5, n_train=2000,
                                               n_candidates=1000)


@pytest.fixture(scope="module")
def panel_campaign(tmp_path_factory):
    """The habit world's ltv campaign, plus a drivers: section on a sample of the promo_funnel world."""
    d = tmp_path_factory.mktemp("an-habit")
    path = load_panel_world("habit").write_campaign(d, seed=3, customers=600, boot=30, fmt="csv")
    load_graph_world("promo_funnel").sample(3000, seed=1).to_csv(d / "funnel.csv", index_label="user_id")
    raw = yaml.safe_load(path.read_text())
    raw["drivers"] = {"data": "funnel.csv", "id": "user_id", "outcome": "add_to_cart", "tiers": FUNNEL_TIERS,
                      "bootstrap": 5, "effect_bootstrap": 30}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("an-svc") / "data"
    d.mkdir()
    s = Server(d).start()
    s.keys = {"rw": create_key(d), "ro": create_key(d, "read")}
    yield s
    s.stop()


def client(server, key="rw") -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": server.keys[key]}, timeout=60.0)


def upload(c, config_text: str, **tables) -> httpx.Response:
    files = {"config": ("campaign.yaml", config_text)}
    files.update({field: (path.name, path.read_bytes()) for field, path in tables.items()})
    return c.post("/campaigns", files=files)


@pytest.fixture(scope="module")
def ids(server, travel, panel_campaign):
    with client(server) as c:
        r = upload(c, travel.read_text(), train=travel.parent / "train.csv",
                   candidates=travel.parent / "candidates.csv")
        assert r.status_code == 201, r.text
        r2 = upload(c, panel_campaign.read_text(), panel=panel_campaign.parent / "panel.csv",
                    drivers=panel_campaign.parent / "funnel.csv")
        assert r2.status_code == 201, r2.text
    assert r2.json()["files"] == {"panel": "panel.csv", "drivers": "drivers.csv"}
    return {"travel": r.json()["id"], "panel": r2.json()["id"]}


def run(c, body: dict) -> dict:
    r = c.post("/analyses", json=body)
    assert r.status_code == 202, r.text
    job = wait_job(c, f"/analyses/{r.json()['id']}")
    assert job["status"] == "done", job["error"]
    return job


def test_which_analyses_a_campaign_allows(server, ids):
    with client(server, "ro") as c:
        travel = c.get(f"/campaigns/{ids['travel']}/analyses").json()
        panel = c.get(f"/campaigns/{ids['panel']}/analyses").json()
    assert {a["analysis"]: a["available"] for a in travel["analyses"]} == {"effect": True, "ltv": False,
                                                                           "drivers": False}
    assert {a["analysis"]: a["available"] for a in panel["analyses"]} == {"effect": False, "ltv": True,
                                                                          "drivers": True}
    reasons = {a["analysis"]: a["reason"] for a in travel["analyses"]}
    assert reasons["ltv"].startswith("ltv: the campaign's config has no ltv: section")
    assert reasons["drivers"].startswith("drivers: the campaign's config has no drivers: section")


def test_missing_section_and_read_only_key_are_refused(server, ids):
    with client(server) as c:
        r = c.post("/analyses", json={"analysis": "ltv", "campaign_id": ids["travel"]})
        assert r.status_code == 422 and r.json()["detail"].startswith("ltv: the campaign's config has no ltv: section")
        r = c.post("/analyses", json={"analysis": "drivers", "campaign_id": ids["travel"]})
        assert r.status_code == 422 and "no drivers: section" in r.json()["detail"]
        r = c.post("/analyses", json={"analysis": "effect", "campaign_id": ids["panel"]})
        assert r.status_code == 422 and "no past-campaign table (data.train)" in r.json()["detail"]
        # options of another analysis, the wrong target: one message naming the key
        r = c.post("/analyses", json={"analysis": "ltv", "campaign_id": ids["panel"], "method": "ipw"})
        assert r.status_code == 422 and "method is an option of analysis 'effect', not of 'ltv'" in r.text
        r = c.post("/analyses", json={"analysis": "policies", "campaign_id": ids["travel"]})
        assert r.status_code == 422 and "takes allocation_id" in r.text
        r = c.post("/analyses", json={"analysis": "effect", "campaign_id": ids["travel"], "method": "magic"})
        assert r.status_code == 422 and "method" in r.text
        assert c.get("/analyses/ana_0000000000000000").status_code == 404
    with client(server, "ro") as c:
        r = c.post("/analyses", json={"analysis": "ltv", "campaign_id": ids["panel"]})
        assert r.status_code == 403 and r.json()["detail"] == "this API key lacks the 'write' scope"
        assert c.get("/analyses", params={"campaign_id": ids["panel"]}).json() == []  # nothing was started


def test_uploads_of_section_tables_name_the_field(server, panel_campaign):
    text = panel_campaign.read_text()
    d = panel_campaign.parent
    with client(server) as c:
        r = upload(c, text, drivers=d / "funnel.csv")  # the config names ltv.panel: it must come along
        assert r.status_code == 422 and r.json()["field"] == "panel"
        assert r.json()["detail"].startswith("ltv.panel: the config names a table (panel.csv); upload it")
        raw = yaml.safe_load(text)
        raw.pop("drivers")
        r = upload(c, yaml.safe_dump(raw), panel=d / "panel.csv", drivers=d / "funnel.csv")
        assert r.status_code == 422 and r.json()["field"] == "drivers"
        assert r.json()["detail"] == "drivers: a table was uploaded but the config has no drivers.data to use it"
        raw["ltv"]["values"] = "/etc/ltv.json"  # a path from a request never reaches the filesystem
        r = upload(c, yaml.safe_dump(raw), panel=d / "panel.csv")
        assert r.status_code == 422 and r.json()["field"] == "config"
        assert r.json()["detail"].startswith("ltv.values: the service does not read files named in a config")


def test_ltv_and_drivers_are_the_cores(server, ids, panel_campaign):
    from promo_opt.graph.run import run_drivers
    from promo_opt.ltv.valuation import estimate_ltv

    with client(server) as c:
        ltv = run(c, {"analysis": "ltv", "campaign_id": ids["panel"]})
        drivers = run(c, {"analysis": "drivers", "campaign_id": ids["panel"]})
        ltv_json = c.get(f"/analyses/{ltv['id']}/files/ltv.json").json()
        table = pd.read_csv(io.StringIO(c.get(f"/analyses/{drivers['id']}/files/drivers.csv").text))
        report = c.get(f"/analyses/{ltv['id']}/files/report.html")
        wrong = c.get(f"/analyses/{ltv['id']}/files/graph.json")
        listed = c.get(f"/campaigns/{ids['panel']}/analyses").json()["jobs"]
    ref = estimate_ltv(load_config(panel_campaign)).to_dict()
    for arm in ("discount_5", "discount_20"):
        for key in ("immediate", "long_term"):
            assert ltv["result"]["arms"][arm][key] == pytest.approx(ref["arms"][arm][key], rel=1e-9)
            assert ltv_json["arms"][arm][key] == ltv["result"]["arms"][arm][key]
    assert ltv["result"]["horizon"] == 26 and ltv["result"]["n_customers"] == 600
    core = run_drivers(load_drivers_config(panel_campaign)).effects_frame()
    assert table["variable"].tolist() == core["variable"].tolist()
    np.testing.assert_allclose(table["effect"], core["effect"], rtol=1e-9)
    assert [d["variable"] for d in drivers["result"]["drivers"]] == core["variable"].tolist()
    assert drivers["result"]["drivers"][0]["ci_low"] <= drivers["result"]["drivers"][0]["effect"]
    # the report: the app's policy, its own style sheet allowed by hash, no script
    csp = report.headers["content-security-policy"]
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in csp and "'sha256-" in csp and "unsafe-inline" not in csp
    assert "<script" not in report.text and "<img" in report.text
    assert wrong.status_code == 404 and "its files: ltv.json, weights.csv, report.html" in wrong.json()["detail"]
    assert [j["id"] for j in listed] == [ltv["id"], drivers["id"]]


def test_effect_and_policy_comparison_are_the_cores(server, ids, travel):
    from promo_opt.evaluation.policies import compare_policies
    from promo_opt.model import TrainedModel
    from promo_opt.observational.effect import estimate_effect

    with client(server) as c:
        effect = run(c, {"analysis": "effect", "campaign_id": ids["travel"], "method": "ipw"})
        r = c.post("/models", json={"campaign_id": ids["travel"], "model": {"learner": "pooled", "folds": 2}})
        model = wait_job(c, f"/models/{r.json()['id']}")
        scores = wait_job(c, f"/scores/{c.post('/scores', json={'model_id': model['id']}).json()['id']}")
        alloc = wait_job(c, f"/allocations/{c.post('/allocations', json={'scores_id': scores['id'], 'budget': 1500.0}).json()['id']}")
        assert alloc["status"] == "done", alloc["error"]
        with client(server, "ro") as ro:
            refused = ro.post("/analyses", json={"analysis": "policies", "allocation_id": alloc["id"]})
        policies = run(c, {"analysis": "policies", "allocation_id": alloc["id"]})
        evaluation = c.get(f"/analyses/{policies['id']}/files/evaluation.json").json()
    assert refused.status_code == 403
    ref = estimate_effect(load_config(travel), "ipw").to_dict()
    assert effect["result"]["method"] == "ipw" and effect["result"]["estimand"] == "ate"
    for arm, e in ref["effects"].items():
        assert effect["result"]["effects"][arm]["estimate"] == pytest.approx(e["estimate"], rel=1e-9)
        assert effect["result"]["effects"][arm]["ci_low"] == pytest.approx(e["ci_low"], rel=1e-9)
    assert "adjustment_set" not in effect["result"]  # every feature
    # the policy comparison: the core's on the server's model and scores
    cfg = load_config(travel, **{"constraints.budget": 1500.0})
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"truth": None})})  # the service drops the truth
    local = pd.read_parquet(server.data_dir / "jobs" / scores["id"] / "scores.parquet")
    trained = TrainedModel.load(server.data_dir / "jobs" / model["id"], cfg)
    outcome = pipeline.allocate(cfg, local, correction=trained.metrics.get("forecast_correction"))
    core = compare_policies(cfg, trained, outcome)
    got = policies["result"]
    assert got["allocation_id"] == alloc["id"] and got["scored_by"].startswith("doubly robust")
    assert [row["policy"] for row in got["rows"]] == [row["policy"] for row in core["rows"]]
    assert got["rows"][0]["policy"] == "optimized"
    for g, k in zip(got["rows"], core["rows"]):
        assert g["incremental_conversions"] == pytest.approx(k["incremental_conversions"], rel=1e-9)
        assert g["ci_low"] == pytest.approx(k["ci_low"], rel=1e-9) and g["ci_high"] == pytest.approx(k["ci_high"], rel=1e-9)
    assert evaluation["rows"] == got["rows"]
