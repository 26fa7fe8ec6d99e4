"""The HTTP service end to end: the real server process on loopback, driven with httpx.

One server (SQLite in a temp data dir) for the module; the last test kills it mid-job and
restarts it. Results are checked against the core run in this process on the same files.
"""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from promo_opt import pipeline
from promo_opt.cli import app as cli_app
from promo_opt.config import load_config
from promo_opt.simulation import load_world
from tests.conftest import create_key as conftest_create_key
from tests.service_harness import Receiver, Server, wait_job


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc-campaign")
    path = load_world("travel").write_campaign(d, seed=5, n_train=4000, n_candidates=2000)
    return path


def create_key(data_dir, scopes="read,write") -> str:
    key = conftest_create_key(data_dir, scopes)
    assert key.startswith("po_") and len(key) > 40
    return key


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("svc") / "data"
    d.mkdir()
    keys = {"rw": create_key(d), "ro": create_key(d, "read")}
    s = Server(d, extra=("--max-upload-mb", "2", "--webhook-host", "127.0.0.1")).start()
    s.keys = keys
    yield s
    s.stop()


def client(server, key="rw") -> httpx.Client:
    headers = {"X-API-Key": server.keys[key]} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60.0)


def upload(c: httpx.Client, campaign, config_text: str | None = None, train: bytes | None = None,
           train_name="train.csv") -> httpx.Response:
    d = campaign.parent
    files = {"config": ("campaign.yaml", config_text if config_text is not None else campaign.read_text()),
             "train": (train_name, train if train is not None else (d / "train.csv").read_bytes()),
             "candidates": ("candidates.csv", (d / "candidates.csv").read_bytes())}
    return c.post("/campaigns", files=files)


@pytest.fixture(scope="module")
def flow(server, campaign):
    """Upload, train, score: the ids every later test starts from."""
    with client(server) as c:
        r = upload(c, campaign)
        assert r.status_code == 201, r.text
        cmp_ = r.json()
        assert cmp_["files"]["train_rows"] == 4000 and cmp_["files"]["candidates_rows"] == 2000
        r = c.post("/models", json={"campaign_id": cmp_["id"], "model": {"learner": "pooled", "folds": 3}})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        model = wait_job(c, f"/models/{r.json()['id']}")
        assert model["status"] == "done", model["error"]
        r = c.post("/scores", json={"model_id": model["id"]})
        assert r.status_code == 202
        scores = wait_job(c, f"/scores/{r.json()['id']}")
        assert scores["status"] == "done", scores["error"]
    return {"campaign": cmp_, "model": model, "scores": scores}


def local_scores(server, flow) -> pd.DataFrame:
    return pd.read_parquet(server.data_dir / "jobs" / flow["scores"]["id"] / "scores.parquet")


def test_model_and_scores_are_the_cores(server, flow, campaign):
    assert flow["model"]["result"]["learner"] == "pooled" and flow["model"]["result"]["n_train"] == 4000
    with client(server) as c:
        metrics = c.get(f"/models/{flow['model']['id']}/metrics").json()
        assert metrics["n_train"] == 4000 and len(metrics["uplift_by_decile"]) == 30  # 3 arms x 10 deciles
        assert [m["id"] for m in c.get("/models").json()] == [flow["model"]["id"]]
    scores = local_scores(server, flow)
    assert list(scores.columns) == ["user_id", "value", "p_control", "p_pct5", "p_pct10", "p_pct20"]
    assert len(scores) == 2000 and scores["user_id"].is_unique


def test_plan_equals_the_cli_plan(server, flow, campaign):
    cfg = load_config(campaign)
    budgets = [0.0, 500.0, 2000.0, cfg.constraints.budget, 50_000.0]
    metrics = json.loads((server.data_dir / "jobs" / flow["model"]["id"] / "metrics.json").read_text())
    fc = metrics["forecast_correction"]
    # the service holds each budget (and the floor) on the scoring model's forecast, as the CLI's plan --model
    ref = pipeline.plan(cfg, local_scores(server, flow), budgets, correction=fc)
    with client(server) as c:
        r = c.post("/plans", json={"scores_id": flow["scores"]["id"], "budgets": budgets})
        assert r.status_code == 200, r.text
        pts = r.json()["points"]
        again = c.post("/plans", json={"scores_id": flow["scores"]["id"],
                                       "budget_range": {"low": 0, "high": 4000, "n": 5}}).json()["points"]
        roi = c.post("/plans", json={"scores_id": flow["scores"]["id"], "budgets": [3000.0], "min_roi": 2.5}).json()
        # a floor no user reaches is refused as 'promo-opt plan' and an allocation refuse it, not a curve of zeros
        out_of_reach = c.post("/plans", json={"scores_id": flow["scores"]["id"], "budgets": [3000.0], "min_roi": 1e6})
    assert out_of_reach.status_code == 422 and "is above the best ROI any user x arm reaches" in out_of_reach.text
    assert [p["budget"] for p in pts] == budgets
    np.testing.assert_allclose([p["spend"] for p in pts], ref["spend"], rtol=1e-9)
    np.testing.assert_allclose([p["incremental_conversions"] for p in pts], ref["incremental_conversions"], rtol=1e-9)
    assert [p["users_per_arm"]["pct10"] for p in pts] == ref["users_pct10"].tolist()
    assert all(sum(p["users_per_arm"].values()) == 1900 for p in pts)  # 2000 minus the 5% holdout
    assert [p["budget"] for p in again] == [0, 1000, 2000, 3000, 4000]
    # the floor is held on the scoring model's corrected forecast, as an allocation holds it
    floor = pipeline.held_floor(cfg, 2.5, metrics.get("forecast_correction"))
    assert roi["min_roi"] == 2.5 and roi["allocated_min_roi"] == pytest.approx(floor)
    assert roi["min_roi_confidence"] is cfg.constraints.min_roi_confidence is None
    assert roi["points"][0]["roi"] >= floor - 1e-9
    # every point forecasts as an allocation at its budget would (the curve's forecast columns, one rule)
    assert fc["applied"]
    for p, (_, row) in zip(pts, ref.iterrows()):
        f = p["forecast"]
        assert f["incremental_conversions"] == pytest.approx(row["forecast_incremental_conversions"], rel=1e-9)
        assert f["interval90"]["spend"] == pytest.approx([row["forecast_spend_lo90"], row["forecast_spend_hi90"]])
        assert (f["warning"] is not None) is bool(row["forecast_warning"])
        if f["warning"]:
            assert f["warning"] == pipeline.evidence_warning(f, cfg.objective)


def test_allocate_download_every_format(server, flow, campaign):
    cfg = load_config(campaign, **{"constraints.budget": 1500.0})
    metrics = json.loads((server.data_dir / "jobs" / flow["model"]["id"] / "metrics.json").read_text())
    ref = pipeline.allocate(cfg, local_scores(server, flow), correction=metrics["forecast_correction"])
    with client(server) as c:
        r = c.post("/allocations", json={"scores_id": flow["scores"]["id"], "budget": 1500.0})
        assert r.status_code == 202, r.text
        job = wait_job(c, f"/allocations/{r.json()['id']}")
        assert job["status"] == "done", job["error"]
        s = job["result"]
        # the budget is held on the forecast: the expected spend within the budget the allocator held
        assert s["budget"] == 1500.0 and s["allocated_budget"] == pytest.approx(ref.allocated_budget)
        assert s["expected"]["spend"] <= s["allocated_budget"] * (1 + 1e-9) and s["gap"] < 1e-3
        assert s["users_per_arm"] == ref.summary["users_per_arm"]
        # the winner's-curse-corrected forecast, from the model the scores came from
        assert s["forecast"]["spend"] == pytest.approx(s["expected"]["spend"] * s["forecast"]["ratio"]["spend"])
        base = f"/allocations/{job['id']}/targets"
        csv = pd.read_csv(io.BytesIO(c.get(base).content))
        pq_ = pd.read_parquet(io.BytesIO(c.get(base, params={"format": "parquet"}).content))
        jl = pd.read_json(io.StringIO(c.get(base, params={"format": "jsonl"}).text), lines=True)
        pages, offset = [], 0
        while offset is not None:
            page = c.get(base, params={"format": "json", "offset": offset, "limit": 700}).json()
            assert page["total"] == 2000 and len(page["rows"]) <= 700
            pages += page["rows"]
            offset = page["next_offset"]
    js = pd.DataFrame(pages)
    assert len(pages) == 2000
    for df in (csv, pq_, jl, js):
        assert df["arm"].tolist() == ref.targets["arm"].tolist()
        assert df["user_id"].astype(str).tolist() == ref.targets["user_id"].astype(str).tolist()
        np.testing.assert_allclose(df["expected_cost"], ref.targets["expected_cost"], rtol=1e-8)


def test_push_with_retry_and_idempotency_keys(server, flow):
    rec = Receiver(fail_batches=(1,))
    try:
        with client(server) as c:
            job = wait_job(c, "/allocations/" + c.post("/allocations", json={
                "scores_id": flow["scores"]["id"], "budget": 1500.0}).json()["id"])
            targets = pd.read_parquet(io.BytesIO(c.get(f"/allocations/{job['id']}/targets",
                                                       params={"format": "parquet"}).content))
            r = c.post(f"/allocations/{job['id']}/push", json={"url": rec.url, "batch_size": 200,
                                                                "backoff_seconds": 0.01, "max_attempts": 3})
            assert r.status_code == 202, r.text
            push = wait_job(c, f"/pushes/{r.json()['id']}")
    finally:
        rec.close()
    assert push["status"] == "done", push["error"]
    treated = targets[targets["arm"] != "control"]
    n_batches = -(-len(treated) // 200)
    assert push["result"] == {"url": rec.url, "rows": len(treated), "batches": n_batches}
    keys = [k for k, _ in rec.received]
    assert keys == [f"{push['id']}-{b}" for b in range(n_batches)]  # batch 1 retried under the same key
    got = [row["user_id"] for _, body in rec.received for row in body["rows"]]
    assert got == treated["user_id"].tolist()
    log = push["deliveries"]
    assert [(d["batch"], d["attempt"], d["status_code"]) for d in log[:3]] == [(0, 1, 200), (1, 1, 503), (1, 2, 200)]
    assert len(log) == n_batches + 1


def test_push_gives_up_and_says_why(server, flow):
    with client(server) as c:
        alloc = c.get("/allocations").json()[0]
        r = c.post(f"/allocations/{alloc['id']}/push", json={"url": "http://127.0.0.1:9/nothing",
                                                              "max_attempts": 2, "backoff_seconds": 0.01})
        push = wait_job(c, f"/pushes/{r.json()['id']}")
    assert push["status"] == "failed" and "batch 0" in push["error"] and "after 2 attempts" in push["error"]
    assert [d["attempt"] for d in push["deliveries"]] == [1, 2]
    with client(server) as c:  # only hosts the operator allowed (serve --webhook-host 127.0.0.1)
        r = c.post(f"/allocations/{alloc['id']}/push", json={"url": "http://169.254.169.254/latest"})
        assert r.status_code == 422 and "'169.254.169.254' is not one this server pushes to" in r.json()["detail"]


def test_auth(server, flow):
    sid = flow["scores"]["id"]
    with httpx.Client(base_url=server.url) as anon:
        assert anon.get("/healthz").json()["status"] == "ok"
        r = anon.get("/models")
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        r = anon.get("/models", headers={"X-API-Key": "po_000000000000_nope"})
        assert r.status_code == 401 and r.json()["detail"] == "invalid API key"
        tampered = server.keys["rw"][:-2] + ("aa" if not server.keys["rw"].endswith("aa") else "bb")
        assert anon.get("/models", headers={"X-API-Key": tampered}).status_code == 401
    with client(server, "ro") as ro:
        assert ro.get("/models").status_code == 200
        assert ro.post("/plans", json={"scores_id": sid, "budgets": [100.0]}).status_code == 200
        r = ro.post("/allocations", json={"scores_id": sid})
        assert r.status_code == 403 and "'write' scope" in r.json()["detail"]
    with client(server, None) as anon:
        alloc = client(server).get("/allocations").json()[0]["id"]
        assert anon.get(f"/allocations/{alloc}/targets").status_code == 401


def test_malformed_uploads_are_refused_and_leave_nothing(server, campaign):
    before = sorted(p.name for p in (server.data_dir / "campaigns").iterdir())
    raw = yaml.safe_load(campaign.read_text())
    train = pd.read_csv(campaign.parent / "train.csv")
    with client(server) as c:
        r = upload(c, campaign, config_text="arms: [unclosed")
        assert r.status_code == 422 and "not valid YAML" in r.json()["detail"]
        r = upload(c, campaign, config_text=yaml.safe_dump({**raw, "arms": raw["arms"][:1]}))
        assert r.status_code == 422 and "at least two arms" in r.json()["detail"]
        r = upload(c, campaign, config_text=yaml.safe_dump({**raw, "budget": 5}))
        assert r.status_code == 422 and "unknown key 'budget'" in r.json()["detail"]
        r = upload(c, campaign, train=train.drop(columns="converted").to_csv(index=False).encode())
        assert r.status_code == 422 and "missing column(s) ['converted']" in r.json()["detail"]
        assert str(server.data_dir) not in r.json()["detail"]  # no server paths in messages
        bad = train.assign(arm=train["arm"].where(train.index != 3, "pct99"))
        r = upload(c, campaign, train=bad.to_csv(index=False).encode())
        assert r.status_code == 422 and "pct99" in r.json()["detail"]
        r = upload(c, campaign, train=b"\x00\x01garbage", train_name="train.parquet")
        assert r.status_code == 422 and "could not be read" in r.json()["detail"]
        r = upload(c, campaign, train_name="train.xlsx")
        assert r.status_code == 422 and "'.xlsx'" in r.json()["detail"]
        r = c.post("/models", json={"campaign_id": "cmp_0123456789abcdef", "model": {"folds": 1}})
        assert r.status_code == 422  # folds >= 2, checked before the id is looked up
    assert sorted(p.name for p in (server.data_dir / "campaigns").iterdir()) == before


def test_oversized_requests_get_413(server, campaign):
    with client(server) as c:
        big = (campaign.parent / "train.csv").read_bytes() * 9  # > 2 MB (--max-upload-mb 2)
        r = upload(c, campaign, train=big)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/plans", content=b"{" + b" " * (2**20 + 10) + b"}", headers={"content-type": "application/json"})
        assert r.status_code == 413

        def chunks():  # no Content-Length: the limit is enforced on the bytes received
            for _ in range(40):
                yield b" " * 65536
        r = c.post("/plans", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_unknown_and_malformed_ids(server, flow):
    with client(server) as c:
        for path in ("/models/mod_0123456789abcdef", "/scores/sco_0123456789abcdef",
                     "/allocations/alc_0123456789abcdef", "/allocations/alc_0123456789abcdef/targets",
                     "/pushes/psh_0123456789abcdef", "/campaigns/cmp_0123456789abcdef"):
            r = c.get(path)
            assert r.status_code == 404 and "0123456789abcdef" in r.json()["detail"], path
        assert c.get("/models/" + flow["scores"]["id"]).status_code == 404  # a scores id is no model
        assert c.get("/models/..%2F..%2Fetc").status_code in (404, 422)
        assert c.get("/allocations/alc_ZZ/targets").status_code == 422
        r = c.post("/plans", json={"scores_id": "sco_0123456789abcdef", "budgets": [1.0]})
        assert r.status_code == 404
        r = c.post("/plans", json={"scores_id": flow["scores"]["id"], "budgets": [-5.0]})
        assert r.status_code == 422
        r = c.post("/allocations", json={"scores_id": flow["scores"]["id"], "arm_caps": {"pct99": {"max_users": 3}}})
        assert r.status_code == 422 and "pct99" in r.json()["detail"]
        r = c.post("/scores", json={"model_id": flow["model"]["id"], "campaign_id": "cmp_0123456789abcdef"})
        assert r.status_code == 404


def test_metrics_and_request_ids(server, flow):
    r = httpx.get(server.url + "/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    text = httpx.get(server.url + "/metrics").text
    assert 'promo_opt_http_requests_total{method="POST",route="/plans",status="200"}' in text
    assert 'promo_opt_job_seconds_count{kind="train",status="done"}' in text
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    assert any(x.get("request_id") == "abc-123" and x["status"] == 200 for x in lines)


def test_register_a_model_directory(server, flow, campaign, tmp_path):
    """'promo-opt models register' (server side) adds a model directory; the service then scores with it."""
    import shutil

    # a model directory as 'promo-opt train' writes it (TrainedModel.save), without paying for another fit
    shutil.copytree(server.data_dir / "jobs" / flow["model"]["id"], tmp_path / "model")
    runner = CliRunner()
    args = ["models", "register", str(tmp_path / "model"), "--data-dir", str(server.data_dir)]
    bad = runner.invoke(cli_app, args + ["--campaign", "cmp_0123456789abcdef"])
    assert bad.exit_code == 2 and "no campaign with id cmp_0123456789abcdef" in bad.output
    r = runner.invoke(cli_app, args + ["--campaign", flow["campaign"]["id"]])
    assert r.exit_code == 0, r.output
    mid = r.output.split()[0]
    with client(server) as c:
        model = c.get(f"/models/{mid}").json()
        assert model["status"] == "done" and model["result"]["registered"] is True
        scores = wait_job(c, "/scores/" + c.post("/scores", json={"model_id": mid}).json()["id"])
        assert scores["status"] == "done" and scores["result"]["n_candidates"] == 2000


def test_kill_mid_job_then_restart(server, flow, campaign):
    """A job killed with the server is failed at restart, its output absent; queued jobs survive and run."""
    with client(server) as c:
        done_alloc = c.get("/allocations").json()[0]["id"]
        slow = c.post("/models", json={"campaign_id": flow["campaign"]["id"],
                                       "model": {"learner": "auto", "folds": 4}}).json()
        queued = c.post("/allocations", json={"scores_id": flow["scores"]["id"], "budget": 800.0}).json()
        assert wait_job(c, f"/models/{slow['id']}", until=("running", "done", "failed"))["status"] == "running"
    server.kill()
    jobs = server.data_dir / "jobs"
    server.start()
    with client(server) as c:
        killed = c.get(f"/models/{slow['id']}").json()
        assert killed["status"] == "failed" and killed["error"].startswith("interrupted")
        assert not (jobs / slow["id"]).exists() and not list(jobs.glob(".*.partial"))
        later = wait_job(c, f"/allocations/{queued['id']}")
        assert later["status"] == "done" and later["result"]["budget"] == 800.0
        assert c.get(f"/allocations/{done_alloc}/targets", params={"format": "json", "limit": 5}).status_code == 200
        assert c.get(f"/models/{flow['model']['id']}").json()["status"] == "done"



def test_model_settings_accept_every_registry_learner_and_refuse_others():
    from pydantic import ValidationError

    from promo_opt.learners.registry import learner_names
    from promo_opt.service.schemas import ModelSettings

    for name in ["auto", *learner_names()]:
        assert ModelSettings(learner=name).learner == name
    with pytest.raises(ValidationError, match="learner"):
        ModelSettings(learner="nope")
