"""The FastAPI app: thin routes over the core; settings, storage, worker and auth are injected.

Resources: campaigns (uploaded config + tables), models (train jobs), scores (score jobs), plans
(synchronous what-if budget curves), allocations (targeting-list jobs, downloads), pushes
(webhook delivery jobs) and analyses (effect / ltv / drivers reports of a campaign, the policy
comparison of a targeting list). User errors from the core (``PromoOptError``) become 422 with the same
message the CLI prints.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Path, Query, Request, Security, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from promo_opt import __version__, pipeline
from promo_opt.errors import PromoOptError
from promo_opt.service import analyses, campaigns, plans, ui
from promo_opt.service.artefacts import Artefacts
from promo_opt.service.auth import verify_key
from promo_opt.service.jobs import SCORES_FILE, TARGETS_FILE, Worker
from promo_opt.service.observability import Metrics, RequestMiddleware
from promo_opt.service.schemas import (AllocationRequest, AnalysisRequest, Campaign, CampaignAnalyses, JobOut, PlanPoint,
                                       PlanRequest, PlanResponse, PushOut, PushRequestBody, ScoreRequest, TargetsPage,
                                       TrainRequest)
from promo_opt.service.settings import ServiceSettings
from promo_opt.service.store import ID_PATTERN, Job, Store, new_id

log = logging.getLogger("promo_opt.service")


@dataclass
class Services:
    settings: ServiceSettings
    store: Store
    artefacts: Artefacts
    worker: Worker
    cache: plans.FrontierCache
    metrics: Metrics
    # immutable records kept in memory so a hot plan request does not touch the database
    _done: dict = field(default_factory=dict)  # finished jobs never change
    _configs: dict = field(default_factory=dict)  # campaigns never change
    _keys: dict = field(default_factory=dict)  # presented key -> (checked at, scopes)

    KEY_TTL = 30.0
    MEMO = 10_000

    def _memo(self, memo: dict, k, v):
        if len(memo) >= self.MEMO:
            memo.clear()
        memo[k] = v
        return v

    # memory-only look-ups (None when not known yet): the event loop never waits on the database
    def known_scopes(self, key: str) -> set[str] | None:
        hit = self._keys.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.KEY_TTL else None

    def known_job(self, jid: str, kind: str) -> Job | None:
        hit = self._done.get(jid)
        return hit if hit is not None and hit.kind == kind else None

    def known_config(self, cid: str):
        return self._configs.get(cid)

    def scopes(self, key: str) -> set[str] | None:
        known = self.known_scopes(key)
        if known is not None:
            return known
        scopes = verify_key(self.store, key)
        if scopes is not None:  # only valid keys are remembered
            self._memo(self._keys, key, (time.monotonic(), scopes))
        return scopes

    def config(self, cid: str):
        if cid not in self._configs:
            c = self.campaign(cid)
            self._memo(self._configs, cid, campaigns.load(c["config"], self.artefacts.campaign_dir(cid), source=cid))
        return self._configs[cid]

    def job(self, jid: str, kind: str, done: bool = False) -> Job:
        hit = self.known_job(jid, kind)
        if hit is not None:
            return hit
        job = self.store.get_job(jid, kind)
        if job is not None and job.status == "done":
            self._memo(self._done, jid, job)
        if job is None:
            raise HTTPException(404, f"no {NOUN[kind]} with id {jid}")
        if done and job.status != "done":
            detail = f"{NOUN[kind]} {jid} is {job.status}" + (f": {job.error}" if job.error else "")
            raise HTTPException(409, detail + "; it can be used once it is done")
        return job

    def campaign(self, cid: str) -> dict:
        c = self.store.get_campaign(cid)
        if c is None:
            raise HTTPException(404, f"no campaign with id {cid}")
        return c

    def submit(self, kind: str, params: dict, campaign_id: str, parent_id: str | None = None) -> JobOut:
        job = self.store.add_job(kind, params, campaign_id=campaign_id, parent_id=parent_id)
        self.worker.wake()
        return job_out(job)


NOUN = {"train": "model", "score": "scores", "allocate": "allocation", "push": "push", "analysis": "analysis"}


def services(request: Request) -> Services:
    return request.app.state.services


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="an API key from 'promo-opt keys create'")


async def key_scopes(request: Request, key: str | None = Security(api_key_header)) -> set[str]:
    """The presented key's scopes; 401 when it is missing or not valid."""
    if not key:
        raise HTTPException(401, "missing API key: send it in the X-API-Key header "
                                 "(create one with 'promo-opt keys create')")
    svc = request.app.state.services
    scopes = svc.known_scopes(key) or await run_in_threadpool(svc.scopes, key)
    if scopes is None:
        raise HTTPException(401, "invalid API key")
    return scopes


def require(scope: str):
    async def check(scopes: set[str] = Depends(key_scopes)) -> None:
        if scope not in scopes:
            raise HTTPException(403, f"this API key lacks the '{scope}' scope")
    return Depends(check)


READ, WRITE = require("read"), require("write")


def job_out(job: Job) -> JobOut:
    end = job.finished_at if job.finished_at is not None else time.time()
    elapsed = None if job.started_at is None else max(end - job.started_at, 0.0)
    return JobOut(**vars(job), elapsed_seconds=elapsed)


def id_path(what: str):
    return Path(pattern=ID_PATTERN, description=f"{what} id")


router = APIRouter()


# ----------------------------------------------------------------------------------------------
# operability
# ----------------------------------------------------------------------------------------------
@router.get("/healthz", tags=["operations"])
def healthz() -> dict:
    """200 while the process serves requests (no key needed)."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", tags=["operations"])
def readyz(svc: Services = Depends(services)) -> JSONResponse:
    """200 when the database answers, the data directory is writable and the job worker runs."""
    checks = {}
    try:
        svc.store.ping()
        checks["database"] = "ok"
    except Exception as err:  # reported, not raised: this endpoint exists to say what is down
        checks["database"] = f"unavailable: {type(err).__name__}"
    checks["data_dir"] = "ok" if os.access(svc.artefacts.root, os.W_OK) else "not writable"
    checks["worker"] = "ok" if svc.worker.alive else "stopped"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(svc: Services = Depends(services)) -> Response:
    """Prometheus text format: requests, latencies, job durations."""
    return Response(svc.metrics.exposition(), media_type="text/plain; version=0.0.4")


@router.get("/session", tags=["operations"])
def session(scopes: set[str] = Depends(key_scopes)) -> dict:
    """What the presented key may do (the web app asks this at sign-in): its scopes."""
    return {"scopes": [s for s in ("read", "write") if s in scopes]}


# ----------------------------------------------------------------------------------------------
# campaigns
# ----------------------------------------------------------------------------------------------
@router.post("/campaigns", status_code=201, response_model=Campaign, tags=["campaigns"], dependencies=[WRITE])
def create_campaign(config: UploadFile = File(..., description="campaign config (YAML)"),
                    train: UploadFile | None = File(None, description="past campaign (.csv or .parquet)"),
                    candidates: UploadFile | None = File(None, description="users to decide for (.csv or .parquet)"),
                    panel: UploadFile | None = File(None, description="weekly customer panel named by ltv.panel"),
                    drivers: UploadFile | None = File(None, description="one row per user, named by drivers.data"),
                    svc: Services = Depends(services)) -> Campaign:
    """Upload a campaign: its config and tables, checked by the same code as the CLI (the ltv panel and the
    drivers table are checked when their analysis runs)."""
    try:
        raw = campaigns.parse_uploaded_yaml(config.file.read())
    except PromoOptError as err:
        raise campaigns.UploadError(str(err), "config") from None
    cid = new_id("campaign")
    d = svc.artefacts.partial_dir(cid, "campaigns")
    try:
        files = {}
        for field, up in (("train", train), ("candidates", candidates), ("panel", panel), ("drivers", drivers)):
            if up is None or not up.filename:
                continue
            name = campaigns.table_name(field, up.filename)
            with open(d / name, "wb") as f:
                shutil.copyfileobj(up.file, f, 2**20)
            files[field] = name
        raw = campaigns.with_server_files(raw, files)
        cfg = campaigns.load(raw, d, source="config")
        checked = campaigns.validate_tables(cfg)
    except PromoOptError as err:
        svc.artefacts.discard(cid, "campaigns")
        message = str(err).replace(f"{d}{os.sep}", "")  # no server paths in messages
        raise campaigns.UploadError(message, campaigns.upload_field(message)) from None
    except BaseException:
        svc.artefacts.discard(cid, "campaigns")
        raise
    svc.artefacts.commit(cid, "campaigns")
    svc.store.add_campaign(cid, cfg.name, raw, {**files, **checked})
    return Campaign(**svc.store.get_campaign(cid))


@router.get("/campaigns", response_model=list[Campaign], tags=["campaigns"], dependencies=[READ])
def list_campaigns(svc: Services = Depends(services)) -> list[Campaign]:
    return [Campaign(**c) for c in svc.store.list_campaigns()]


@router.get("/campaigns/{campaign_id}", response_model=Campaign, tags=["campaigns"], dependencies=[READ])
def get_campaign(campaign_id: str = id_path("campaign"), svc: Services = Depends(services)) -> Campaign:
    return Campaign(**svc.campaign(campaign_id))


# ----------------------------------------------------------------------------------------------
# models, scores: jobs
# ----------------------------------------------------------------------------------------------
@router.post("/models", status_code=202, response_model=JobOut, tags=["models"], dependencies=[WRITE])
def train_model(body: TrainRequest, svc: Services = Depends(services)) -> JobOut:
    """Train a model on a campaign's past data, as a background job."""
    c = svc.campaign(body.campaign_id)
    overrides = {f"model.{k}": v for k, v in (body.model.model_dump(exclude_none=True) if body.model else {}).items()}
    cfg = campaigns.load(c["config"], svc.artefacts.campaign_dir(c["id"]), overrides, source=c["id"])
    if cfg.data.train is None:
        raise PromoOptError(f"campaign {c['id']} has no train table: upload one with the campaign to train on it")
    return svc.submit("train", {"overrides": overrides}, c["id"])


@router.get("/models", response_model=list[JobOut], tags=["models"], dependencies=[READ])
def list_models(offset: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000),
                svc: Services = Depends(services)) -> list[JobOut]:
    return [job_out(j) for j in svc.store.list_jobs("train", limit, offset)]


@router.get("/models/{model_id}", response_model=JobOut, tags=["models"], dependencies=[READ])
def get_model(model_id: str = id_path("model"), svc: Services = Depends(services)) -> JobOut:
    return job_out(svc.job(model_id, "train"))


@router.get("/models/{model_id}/metrics", tags=["models"], dependencies=[READ])
def model_metrics(model_id: str = id_path("model"), svc: Services = Depends(services)) -> FileResponse:
    """The model's diagnostics (learner comparison, uplift by decile), as ``promo-opt train`` writes them."""
    job = svc.job(model_id, "train", done=True)
    return FileResponse(svc.artefacts.job_dir(job.id) / "metrics.json", media_type="application/json")


@router.post("/scores", status_code=202, response_model=JobOut, tags=["scores"], dependencies=[WRITE])
def score(body: ScoreRequest, svc: Services = Depends(services)) -> JobOut:
    """Score a campaign's candidates with a model (a job; the scores are kept for plans and allocations)."""
    model = svc.job(body.model_id, "train", done=True)
    c = svc.campaign(body.campaign_id or model.campaign_id)
    cfg = campaigns.load(c["config"], svc.artefacts.campaign_dir(c["id"]), source=c["id"])
    if cfg.data.candidates is None:
        raise PromoOptError(f"campaign {c['id']} has no candidates table: upload one to score it")
    return svc.submit("score", {}, c["id"], parent_id=model.id)


@router.get("/scores", response_model=list[JobOut], tags=["scores"], dependencies=[READ])
def list_scores(offset: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000),
                svc: Services = Depends(services)) -> list[JobOut]:
    return [job_out(j) for j in svc.store.list_jobs("score", limit, offset)]


@router.get("/scores/{scores_id}", response_model=JobOut, tags=["scores"], dependencies=[READ])
def get_scores(scores_id: str = id_path("scores"), svc: Services = Depends(services)) -> JobOut:
    return job_out(svc.job(scores_id, "score"))


# ----------------------------------------------------------------------------------------------
# plans: synchronous
# ----------------------------------------------------------------------------------------------
@router.post("/plans", response_model=PlanResponse, tags=["plans"], dependencies=[READ])
async def plan(body: PlanRequest, svc: Services = Depends(services)) -> PlanResponse:
    """What a budget buys: the budget curve at the given budgets (or a range), from the cached frontier;
    each point with the forecast an allocation at that budget would carry (``forecast``, 90% intervals).

    The first question on a scored set (per ROI floor) builds the frontier; later ones answer from
    memory in about a millisecond, on the event loop. Budgets breaking the ROI floor are re-solved,
    warm-started from the floor's multipliers (recorded by the first such question, cached with the frontier)."""
    job = svc.known_job(body.scores_id, "score") or await run_in_threadpool(svc.job, body.scores_id, "score", True)
    cfg = svc.known_config(job.campaign_id) or await run_in_threadpool(svc.config, job.campaign_id)
    min_roi = cfg.constraints.min_roi if body.min_roi is None else body.min_roi
    scores_path = svc.artefacts.job_dir(job.id) / SCORES_FILE
    cached = svc.cache.peek((job.id, min_roi)) or await run_in_threadpool(
        svc.cache.get, (job.id, min_roi),
        lambda: plans.build_frontier(cfg, scores_path, min_roi, svc.worker.forecast_correction(job.id)))
    budgets = body.budgets
    if body.budget_range is not None:
        r = body.budget_range
        budgets = np.linspace(r.low, r.high, r.n).tolist()
    if cached.problem.min_roi is not None:  # re-solves (and the first one's build) take time: off the loop
        cols = await run_in_threadpool(plans.answer, cfg, cached, budgets, body.n_points)
    else:
        cols = plans.answer(cfg, cached, budgets, body.n_points)
    users = [cols[f"users_{a}"] for a in cfg.arm_names]
    spend = [cols.get(f"spend_{a}") for a in cfg.arm_names]
    fields = ("budget", "spend", "incremental_conversions", "incremental_revenue", "objective",
              "marginal_gain_per_unit", "resolved")
    forecasts = plans.point_forecasts(cols, cfg.objective)
    points = [PlanPoint(**{f: cols[f][i] for f in fields},
                        roi=cols["roi"][i] if np.isfinite(cols["roi"][i]) else None,
                        users_per_arm={a: int(u[i]) for a, u in zip(cfg.arm_names, users)},
                        spend_per_arm={a: float(v[i]) for a, v in zip(cfg.arm_names, spend) if v is not None},
                        forecast=forecasts[i])
              for i in range(len(cols["budget"]))]
    return PlanResponse(scores_id=job.id, min_roi=min_roi, allocated_min_roi=cached.problem.min_roi,
                        min_roi_confidence=cfg.constraints.min_roi_confidence if min_roi else None,
                        objective=cfg.objective, points=points,
                        allocated_cost_weight=pipeline.reported_cost_weight(cfg.objective, cached.correction))


# ----------------------------------------------------------------------------------------------
# allocations: jobs, downloads, pushes
# ----------------------------------------------------------------------------------------------
@router.post("/allocations", status_code=202, response_model=JobOut, tags=["allocations"], dependencies=[WRITE])
def create_allocation(body: AllocationRequest, svc: Services = Depends(services)) -> JobOut:
    """A targeting list for a budget / ROI floor / arm caps (a job); defaults come from the campaign."""
    scores = svc.job(body.scores_id, "score", done=True)
    c = svc.campaign(scores.campaign_id)
    overrides: dict = {}
    if body.budget is not None:
        overrides["constraints.budget"] = body.budget
    if body.min_roi is not None:
        overrides["constraints.min_roi"] = body.min_roi
    if body.arm_caps:
        arms = [dict(a) for a in c["config"].get("arms", [])]
        names = [a.get("name") for a in arms]
        unknown = sorted(set(body.arm_caps) - set(names))
        if unknown:
            raise PromoOptError(f"arm_caps: unknown arm(s) {unknown}; the campaign's arms are {names}")
        for a in arms:
            cap = body.arm_caps.get(a["name"])
            if cap is not None:
                a.update(cap.model_dump(exclude_none=True))
        overrides["arms"] = arms
    campaigns.load(c["config"], svc.artefacts.campaign_dir(c["id"]), overrides, source="request")  # fails now
    return svc.submit("allocate", {"overrides": overrides}, c["id"], parent_id=scores.id)


@router.get("/allocations", response_model=list[JobOut], tags=["allocations"], dependencies=[READ])
def list_allocations(offset: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000),
                     svc: Services = Depends(services)) -> list[JobOut]:
    return [job_out(j) for j in svc.store.list_jobs("allocate", limit, offset)]


@router.get("/allocations/{allocation_id}", response_model=JobOut, tags=["allocations"], dependencies=[READ])
def get_allocation(allocation_id: str = id_path("allocation"), svc: Services = Depends(services)) -> JobOut:
    """The job and, once done, its summary (expected totals, users per arm, solver, gap, slacks)."""
    return job_out(svc.job(allocation_id, "allocate"))


def _csv_chunks(path, batch_rows: int = 50_000):
    for i, batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=batch_rows)):
        yield batch.to_pandas().to_csv(index=False, header=i == 0, float_format="%.10g", lineterminator="\n").encode()


def _jsonl_chunks(path, batch_rows: int = 50_000):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        text = batch.to_pandas().to_json(orient="records", lines=True, double_precision=10)
        yield (text if text.endswith("\n") else text + "\n").encode()


@router.get("/allocations/{allocation_id}/targets", tags=["allocations"], dependencies=[READ],
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {},
                                         "application/vnd.apache.parquet": {},
                                         "application/json": {"schema": TargetsPage.model_json_schema()}}}})
def targets(allocation_id: str = id_path("allocation"),
            format: Literal["csv", "parquet", "jsonl", "json"] = Query("csv", description="json: one page"),
            offset: int = Query(0, ge=0, le=10**9, description="json only: first row"),
            limit: int = Query(1000, ge=1, le=10_000, description="json only: rows per page"),
            svc: Services = Depends(services)):
    """The targeting list (every candidate: arm, holdout, expected economics): CSV, Parquet or JSON Lines,
    streamed; or one JSON page."""
    job = svc.job(allocation_id, "allocate", done=True)
    path = svc.artefacts.job_dir(job.id) / TARGETS_FILE
    name = f"targets-{job.id}"
    if format == "parquet":
        return FileResponse(path, media_type="application/vnd.apache.parquet", filename=f"{name}.parquet")
    if format == "csv":
        return StreamingResponse(_csv_chunks(path), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "jsonl":
        return StreamingResponse(_jsonl_chunks(path), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'})
    table = pq.read_table(path)
    total = table.num_rows
    rows = table.slice(offset, limit).to_pylist() if offset < total else []
    nxt = offset + limit if offset + limit < total else None
    return TargetsPage(allocation_id=job.id, offset=offset, limit=limit, total=total, next_offset=nxt, rows=rows)


@router.post("/allocations/{allocation_id}/push", status_code=202, response_model=JobOut, tags=["allocations"],
             dependencies=[WRITE])
def push(body: PushRequestBody, allocation_id: str = id_path("allocation"),
         svc: Services = Depends(services)) -> JobOut:
    """Send a finished targeting list to a webhook in batches (a job): retries with backoff, idempotency keys."""
    job = svc.job(allocation_id, "allocate", done=True)
    allowed = svc.settings.webhook_hosts
    if allowed and body.url.host not in allowed:
        raise PromoOptError(f"url: host {body.url.host!r} is not one this server pushes to; allowed: "
                            f"{', '.join(allowed)} (serve --webhook-host)")
    params = {**body.model_dump(), "url": str(body.url)}
    return svc.submit("push", params, job.campaign_id, parent_id=job.id)


@router.get("/pushes/{push_id}", response_model=PushOut, tags=["allocations"], dependencies=[READ])
def get_push(push_id: str = id_path("push"), svc: Services = Depends(services)) -> PushOut:
    """The push job and its delivery log (every attempt of every batch)."""
    job = svc.job(push_id, "push")
    return PushOut(**job_out(job).model_dump(), deliveries=svc.store.list_deliveries(job.id))


# ----------------------------------------------------------------------------------------------
# analyses: jobs over the core's effect / ltv / drivers reports and the policy comparison
# ----------------------------------------------------------------------------------------------
@router.get("/campaigns/{campaign_id}/analyses", response_model=CampaignAnalyses, tags=["analyses"],
            dependencies=[READ])
def campaign_analyses(campaign_id: str = id_path("campaign"), svc: Services = Depends(services)) -> CampaignAnalyses:
    """Which reports this campaign's config allows (and the missing key where not), and its analyses so far."""
    c = svc.campaign(campaign_id)
    jobs = svc.store.list_jobs("analysis", limit=1000, campaign_id=c["id"])
    return CampaignAnalyses(campaign_id=c["id"], analyses=analyses.available(svc.config(c["id"])),
                            jobs=[job_out(j) for j in jobs])


@router.post("/analyses", status_code=202, response_model=JobOut, tags=["analyses"], dependencies=[WRITE])
def create_analysis(body: AnalysisRequest, svc: Services = Depends(services)) -> JobOut:
    """Run ``effect``, ``ltv`` or ``drivers`` on a campaign whose config has what it needs (422 naming the
    missing section otherwise), or value a targeting list against other strategies (``policies``); a job."""
    if body.analysis == "policies":
        alloc = svc.job(body.allocation_id, "allocate", done=True)
        return svc.submit("analysis", {"analysis": "policies"}, alloc.campaign_id, parent_id=alloc.id)
    c = svc.campaign(body.campaign_id)
    analyses.check(svc.config(c["id"]), body.analysis)
    params: dict = {"analysis": body.analysis}
    parent = None
    if body.analysis == "effect":
        params.update(method=body.method or "aipw", estimand=body.estimand or "ate", adjust=body.adjust)
        if body.graph_analysis_id is not None:
            g = svc.job(body.graph_analysis_id, "analysis", done=True)
            if g.params.get("analysis") != "drivers" or g.campaign_id != c["id"]:
                raise PromoOptError(f"graph_analysis_id: {g.id} is not a drivers analysis of campaign {c['id']}")
            params["graph_analysis_id"] = parent = g.id
    if body.boot is not None:
        params["boot"] = body.boot
    return svc.submit("analysis", params, c["id"], parent_id=parent)


@router.get("/analyses", response_model=list[JobOut], tags=["analyses"], dependencies=[READ])
def list_analyses(campaign_id: str | None = Query(None, pattern=ID_PATTERN, description="only this campaign's"),
                  offset: int = Query(0, ge=0, le=10**9), limit: int = Query(100, ge=1, le=1000),
                  svc: Services = Depends(services)) -> list[JobOut]:
    return [job_out(j) for j in svc.store.list_jobs("analysis", limit, offset, campaign_id=campaign_id)]


@router.get("/analyses/{analysis_id}", response_model=JobOut, tags=["analyses"], dependencies=[READ])
def get_analysis(analysis_id: str = id_path("analysis"), svc: Services = Depends(services)) -> JobOut:
    """The job and, once done, its key figures (copied from the files it wrote)."""
    return job_out(svc.job(analysis_id, "analysis"))


@router.get("/analyses/{analysis_id}/files/{name}", tags=["analyses"], dependencies=[READ],
            responses={200: {"content": {m: {} for m in analyses.MEDIA_TYPES.values()}}})
def analysis_file(analysis_id: str = id_path("analysis"),
                  name: str = Path(pattern=r"^[a-z_]+\.(json|csv|html|yaml)$",
                                   description="a file the analysis wrote, e.g. ltv.json, drivers.csv, report.html"),
                  svc: Services = Depends(services)) -> Response:
    """A file the analysis wrote, as the CLI writes it; ``report.html`` is served with the app's
    Content-Security-Policy (its own inline style allowed by hash; no script)."""
    job = svc.job(analysis_id, "analysis", done=True)
    path = svc.artefacts.job_dir(job.id) / name
    kind = job.params["analysis"]
    if name not in analyses.FILES[kind] or not path.is_file():
        written = [f for f in analyses.FILES[kind] if (svc.artefacts.job_dir(job.id) / f).is_file()]
        raise HTTPException(404, f"analysis {job.id} ({kind}) has no file {name!r}; its files: {', '.join(written)}")
    if name == "report.html":
        return ui.report_response(path.read_bytes())
    return FileResponse(path, media_type=analyses.MEDIA_TYPES[path.suffix], filename=f"{job.id}-{name}",
                        content_disposition_type="inline")


# ----------------------------------------------------------------------------------------------
# the app
# ----------------------------------------------------------------------------------------------
def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        artefacts = Artefacts(settings.data_dir)
        store = Store(settings.database_url)
        interrupted = store.fail_interrupted()
        removed = artefacts.recover(store.job_ids("done"), {c["id"] for c in store.list_campaigns()})
        if interrupted:
            log.warning("jobs interrupted by the last stop marked failed", extra={"jobs": interrupted})
        worker = Worker(store, artefacts, settings, metrics)
        cache = plans.FrontierCache(settings.frontier_cache, on_change=metrics.cache_entries.set)
        app.state.services = Services(settings, store, artefacts, worker, cache, metrics)
        worker.start()
        log.info("service ready", extra={"data_dir": str(artefacts.root), "removed": removed,
                                         "database": store.engine.url.render_as_string(hide_password=True)})
        try:
            yield
        finally:
            worker.stop()
            store.close()

    app = FastAPI(title="promo-opt", version=__version__, lifespan=lifespan,
                  description="Budget-constrained promotion optimizer: campaigns, models, scores, what-if plans, "
                              "targeting lists and their delivery. Every call but /healthz, /readyz and /metrics "
                              "needs an X-API-Key.")
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes)

    @app.exception_handler(PromoOptError)
    async def _user_error(request: Request, err: PromoOptError) -> JSONResponse:
        body = {"detail": str(err)}
        if getattr(err, "field", None):  # an upload's message, placed next to its field by the web app
            body["field"] = err.field
        return JSONResponse(body, status_code=422)

    app.include_router(router)
    app.include_router(ui.router)
    return app


__all__ = ["Services", "create_app"]
