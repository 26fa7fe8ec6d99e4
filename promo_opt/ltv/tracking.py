"""Model registry of the long-term model: fitted systems, their weights and valuations logged to MLflow.

``log_ltv(result, config, out_dir)`` logs one run: the model's settings as parameters, every
valuation (immediate, long_term, multiplier with their intervals; R^2; stability) as metrics, and
``ltv.json``, ``weights.csv``, ``report.html`` and ``model.npz`` (the fitted coefficient arrays)
as artifacts. ``read_ltv_run(run_id)`` reads a run back. Where runs go: ``promo_opt.tracking.tracking_uri``.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.tracking import client as _client
from promo_opt.tracking import get_run, new_run, tracking_uri  # noqa: F401 (tracking_uri: re-exported)

EXPERIMENT = "promo-opt-ltv"


def model_arrays(result) -> bytes:
    """The fitted system's point-estimate arrays as an ``.npz`` (readable with ``numpy.load``)."""
    f = result.fit
    buf = io.BytesIO()
    np.savez(buf, const=f.const[0], lag=f.lag[0], arm=f.arm[0], control=f.control[0], same=f.same[0],
             variables=np.array(f.design.variables), regressors=np.array(f.design.regressors),
             order=np.array(f.order))
    return buf.getvalue()


def log_ltv(result, config: CampaignConfig, out_dir: str | Path, uri: str | None = None,
            experiment: str = EXPERIMENT) -> str:
    """Log a valuation run (the files ``write_ltv`` put in ``out_dir``); returns the MLflow run id."""
    client = _client(uri)
    d = result.to_dict()
    ltv = config.ltv
    with new_run(client, experiment, "ltv", config.name) as rid:
        params = {"outcome": ltv.outcome, "horizon": ltv.horizon, "lags": ltv.lags, "alpha": ltv.alpha,
                  "boot": result.fit.n_boot, "surrogates": ",".join(ltv.surrogates),
                  "controls": ",".join(ltv.controls), "same_period": json.dumps([list(e) for e in ltv.same_period]),
                  "panel": str(ltv.panel), "arms": ",".join(config.arm_names), "seed": config.seed,
                  "n_customers": result.fit.n_customers, "n_rows": result.fit.n_rows}
        for k, v in params.items():
            client.log_param(rid, k, v)
        metrics = {"spectral_radius": d["model"]["spectral_radius"],
                   **{f"r2.{k}": v for k, v in d["model"]["r2"].items()}}
        for arm, a in d["arms"].items():
            for q in ("immediate", "long_term", "multiplier"):
                for part, v in a[q].items():
                    if v is not None and np.isfinite(v):
                        metrics[f"{q}.{arm}.{part}"] = v
        for k, v in metrics.items():
            client.log_metric(rid, k, float(v))
        out_dir = Path(out_dir)
        for name in ("ltv.json", "weights.csv", "report.html"):
            client.log_artifact(rid, str(out_dir / name))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model.npz").write_bytes(model_arrays(result))
            client.log_artifact(rid, str(Path(tmp) / "model.npz"))
    return rid


@dataclass
class LoggedLtv:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    ltv: dict  # the run's ltv.json
    weights: pd.DataFrame
    model: dict[str, np.ndarray]  # the coefficient arrays of model.npz


def read_ltv_run(run_id: str, uri: str | None = None) -> LoggedLtv:
    """A logged valuation run: its parameters, metrics, ltv.json, weights and coefficient arrays."""
    client = _client(uri)
    run = get_run(client, run_id, "ltv", uri)
    with tempfile.TemporaryDirectory() as tmp:
        d = json.loads(Path(client.download_artifacts(run_id, "ltv.json", tmp)).read_text())
        w = pd.read_csv(client.download_artifacts(run_id, "weights.csv", tmp))
        with np.load(client.download_artifacts(run_id, "model.npz", tmp)) as z:
            model = {k: z[k] for k in z.files}
    return LoggedLtv(run_id=run_id, params=dict(run.data.params), metrics=dict(run.data.metrics), ltv=d, weights=w,
                     model=model)


def list_ltv_runs(uri: str | None = None, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Every ltv run of the experiment: run id, campaign, start time, long-term estimates."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame(columns=["run_id", "campaign", "start_time"])
    rows = []
    for r in client.search_runs([exp.experiment_id], filter_string="tags.`promo_opt.kind` = 'ltv'",
                                order_by=["attributes.start_time DESC"]):
        rows.append({"run_id": r.info.run_id, "campaign": r.data.tags.get("campaign"), "start_time": r.info.start_time,
                     **{k: v for k, v in r.data.metrics.items() if k.startswith("long_term.") and k.endswith(".estimate")}})
    return pd.DataFrame(rows)
