"""Push a finished targeting list to a campaign tool's webhook: batches, retries with backoff, idempotency keys.

Each batch is one JSON POST ``{"allocation_id", "push_id", "batch", "n_batches", "rows": [...]}``
with the header ``Idempotency-Key: <push id>-<batch>``, so a receiver can drop a batch it already
has (a retry after a lost answer sends the same key). Every attempt is written to the delivery log.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq

from promo_opt.errors import PromoOptError
from promo_opt.service.store import Store

RETRY_STATUS = {408, 425, 429}  # and every 5xx


@dataclass(frozen=True)
class PushRequest:
    url: str
    batch_size: int
    max_attempts: int
    backoff_seconds: float
    include_control: bool


def push_targets(store: Store, push_id: str, allocation_id: str, targets: Path, control_arm: str,
                 req: PushRequest, timeout: float, stop: threading.Event) -> dict:
    table = pq.read_table(targets)
    if not req.include_control:
        table = table.filter(pc.not_equal(table["arm"], control_arm))
    n = table.num_rows
    n_batches = math.ceil(n / req.batch_size)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for b in range(n_batches):
            rows = table.slice(b * req.batch_size, req.batch_size).to_pylist()
            key = f"{push_id}-{b}"
            body = {"allocation_id": allocation_id, "push_id": push_id, "batch": b, "n_batches": n_batches,
                    "rows": rows}
            for attempt in range(1, req.max_attempts + 1):
                code, err = None, None
                try:
                    code = client.post(req.url, json=body, headers={"Idempotency-Key": key}).status_code
                    if not 200 <= code < 300:
                        err = f"HTTP {code}"
                except httpx.HTTPError as e:
                    err = f"{type(e).__name__}: {e}"
                store.add_delivery(push_id, b, attempt, key, code, err)
                if err is None:
                    break
                if code is not None and code < 500 and code not in RETRY_STATUS:
                    raise PromoOptError(f"webhook {req.url} refused batch {b} with HTTP {code} (not retried)")
                if attempt == req.max_attempts:
                    raise PromoOptError(f"webhook {req.url}: batch {b} of {n_batches} failed after "
                                        f"{req.max_attempts} attempts (last: {err}); batches before it were delivered")
                if stop.wait(req.backoff_seconds * 2 ** (attempt - 1)):
                    raise PromoOptError("webhook push stopped: the server is shutting down")
    return {"url": req.url, "rows": n, "batches": n_batches}
