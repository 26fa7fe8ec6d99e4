"""MLflow model registry: where runs are logged, and the uplift models' training runs.

The tracking URI is the argument, else ``$MLFLOW_TRACKING_URI``, else a local file store
``./mlruns`` (MLflow 3 keeps the file store behind an opt-in, which is given here for local paths
only); teams point it at their tracking server. Long-term-value runs: ``promo_opt.ltv.tracking``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from promo_opt.config import CampaignConfig
from promo_opt.errors import DataError

TRAINING_EXPERIMENT = "promo-opt-training"


def tracking_uri(uri: str | None = None) -> str:
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or (Path.cwd() / "mlruns").resolve().as_uri()
    if "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).resolve().as_uri()  # a plain path is a local file store
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def client(uri: str | None = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(uri))


def experiment_id(c, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else c.create_experiment(name)


def get_run(c, run_id: str, kind: str, uri: str | None):
    """The run, or a DataError if it does not exist or is not a promo-opt run of this kind."""
    from mlflow.exceptions import MlflowException

    try:
        run = c.get_run(run_id)
    except MlflowException:
        raise DataError(f"no MLflow run '{run_id}' in the tracking store {tracking_uri(uri)}") from None
    if run.data.tags.get("promo_opt.kind") != kind:
        raise DataError(f"MLflow run '{run_id}' is not a promo-opt {kind} run")
    return run


def flat_metrics(d: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in a nested mapping, keyed by its dotted path."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_metrics(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf"):
            out[key] = float(v)
    return out


@contextlib.contextmanager
def new_run(c, experiment: str, kind: str, name: str):
    """A run of ``experiment`` tagged with its kind and campaign; yields its id; marked FAILED when the
    block raises, finished otherwise."""
    run = c.create_run(experiment_id(c, experiment), run_name=name, tags={"promo_opt.kind": kind, "campaign": name})
    rid = run.info.run_id
    try:
        yield rid
    except BaseException:
        c.set_terminated(rid, status="FAILED")
        raise
    c.set_terminated(rid)


def log_training(model_dir: str | Path, config: CampaignConfig, metrics: dict, uri: str | None = None) -> str:
    """Log a training run of the uplift models (``promo-opt train --track``): the model directory as artifacts."""
    c = client(uri)
    with new_run(c, TRAINING_EXPERIMENT, "training", config.name) as rid:
        sel = metrics.get("selection", {})
        params = {"learner": config.model.learner, "chosen_learner": sel.get("chosen"), "folds": config.model.folds,
                  "calibrate": config.model.calibrate, "objective": config.objective, "seed": config.seed,
                  "arms": ",".join(config.arm_names), "n_train": metrics.get("n_train")}
        for k, v in params.items():
            c.log_param(rid, k, v)
        for k, v in flat_metrics({k: v for k, v in metrics.items() if k != "uplift_by_decile"}).items():
            c.log_metric(rid, k, v)
        c.log_artifacts(rid, str(model_dir), artifact_path="model")
    return rid


@dataclass
class LoggedTraining:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]


def read_training_run(run_id: str, uri: str | None = None, model_dir: str | Path | None = None) -> LoggedTraining:
    """A logged training run; with ``model_dir`` its model directory is downloaded there (``TrainedModel.load``)."""
    c = client(uri)
    run = get_run(c, run_id, "training", uri)
    if model_dir is not None:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            got = Path(c.download_artifacts(run_id, "model", tmp))
            for f in got.iterdir():
                (Path(model_dir) / f.name).write_bytes(f.read_bytes())
    return LoggedTraining(run_id=run_id, params=dict(run.data.params), metrics=dict(run.data.metrics))
