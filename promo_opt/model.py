"""A trained model: preprocessing, uplift learner, order-value model, saved with its context.

A model directory holds ``model.joblib`` (the fitted objects), ``model.json`` (arms, features,
objective, library versions) and ``metrics.json`` (the learner comparison and diagnostics).
Loading a model for a config with other arms or feature columns fails with a clear message.
"""

from __future__ import annotations

import io
import platform
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from promo_opt import __version__
from promo_opt.config import CampaignConfig
from promo_opt.data import write_bytes, write_json
from promo_opt.errors import ModelError
from promo_opt.features import FeaturePreprocessor
from promo_opt.learners.honest import CrossFitted
from promo_opt.learners.value import OrderValueModel

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
METRICS_FILE = "metrics.json"
SELECTION_FILE = "selection.json"


def library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    return {"promo_opt": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__, "lightgbm": lightgbm.__version__}


@dataclass
class TrainedModel:
    arm_names: list[str]
    features: list[str]
    preprocessor: FeaturePreprocessor
    uplift: CrossFitted
    value_model: OrderValueModel | None  # None: every conversion is worth 1
    metrics: dict = field(default_factory=dict)

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(p (n, K) per-arm conversion probabilities, value (n,) expected order value)."""
        Z = self.preprocessor.transform(X)
        p = self.uplift.predict_proba(Z)
        value = self.value_model.predict(Z) if self.value_model is not None else np.ones(len(X))
        return p, value

    def save(self, directory: str | Path, config: CampaignConfig) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        joblib.dump(self, buf, compress=3)
        meta = {"arms": self.arm_names, "features": self.features, "campaign": config.name,
                "treatment": config.data.treatment, "value": config.data.value,
                "learner": self.uplift.learner, "versions": library_versions()}
        write_json(self.metrics, directory / METRICS_FILE)
        if "selection" in self.metrics:  # the learner comparison on its own (issue 4)
            write_json(self.metrics["selection"], directory / SELECTION_FILE)
        write_json(meta, directory / META_FILE)
        write_bytes(buf.getvalue(), directory / MODEL_FILE)  # last: its presence means complete
        return directory

    @staticmethod
    def load(directory: str | Path, config: CampaignConfig | None = None) -> "TrainedModel":
        directory = Path(directory)
        path = directory / MODEL_FILE
        if not path.is_file():
            raise ModelError(f"no trained model in {directory} (expected {MODEL_FILE}; run 'promo-opt train')")
        model = joblib.load(path)
        if not isinstance(model, TrainedModel):
            raise ModelError(f"{path} is not a promo-opt model")
        if config is not None:
            if model.arm_names != config.arm_names:
                raise ModelError(
                    f"model in {directory} was trained on arms {model.arm_names}, but the config has "
                    f"{config.arm_names}; retrain with 'promo-opt train'"
                )
        return model
