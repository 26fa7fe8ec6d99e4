"""Load test of the HTTP service on loopback: plan latency under concurrency, allocation job time.

Everything goes through the API of a real ``promo-opt serve`` process: a simulated travel
campaign with N candidates (default 1M) is uploaded, a model trained, the candidates scored;
then C concurrent clients (default 50) send plan requests (5 random budgets each) for a bounded
time and count; then an allocation job for all N users runs, and its targets are downloaded.

    nice -n 10 .venv/bin/python benchmarks/load_service.py            # 1M candidates, 50 clients
    .venv/bin/python benchmarks/load_service.py --candidates 100000 --seconds 5   # quick

Writes reports/load_service.json and reports/load_service.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.simulation import load_world  # noqa: E402
from tests.service_harness import started_with_key, wait_job  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


async def _post(reader, writer, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST on raw streams: a load generator light enough not to be the bottleneck."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def plan_load(url: str, key: str, scores_id: str, top: float, clients: int, seconds: float,
                    max_requests: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /plans HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    lat: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds

    async def one_client(rng: random.Random):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop_at and len(lat) + sum(errors.values()) < max_requests:
                body = json.dumps({"scores_id": scores_id,
                                   "budgets": sorted(rng.uniform(0, top) for _ in range(5))}).encode()
                t0 = time.perf_counter()
                code, payload = await _post(reader, writer, head, body)
                if code == 200 and payload.startswith(b'{"scores_id"'):
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[str(code)] = errors.get(str(code), 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(random.Random(i)) for i in range(clients)))
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors, "seconds": wall,
            "requests_per_second": len(lat) / wall,
            "latency_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                           "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "mean": float(ms.mean())}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_mean_ms(metrics: str, route: str) -> float:
    """Mean time the server spent per request of ``route`` (from its Prometheus histogram)."""
    vals = {}
    for line in metrics.splitlines():
        if f'route="{route}"' in line and line.startswith(("promo_opt_http_request_seconds_sum",
                                                             "promo_opt_http_request_seconds_count")):
            vals[line.split("{")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return 1000 * vals["sum"] / vals["count"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=1_000_000)
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0, help="plan load duration bound")
    ap.add_argument("--max-requests", type=int, default=20_000, help="plan load count bound")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "load_service.json")
    args = ap.parse_args()

    res: dict = {"command": "python " + " ".join(sys.argv), "candidates": args.candidates, "train_rows": args.train,
                 "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                 "seconds": {}}
    sec = res["seconds"]
    with tempfile.TemporaryDirectory(prefix="promo-opt-load-") as tmp:
        tmp = Path(tmp)
        cfg_path, sec["simulate_campaign"] = timed(lambda: load_world("travel").write_campaign(
            tmp / "campaign", seed=11, n_train=args.train, n_candidates=args.candidates))
        server, key = started_with_key(tmp)
        try:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=600.0) as c:
                d = cfg_path.parent

                def upload():
                    with open(d / "train.csv", "rb") as tr, open(d / "candidates.csv", "rb") as ca:
                        r = c.post("/campaigns", files={"config": ("campaign.yaml", cfg_path.read_text()),
                                                        "train": ("train.csv", tr), "candidates": ("candidates.csv", ca)})
                    assert r.status_code == 201, r.text
                    return r.json()
                cmp_, sec["upload_and_validate"] = timed(upload)

                def job(path, body, get):
                    r = c.post(path, json=body)
                    assert r.status_code == 202, r.text
                    j = wait_job(c, f"{get}/{r.json()['id']}", timeout=1800)
                    assert j["status"] == "done", j["error"]
                    return j
                model = job("/models", {"campaign_id": cmp_["id"], "model": {"learner": "pooled", "folds": 3}},
                            "/models")
                sec["train_job"] = model["finished_at"] - model["started_at"]
                scores = job("/scores", {"model_id": model["id"]}, "/scores")
                sec["score_job"] = scores["finished_at"] - scores["started_at"]

                first, sec["first_plan_builds_frontier"] = timed(lambda: c.post(
                    "/plans", json={"scores_id": scores["id"], "n_points": 20}).json())
                top = max(p["spend"] for p in first["points"])
                _, sec["second_plan"] = timed(lambda: c.post("/plans", json={"scores_id": scores["id"],
                                                                              "budgets": [top / 3]}).json())
                cpu0 = cpu_seconds(server.proc.pid)
                res["plan_load"] = asyncio.run(plan_load(server.url, key, scores["id"], top, args.clients,
                                                         args.seconds, args.max_requests))
                res["plan_load"]["server_cpu_ms_per_plan"] = (
                    1000 * (cpu_seconds(server.proc.pid) - cpu0) / max(res["plan_load"]["requests"], 1))

                t0 = time.perf_counter()
                alloc = job("/allocations", {"scores_id": scores["id"]}, "/allocations")
                sec["allocation_submit_to_done"] = time.perf_counter() - t0
                sec["allocation_job"] = alloc["finished_at"] - alloc["started_at"]
                res["allocation"] = {k: alloc["result"][k] for k in ("n_candidates", "budget", "solver", "gap")}
                res["allocation"]["expected"] = alloc["result"]["expected"]

                def download():
                    n = 0
                    with c.stream("GET", f"/allocations/{alloc['id']}/targets", params={"format": "csv"}) as r:
                        for chunk in r.iter_bytes():
                            n += chunk.count(b"\n")
                    return n
                lines, sec["download_targets_csv"] = timed(download)
                assert lines == args.candidates + 1, lines
                metrics = c.get("/metrics").text
                res["plan_load"]["server_mean_ms_per_plan"] = server_mean_ms(metrics, "/plans")
                res["load_average_after"] = list(os.getloadavg())
        finally:
            server.stop()
    pl = res["plan_load"]
    res["target"] = {"plan_p99_ms_below": 200, "met": pl["latency_ms"]["p99"] < 200 and not pl["errors"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    lm = pl["latency_ms"]
    md = [f"# Service load test ({args.candidates:,} candidates, {pl['clients']} clients)", "",
          f"`{res['command']}`", "",
          f"Server CPU per plan request: {pl['server_cpu_ms_per_plan']:.2f} ms; time in the server per request "
          f"(its histogram, queueing included): {pl['server_mean_ms_per_plan']:.1f} ms; "
          f"load average after the run: {res['load_average_after'][0]:.1f} on {res['machine']['cpus']} CPUs.", "",
          "| plan requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |", "|---|---|---|---|---|---|---|",
          f"| {pl['requests']:,} | {pl['requests_per_second']:.0f} | {lm['p50']:.1f} | {lm['p95']:.1f} | "
          f"{lm['p99']:.1f} | {lm['max']:.1f} | {pl['errors'] or 0} |", "",
          "| step | seconds |", "|---|---|", *[f"| {k} | {v:.2f} |" for k, v in sec.items()], ""]
    args.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
