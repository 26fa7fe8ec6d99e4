"""The background worker: threads that take queued jobs from the store and run them through the core.

Job kinds: ``train`` (a model from a campaign), ``score`` (a model on a campaign's candidates),
``allocate`` (a targeting list from scores), ``push`` (a targeting list to a webhook) and ``analysis``
(a campaign's ``effect`` / ``ltv`` / ``drivers`` report, or the policy comparison of a targeting list).
Output goes to a partial directory renamed into place before the job is marked done.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from promo_opt import pipeline
from promo_opt.data import read_table, write_json, write_table
from promo_opt.errors import PromoOptError
from promo_opt.model import METRICS_FILE, TrainedModel
from promo_opt.service import analyses, campaigns
from promo_opt.service.artefacts import Artefacts
from promo_opt.service.observability import Metrics
from promo_opt.service.settings import ServiceSettings
from promo_opt.service.store import Job, Store
from promo_opt.service.webhook import PushRequest, push_targets

log = logging.getLogger(__name__)

SCORES_FILE = "scores.parquet"
TARGETS_FILE = "targets.parquet"
SUMMARY_FILE = "summary.json"
FIGURES_FILE = "figures.json"  # an analysis's key figures (its job result), copied from its outputs
EVALUATION_FILE = "evaluation.json"


class Worker:
    def __init__(self, store: Store, artefacts: Artefacts, settings: ServiceSettings, metrics: Metrics):
        self.store, self.artefacts, self.settings, self.metrics = store, artefacts, settings, metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._loop, name=f"promo-opt-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next()
            except Exception:  # the database is away: log and try again, the job stays queued
                log.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.run(job)

    # -- one job ----------------------------------------------------------------------------
    def run(self, job: Job) -> None:
        t0 = time.perf_counter()
        self.metrics.jobs_running.inc()
        status = "failed"
        log.info("job started", extra={"job_id": job.id, "kind": job.kind})
        try:
            result = getattr(self, f"_run_{job.kind}")(job)
            if job.kind != "push":
                self.artefacts.commit(job.id)
            self.store.finish(job.id, result)
            status = "done"
        except PromoOptError as err:
            self.store.fail(job.id, str(err))
        except Exception as err:  # a bug: the traceback goes to the log, the job says so
            log.exception("job crashed", extra={"job_id": job.id})
            self.store.fail(job.id, f"internal error ({type(err).__name__}); see the server log")
        finally:
            if status != "done":
                self.artefacts.discard(job.id)
            seconds = time.perf_counter() - t0
            self.metrics.jobs_running.dec()
            self.metrics.job_seconds.labels(job.kind, status).observe(seconds)
            log.info("job finished", extra={"job_id": job.id, "kind": job.kind, "status": status,
                                            "seconds": round(seconds, 3)})

    def config(self, campaign_id: str, overrides: dict | None = None):
        c = self.store.get_campaign(campaign_id)
        if c is None:
            raise PromoOptError(f"campaign {campaign_id} no longer exists")
        return campaigns.load(c["config"], self.artefacts.campaign_dir(campaign_id), overrides, source=campaign_id)

    def _run_train(self, job: Job) -> dict:
        cfg = self.config(job.campaign_id, job.params.get("overrides"))
        model = pipeline.train(cfg)
        model.save(self.artefacts.partial_dir(job.id), cfg)
        sel = model.metrics["selection"]
        return {"learner": sel["chosen"], "reason": sel["reason"], "arms": model.arm_names,
                "features": model.features, "n_train": model.metrics["n_train"],
                "seconds": model.metrics["seconds"]}

    def _run_score(self, job: Job) -> dict:
        cfg = self.config(job.campaign_id)
        model = TrainedModel.load(self.artefacts.job_dir(job.parent_id), cfg)
        scores = pipeline.score_candidates(cfg, model)
        write_table(scores, self.artefacts.partial_dir(job.id) / SCORES_FILE)
        return {"n_candidates": int(len(scores)), "columns": list(scores.columns)}

    def _allocation(self, job: Job) -> tuple:
        """The config and the core's allocation outcome of an ``allocate`` job (the solve is deterministic)."""
        cfg = self.config(job.campaign_id, job.params.get("overrides"))
        scores = read_table(self.artefacts.job_dir(job.parent_id) / SCORES_FILE, "scores")
        return cfg, pipeline.allocate(cfg, scores, correction=self.forecast_correction(job.parent_id))

    def _run_allocate(self, job: Job) -> dict:
        cfg, outcome = self._allocation(job)
        out = self.artefacts.partial_dir(job.id)
        write_table(outcome.targets, out / TARGETS_FILE)
        write_json(outcome.summary, out / SUMMARY_FILE)
        return json.loads((out / SUMMARY_FILE).read_text())  # as written: NaN -> null, numpy -> plain

    def forecast_correction(self, score_job_id: str) -> dict | None:
        """The winner's-curse correction saved with the model that the scores came from."""
        score_job = self.store.get_job(score_job_id)
        if score_job is None or score_job.parent_id is None:
            return None
        path = self.artefacts.job_dir(score_job.parent_id) / METRICS_FILE
        return json.loads(path.read_text()).get("forecast_correction") if path.exists() else None

    def _run_push(self, job: Job) -> dict:
        cfg = self.config(job.campaign_id)
        req = PushRequest(**job.params)
        return push_targets(self.store, job.id, job.parent_id, self.artefacts.job_dir(job.parent_id) / TARGETS_FILE,
                            cfg.control.name, req, self.settings.webhook_timeout, self._stop)

    def _run_analysis(self, job: Job) -> dict:
        out = self.artefacts.partial_dir(job.id)
        if job.params["analysis"] == "policies":
            figures = self._policy_comparison(job, out)
        else:
            params = dict(job.params)
            if params.get("graph_analysis_id"):  # effect --adjust graph on a drivers analysis's graph.json
                params["graph_path"] = self.artefacts.job_dir(params["graph_analysis_id"]) / "graph.json"
            figures = analyses.run_campaign_analysis(self.config(job.campaign_id), params, out)
        write_json(figures, out / FIGURES_FILE)
        return json.loads((out / FIGURES_FILE).read_text())  # as written: NaN -> null, numpy -> plain

    def _policy_comparison(self, job: Job, out) -> dict:
        """The targeting list against the strategies people use instead, valued off-policy (doubly robust on
        the training rows' out-of-fold predictions), as ``promo-opt run`` reports it."""
        from promo_opt.evaluation.policies import compare_policies

        alloc = self.store.get_job(job.parent_id, "allocate")
        scores = self.store.get_job(alloc.parent_id, "score")
        cfg, outcome = self._allocation(alloc)
        if outcome.summary["users_per_arm"] != alloc.result["users_per_arm"]:
            raise PromoOptError(f"allocation {alloc.id} could not be reproduced from its scores (users per arm "
                                f"{outcome.summary['users_per_arm']} vs {alloc.result['users_per_arm']}); create it again")
        model = TrainedModel.load(self.artefacts.job_dir(scores.parent_id), cfg)
        comparison = compare_policies(cfg, model, outcome)
        write_json(comparison, out / EVALUATION_FILE)
        return {"analysis": "policies", "allocation_id": alloc.id, "model_id": scores.parent_id,
                **json.loads((out / EVALUATION_FILE).read_text())}
