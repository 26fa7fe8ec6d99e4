"""Registering a model trained elsewhere (``promo-opt train``) with the service: an operator's step.

A model file is a pickle, and loading a pickle runs code, so models are never uploaded over HTTP:
an operator registers a directory from the server's own disk. The model is loaded and checked
against the campaign's config (arms) by ``TrainedModel.load``, copied whole into the data
directory, and recorded as a finished model of that campaign.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from promo_opt.errors import PromoOptError
from promo_opt.model import META_FILE, METRICS_FILE, MODEL_FILE, TrainedModel
from promo_opt.service import campaigns
from promo_opt.service.artefacts import Artefacts
from promo_opt.service.store import Job, Store


def register_model(store: Store, artefacts: Artefacts, campaign_id: str, model_dir: Path) -> Job:
    c = store.get_campaign(campaign_id)
    if c is None:
        raise PromoOptError(f"no campaign with id {campaign_id}; upload it first (POST /campaigns)")
    cfg = campaigns.load(c["config"], artefacts.campaign_dir(campaign_id), source=campaign_id)
    model = TrainedModel.load(model_dir, cfg)  # fails clearly on another campaign's arms
    job = store.add_job("train", {"registered_from": str(Path(model_dir).resolve())}, campaign_id=campaign_id,
                        status="running")
    try:
        partial = artefacts.partial_dir(job.id)
        for name in (MODEL_FILE, META_FILE, METRICS_FILE):
            if (Path(model_dir) / name).is_file():
                shutil.copy2(Path(model_dir) / name, partial / name)
        artefacts.commit(job.id)
    except BaseException:
        artefacts.discard(job.id)
        store.fail(job.id, "registration did not complete")
        raise
    sel = model.metrics.get("selection", {})
    store.finish(job.id, {"learner": sel.get("chosen"), "reason": sel.get("reason"), "arms": model.arm_names,
                          "features": model.features, "n_train": model.metrics.get("n_train"), "registered": True})
    return store.get_job(job.id)
