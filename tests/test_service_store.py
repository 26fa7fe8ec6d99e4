"""The store's contract on SQLite and on a real PostgreSQL server, and the service running on PostgreSQL.

PostgreSQL: a throwaway server (initdb + pg_ctl in a temp dir, loopback port) when the binaries
exist; as root it runs as the 'postgres' user through runuser. Otherwise skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from promo_opt.service.auth import create_key, verify_key
from promo_opt.service.settings import ServiceSettings
from promo_opt.service.store import Store
from promo_opt.simulation import load_world
from tests.service_harness import Server, free_port, wait_job


def _postgres():
    """(url, stop) of a fresh PostgreSQL server, or (None, reason)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        return None, "PostgreSQL server binaries (initdb, pg_ctl) not found"
    prefix = []
    d = Path(tempfile.mkdtemp(prefix="promo-opt-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run it as the postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user for initdb"
        if not shutil.which("runuser"):
            return None, "running as root and runuser is not available"
        os.chown(d, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run(prefix + [initdb, "-D", str(d / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(d / "data"), "-l", str(d / "log"), "-w", "-t", "60", "-o",
                                 f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        shutil.rmtree(d, ignore_errors=True)
        return None, f"PostgreSQL could not start: {getattr(err, 'stderr', b'') or err}"

    def stop():
        subprocess.run(prefix + [pg_ctl, "-D", str(d / "data"), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="module")
def postgres_url():
    url, stop = _postgres()
    if url is None:
        pytest.skip(stop)
    yield url
    stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = ServiceSettings(data_dir=tmp_path).database_url if request.param == "sqlite" else \
        request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    if request.param == "postgresql":  # the server is shared by the module: leave it empty
        from promo_opt.service.store import metadata
        metadata.drop_all(s.engine)
    s.close()


def test_store_contract(store):
    key = create_key(store, "read")
    assert verify_key(store, key) == {"read"}
    assert verify_key(store, key[:-1] + ("x" if key[-1] != "x" else "y")) is None
    assert verify_key(store, "po_nothere0000_abc") is None and verify_key(store, "garbage") is None

    store.add_campaign("cmp_0000000000000001", "c", {"arms": []}, {"train": "train.csv"})
    assert store.get_campaign("cmp_0000000000000001")["files"] == {"train": "train.csv"}
    a = store.add_job("train", {"x": 1}, campaign_id="cmp_0000000000000001")
    b = store.add_job("score", {}, campaign_id="cmp_0000000000000001", parent_id=a.id)
    assert [store.claim_next().id, store.claim_next().id, store.claim_next()] == [a.id, b.id, None]
    store.finish(a.id, {"learner": "pooled", "n": 3})
    assert store.get_job(a.id).result == {"learner": "pooled", "n": 3} and store.get_job(a.id, "score") is None
    c = store.add_job("allocate", {}, parent_id=b.id)
    assert store.fail_interrupted() == [b.id]  # running -> failed; queued c untouched
    assert store.get_job(b.id).status == "failed" and "interrupted" in store.get_job(b.id).error
    assert store.get_job(c.id).status == "queued"
    assert store.job_ids("done") == {a.id}
    store.add_delivery(c.id, 0, 1, "k-0", 503, "HTTP 503")
    store.add_delivery(c.id, 0, 2, "k-0", 200, None)
    assert [(d["attempt"], d["status_code"]) for d in store.list_deliveries(c.id)] == [(1, 503), (2, 200)]


@pytest.mark.slow
def test_service_on_postgresql(postgres_url, tmp_path):
    """The whole path (upload, train, score, plan, allocate, download, restart) with PostgreSQL as the store."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store(postgres_url)
    key = create_key(store)
    store.close()
    cfg = load_world("travel").write_campaign(tmp_path / "c", seed=2, n_train=2000, n_candidates=800)
    server = Server(data, db=postgres_url).start()
    try:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as c:
            r = c.post("/campaigns", files={"config": ("c.yaml", cfg.read_text()),
                                            "train": ("t.csv", (cfg.parent / "train.csv").read_bytes()),
                                            "candidates": ("k.csv", (cfg.parent / "candidates.csv").read_bytes())})
            assert r.status_code == 201, r.text
            m = wait_job(c, "/models/" + c.post("/models", json={"campaign_id": r.json()["id"], "model": {
                "learner": "pooled", "folds": 2}}).json()["id"])
            s = wait_job(c, "/scores/" + c.post("/scores", json={"model_id": m["id"]}).json()["id"])
            assert s["status"] == "done", s["error"]
            assert c.post("/plans", json={"scores_id": s["id"], "budgets": [100.0]}).status_code == 200
            a = wait_job(c, "/allocations/" + c.post("/allocations", json={"scores_id": s["id"]}).json()["id"])
            assert a["status"] == "done" and a["result"]["n_candidates"] == 800
        server.stop()
        server.start()
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60) as c:
            page = c.get(f"/allocations/{a['id']}/targets", params={"format": "json", "limit": 10}).json()
            assert page["total"] == 800 and len(page["rows"]) == 10
            assert c.get("/readyz").json()["ready"] is True
    finally:
        server.stop()
