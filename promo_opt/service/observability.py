"""Request ids, structured (JSON) logs, Prometheus metrics and request size limits, as one ASGI middleware."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("promo_opt.service")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("promo_opt_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("promo_opt_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.job_seconds = Histogram("promo_opt_job_seconds", "Background job duration", ["kind", "status"],
                                     buckets=(.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
                                     registry=self.registry)
        self.jobs_running = Gauge("promo_opt_jobs_running", "Jobs running now", registry=self.registry)
        self.cache_entries = Gauge("promo_opt_frontier_cache_entries", "Scored candidate sets whose frontier is cached",
                                   registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RequestMiddleware:
    """Per request: an id (``X-Request-ID``, echoed), a size limit (413), a log line and metrics.

    The size limit applies to the declared ``Content-Length`` and to the bytes actually received
    (chunked bodies), so no handler ever sees an oversized body.
    """

    def __init__(self, app, metrics: Metrics, max_body_bytes: int, max_upload_bytes: int,
                 upload_paths: tuple[str, ...] = ("/campaigns",)):
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id", "")
        rid = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        limit = self.max_upload if scope["path"] in self.upload_paths else self.max_body
        state = {"status": 500, "received": 0, "too_large": False, "started": False}

        async def send_413():
            body = json.dumps({"detail": f"request body larger than the limit of {limit} bytes"}).encode()
            state["status"] = 413
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"x-request-id", rid.encode()),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_413()
            return self._record(scope, rid, state, t0)

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["too_large"] = True
                    return {"type": "http.disconnect"}  # the handler stops reading; we answer 413
            return message

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                if state["too_large"]:
                    state["started"] = True
                    await send_413()
                    return
                state["status"] = message["status"]
                state["started"] = True
                message = {**message, "headers": list(message.get("headers", [])) + [(b"x-request-id", rid.encode())]}
            elif state["too_large"]:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception:
            if state["too_large"] and not state["started"]:
                await send_413()
            else:
                raise
        else:
            if state["too_large"] and not state["started"]:
                await send_413()
        finally:
            self._record(scope, rid, state, t0)

    def _record(self, scope, rid, state, t0) -> None:
        seconds = time.perf_counter() - t0
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(scope["method"], template, str(state["status"])).inc()
        self.metrics.latency.labels(scope["method"], template).observe(seconds)
        log.info("request", extra={"request_id": rid, "method": scope["method"], "path": scope["path"],
                                   "route": template, "status": state["status"], "ms": round(seconds * 1000, 2)})
