"""Durable state of the service: API keys, campaigns, jobs (models, scores, allocations, pushes), deliveries.

One SQLAlchemy Core schema for SQLite (the default, a file in the data directory) and PostgreSQL
(through a URL). Artefacts (uploaded tables, models, scores, targets) are files in the data
directory, named by the server-made ids kept here; nothing a request says becomes a path.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, Text, create_engine, event, insert,
                        select, text, update)
from sqlalchemy.engine import Engine

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("salt", String(64), nullable=False),
    Column("digest", String(64), nullable=False),  # sha256(salt + secret), hex
    Column("scopes", String(64), nullable=False),  # comma-separated: read, write
    Column("created_at", Float, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("config", Text, nullable=False),  # the validated config as JSON (data paths: server files)
    Column("files", Text, nullable=False),  # JSON: which tables were uploaded, rows per table
    Column("created_at", Float, nullable=False),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False, index=True),  # train | score | allocate | push | analysis
    Column("status", String(16), nullable=False, index=True),  # queued | running | done | failed
    Column("campaign_id", String(32), nullable=True),
    Column("parent_id", String(32), nullable=True),  # model of a score job, scores of an allocation, ...
    # (an analysis: the allocation of a policy comparison, the drivers analysis whose graph an effect adjusts by)
    Column("params", Text, nullable=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False, index=True),
    Column("batch", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("idempotency_key", String(80), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("at", Float, nullable=False),
)

PREFIX = {"campaign": "cmp", "train": "mod", "score": "sco", "allocate": "alc", "push": "psh", "analysis": "ana"}
ID_PATTERN = r"^[a-z]{3}_[0-9a-f]{16}$"


def new_id(kind: str) -> str:
    return f"{PREFIX[kind]}_{secrets.token_hex(8)}"


@dataclass
class Job:
    id: str
    kind: str
    status: str
    campaign_id: str | None
    parent_id: str | None
    params: dict
    result: dict | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row) -> "Job":
        m = row._mapping
        return cls(id=m["id"], kind=m["kind"], status=m["status"], campaign_id=m["campaign_id"],
                   parent_id=m["parent_id"], params=json.loads(m["params"]),
                   result=json.loads(m["result"]) if m["result"] else None, error=m["error"],
                   created_at=m["created_at"], started_at=m["started_at"], finished_at=m["finished_at"])


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _):  # readers never wait for the worker's writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    # -- keys -------------------------------------------------------------------------------
    def add_key(self, key_id: str, salt: str, digest: str, scopes: str) -> None:
        with self.engine.begin() as c:
            c.execute(insert(api_keys).values(id=key_id, salt=salt, digest=digest, scopes=scopes,
                                              created_at=time.time()))

    def get_key(self, key_id: str):
        with self.engine.connect() as c:
            return c.execute(select(api_keys).where(api_keys.c.id == key_id)).first()

    # -- campaigns --------------------------------------------------------------------------
    def add_campaign(self, cid: str, name: str, config: dict, files: dict) -> None:
        with self.engine.begin() as c:
            c.execute(insert(campaigns).values(id=cid, name=name, config=json.dumps(config), files=json.dumps(files),
                                               created_at=time.time()))

    def get_campaign(self, cid: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(campaigns).where(campaigns.c.id == cid)).first()
        if row is None:
            return None
        m = dict(row._mapping)
        m["config"], m["files"] = json.loads(m["config"]), json.loads(m["files"])
        return m

    def list_campaigns(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(campaigns.c.id, campaigns.c.name, campaigns.c.files, campaigns.c.created_at)
                             .order_by(campaigns.c.created_at)).all()
        return [{"id": r.id, "name": r.name, "files": json.loads(r.files), "created_at": r.created_at} for r in rows]

    # -- jobs -------------------------------------------------------------------------------
    def add_job(self, kind: str, params: dict, campaign_id: str | None = None, parent_id: str | None = None,
                status: str = "queued", result: dict | None = None) -> Job:
        jid = new_id(kind)
        now = time.time()
        with self.engine.begin() as c:
            c.execute(insert(jobs).values(
                id=jid, kind=kind, status=status, campaign_id=campaign_id, parent_id=parent_id,
                params=json.dumps(params), result=None if result is None else json.dumps(result), error=None,
                created_at=now, started_at=None if status == "queued" else now,
                finished_at=now if status == "done" else None))
        return self.get_job(jid)

    def get_job(self, jid: str, kind: str | None = None) -> Job | None:
        q = select(jobs).where(jobs.c.id == jid)
        if kind is not None:
            q = q.where(jobs.c.kind == kind)
        with self.engine.connect() as c:
            row = c.execute(q).first()
        return None if row is None else Job.from_row(row)

    def list_jobs(self, kind: str, limit: int = 100, offset: int = 0, campaign_id: str | None = None) -> list[Job]:
        q = select(jobs).where(jobs.c.kind == kind)
        if campaign_id is not None:
            q = q.where(jobs.c.campaign_id == campaign_id)
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(jobs.c.created_at).offset(offset).limit(limit)).all()
        return [Job.from_row(r) for r in rows]

    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked running (only one claimer wins it)."""
        with self.engine.begin() as c:
            row = c.execute(select(jobs.c.id).where(jobs.c.status == "queued")
                            .order_by(jobs.c.created_at).limit(1)).first()
            if row is None:
                return None
            res = c.execute(update(jobs).where(jobs.c.id == row.id, jobs.c.status == "queued")
                            .values(status="running", started_at=time.time()))
            if res.rowcount != 1:
                return None
        return self.get_job(row.id)

    def finish(self, jid: str, result: dict) -> None:
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.id == jid).values(
                status="done", result=json.dumps(result), finished_at=time.time()))

    def fail(self, jid: str, error: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.id == jid).values(status="failed", error=error,
                                                                  finished_at=time.time()))

    def fail_interrupted(self) -> list[str]:
        """Jobs left running by a crash: failed with a message saying so. Returns their ids."""
        with self.engine.begin() as c:
            ids = [r.id for r in c.execute(select(jobs.c.id).where(jobs.c.status == "running")).all()]
            if ids:
                c.execute(update(jobs).where(jobs.c.id.in_(ids)).values(
                    status="failed", finished_at=time.time(),
                    error="interrupted: the server stopped while this job ran; its partial output was removed "
                          "(submit it again)"))
        return ids

    def job_ids(self, status: str | None = None) -> set[str]:
        q = select(jobs.c.id)
        if status is not None:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as c:
            return {r.id for r in c.execute(q).all()}

    # -- deliveries -------------------------------------------------------------------------
    def add_delivery(self, job_id: str, batch: int, attempt: int, key: str, status_code: int | None,
                     error: str | None) -> None:
        with self.engine.begin() as c:
            c.execute(insert(deliveries).values(job_id=job_id, batch=batch, attempt=attempt, idempotency_key=key,
                                                status_code=status_code, error=error, at=time.time()))

    def list_deliveries(self, job_id: str) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(deliveries).where(deliveries.c.job_id == job_id)
                             .order_by(deliveries.c.id)).all()
        return [{k: v for k, v in r._mapping.items() if k not in ("id", "job_id")} for r in rows]
