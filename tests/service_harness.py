"""Test harness for the HTTP service: the real server as a subprocess, a webhook receiver, helpers."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``promo-opt serve`` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, db: str | None = None, extra: tuple[str, ...] = ()):
        self.data_dir, self.db, self.extra = Path(data_dir), db, extra
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.log = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> "Server":
        cmd = [sys.executable, "-m", "promo_opt.cli", "serve", "--port", str(self.port),
               "--data-dir", str(self.data_dir), *self.extra]
        if self.db:
            cmd += ["--db", self.db]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # readiness poll, not a timing assumption
        raise RuntimeError(f"server not ready after {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def started_with_key(tmp: Path, scopes: str = "read,write", max_upload_mb: int = 2000) -> tuple[Server, str]:
    """A fresh data directory under ``tmp``, an API key with ``scopes`` in its store, and the server on it
    (started; the caller stops it)."""
    from promo_opt.service.auth import create_key
    from promo_opt.service.settings import ServiceSettings
    from promo_opt.service.store import Store

    data = Path(tmp) / "data"
    data.mkdir()
    store = Store(ServiceSettings(data_dir=data).database_url)
    key = create_key(store, scopes)
    store.close()
    return Server(data, extra=("--max-upload-mb", str(max_upload_mb))).start(), key


def wait_job(client: httpx.Client, path: str, timeout: float = 600.0, until=("done", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(path).json()
        if job["status"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"{path} still {job['status']} after {timeout} s")


class Receiver:
    """A campaign tool's webhook on loopback: records batches; answers 503 to the first try of ``fail_batches``."""

    def __init__(self, fail_batches=(1,)):
        self.received: list[tuple[str, dict]] = []
        self.fail_batches = set(fail_batches)
        self.failed: set[int] = set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["batch"] in outer.fail_batches and body["batch"] not in outer.failed:
                    outer.failed.add(body["batch"])
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append((self.headers["Idempotency-Key"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
