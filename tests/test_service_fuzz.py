"""Schema-driven fuzzing of the service's OpenAPI spec (schemathesis): no request may cause a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from promo_opt.service.auth import create_key
from promo_opt.service.settings import ServiceSettings
from promo_opt.service.store import Store
from promo_opt.simulation import load_world
from tests.service_harness import Server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.slow
@pytest.mark.skipif(not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None,
                    reason="schemathesis is not installed (pip install -e '.[dev]')")
def test_fuzzed_requests_never_get_a_server_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    store = Store(ServiceSettings(data_dir=data).database_url)
    key = create_key(store)
    store.close()
    server = Server(data).start()
    try:
        # one real campaign, so the fuzzer's calls can reach past the 404s (its stateful phase lists it)
        cfg = load_world("travel").write_campaign(tmp_path / "c", seed=1, n_train=1000, n_candidates=300)
        files = {"config": ("campaign.yaml", cfg.read_text()),
                 "train": ("train.csv", (cfg.parent / "train.csv").read_bytes()),
                 "candidates": ("candidates.csv", (cfg.parent / "candidates.csv").read_bytes())}
        assert httpx.post(server.url + "/campaigns", files=files, headers={"X-API-Key": key}).status_code == 201
        cmd = [str(SCHEMATHESIS if SCHEMATHESIS.exists() else shutil.which("schemathesis")), "run",
               server.url + "/openapi.json", "--checks", "not_a_server_error", "-H", f"X-API-Key: {key}",
               "--max-examples", "15", "--generation-deterministic", "--request-timeout", "30"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its reports stay there
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout[-4000:]
    assert "Tested: " in out.stdout and "Traceback" not in server.log.read_text()
