"""objective: long_term_value through the HTTP service: the multipliers in the uploaded config's ltv: section."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from promo_opt import pipeline
from promo_opt.config import load_config
from promo_opt.simulation import load_world
from tests.conftest import create_key
from tests.service_harness import Server, wait_job

MULTIPLIERS = {"pct5": 3.0, "pct10": 1.0, "pct20": 0.2}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc-ltv")
    path = load_world("travel").write_campaign(d, seed=7, n_train=3000, n_candidates=1500)
    raw = yaml.safe_load(path.read_text())
    raw.update(objective="long_term_value", ltv={"multipliers": MULTIPLIERS})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc-ltv-data") / "data"
    d.mkdir()
    s = Server(d).start()
    s.key = create_key(d)
    yield s
    s.stop()


def test_service_allocates_by_long_term_value(server, campaign):
    import httpx

    d = campaign.parent
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.key}, timeout=60.0) as c:
        r = c.post("/campaigns", files={"config": ("campaign.yaml", campaign.read_text()),
                                        "train": ("train.csv", (d / "train.csv").read_bytes()),
                                        "candidates": ("candidates.csv", (d / "candidates.csv").read_bytes())})
        assert r.status_code == 201, r.text
        r = c.post("/models", json={"campaign_id": r.json()["id"], "model": {"learner": "pooled", "folds": 2}})
        model = wait_job(c, f"/models/{r.json()['id']}")
        assert model["status"] == "done", model["error"]
        scores = wait_job(c, f"/scores/{c.post('/scores', json={'model_id': model['id']}).json()['id']}")
        assert scores["status"] == "done", scores["error"]
        r = c.post("/allocations", json={"scores_id": scores["id"], "budget": 1500.0})
        job = wait_job(c, f"/allocations/{r.json()['id']}")
        assert job["status"] == "done", job["error"]
    s = job["result"]
    assert s["objective"] == "long_term_value"
    assert s["long_term"]["multipliers"] == {"control": 1.0, **MULTIPLIERS}
    local = pd.read_parquet(server.data_dir / "jobs" / scores["id"] / "scores.parquet")
    ref = pipeline.allocate(load_config(campaign, **{"constraints.budget": 1500.0}), local)
    assert s["users_per_arm"] == ref.summary["users_per_arm"]
    assert s["long_term"]["long_term_value"] == pytest.approx(ref.summary["long_term"]["long_term_value"])
