"""Drift and overlap: do the candidates look like the users the model learned from?

A *domain classifier* (LightGBM, cross-fitted) learns to tell candidates from past-campaign
users on the model's features. Its out-of-fold AUC is the drift score: 0.5 when the two
populations cannot be told apart, 1 when they never overlap. Its odds also give the density
ratio ``w(x) = p_candidates(x) / p_train(x) = q(x) / (1 - q(x)) * n_train / n_candidates`` (q the
classifier's probability of "candidate"), which is what the checks act on:

* **overlap**: a candidate with ``w(x)`` above ``drift.max_weight`` sits where the past campaign had
  (almost) no users like it; the model would extrapolate there. When more than
  ``drift.max_outside_share`` of the candidates do, the run is refused with a message naming the
  features that differ most (``drift.on_extrapolation: warn`` turns the refusal into a warning).
* **correction**: otherwise, when the AUC reaches ``drift.auc_threshold`` (``shifted``) and
  ``drift.reweight`` is on, the training rows get importance weights ``w(x)`` (clipped at
  ``max_weight``, mean 1): the learners fit, and the held-out forecast measures, the candidates'
  population instead of the past one.

What no check on features can see: a change in how users respond at the *same* features (a
season with a lower base rate, a competitor's sale). The ``drift`` block reports what features
can show; the forecast interval and the holdout measure the rest afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promo_opt.config import DriftConfig
from promo_opt.errors import DataError

log = logging.getLogger(__name__)

MAX_ROWS_PER_SIDE = 50_000  # the classifier is fitted on at most this many rows of each table
FOLDS = 3
CLASSIFIER = dict(learning_rate=0.1, num_leaves=15, min_child_samples=100, n_estimators=300, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0)


@dataclass
class DriftReport:
    auc: float  # out-of-fold AUC of the domain classifier (train vs candidates)
    shifted: bool  # auc >= threshold
    top_features: list[str]  # the features that tell the populations apart, most first
    threshold: float
    importance: dict[str, float] = field(default_factory=dict)  # share of the classifier's gain per feature
    outside_share: float = 0.0  # share of candidates whose density ratio exceeds max_weight
    effective_sample_share: float = 1.0  # of the training rows under the importance weights
    action: str = "none"  # none | reweighted | warned
    message: str = ""
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"auc": self.auc, "shifted": self.shifted, "top_features": self.top_features,
                "threshold": self.threshold, "importance": self.importance, "outside_share": self.outside_share,
                "effective_sample_share": self.effective_sample_share, "action": self.action,
                "message": self.message, "rows": self.rows}


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


def check_drift(train: pd.DataFrame, candidates: pd.DataFrame, settings: DriftConfig,
                seed: int = 0) -> tuple[DriftReport, np.ndarray | None]:
    """Compare the preprocessed feature frames of the training rows and the candidates.

    Returns the report and, when the rows are to be reweighted, the (n_train,) importance weights
    (mean 1); None otherwise. Raises :class:`DataError` when the candidates lie outside the
    training data's support (see the module doc) and ``settings.on_extrapolation`` is ``refuse``.
    """
    from sklearn.metrics import roc_auc_score

    from promo_opt.learners.honest import fold_splits
    from promo_opt.learners.lgbm import _fit_early_stopped, lgbm_model, predict_outcome

    if list(train.columns) != list(candidates.columns):
        raise DataError("drift check: the training and candidate feature columns differ")
    rng = np.random.default_rng([seed, 9173])
    it, ic = _sample(len(train), MAX_ROWS_PER_SIDE, rng), _sample(len(candidates), MAX_ROWS_PER_SIDE, rng)
    X = pd.concat([train.iloc[it], candidates.iloc[ic]], ignore_index=True)
    d = np.r_[np.zeros(len(it), dtype=np.int64), np.ones(len(ic), dtype=np.int64)]
    oof = np.zeros(len(d))
    models = []
    for f, (tr, te) in enumerate(fold_splits(d, np.zeros(len(d)), FOLDS, seed)):
        m = lgbm_model("binary", random_state=seed + f, **CLASSIFIER)
        models.append(_fit_early_stopped(m, X.iloc[tr], d[tr], seed + f, stratify=d[tr]))
        oof[te] = predict_outcome(models[-1], X.iloc[te])
    auc = float(roc_auc_score(d, oof))
    gain = np.sum([m.booster_.feature_importance(importance_type="gain") for m in models], axis=0)
    share = gain / gain.sum() if gain.sum() > 0 else np.zeros(len(gain))
    order = np.argsort(-share, kind="stable")
    importance = {str(train.columns[j]): float(share[j]) for j in order}
    top = [str(train.columns[j]) for j in order if share[j] >= 0.05][:5]
    shifted = auc >= settings.auc_threshold

    prior = len(it) / len(ic)  # odds of the classifier -> density ratio candidates / train

    def ratio(frame: pd.DataFrame) -> np.ndarray:
        q = np.clip(np.mean([predict_outcome(m, frame) for m in models], axis=0), 1e-6, 1 - 1e-6)
        return q / (1 - q) * prior

    r_cand = np.clip(oof[len(it):], 1e-6, 1 - 1e-6)
    outside = float(np.mean(r_cand / (1 - r_cand) * prior > settings.max_weight))
    report = DriftReport(auc=auc, shifted=bool(shifted), top_features=top, threshold=settings.auc_threshold,
                         importance=importance, outside_share=outside,
                         rows={"train": int(len(it)), "candidates": int(len(ic))})
    if not shifted:
        report.message = f"no drift: the candidates cannot be told from the past campaign's users (AUC {auc:.3f})"
        return report, None
    what = (f"the candidates differ from the past campaign's users (domain classifier AUC {auc:.3f} >= "
            f"{settings.auc_threshold:g}; most different: {', '.join(top) or 'no single feature'})")
    if outside > settings.max_outside_share:
        msg = (f"{what}, and {outside:.1%} of them lie where the past campaign had almost no users (density ratio "
               f"above {settings.max_weight:g}; allowed: {settings.max_outside_share:.0%}): the model would "
               "extrapolate")
        if settings.on_extrapolation == "refuse":
            raise DataError(msg + "; train on data that covers these users, narrow data.candidates, or set "
                                  "drift.on_extrapolation: warn to go ahead anyway")
        report.action, report.message = "warned", msg + "; going ahead (drift.on_extrapolation: warn)"
        log.warning(report.message)
        return report, None
    if not settings.reweight:
        report.action, report.message = "warned", what + "; not reweighted (drift.reweight is false)"
        return report, None
    w = np.minimum(ratio(train), settings.max_weight)
    w = w / w.mean()
    report.effective_sample_share = float(w.sum() ** 2 / (w * w).sum() / len(w))
    report.action = "reweighted"
    report.message = (f"{what}; training rows reweighted toward the candidates (importance weights, effective "
                      f"sample {report.effective_sample_share:.0%} of the rows)")
    return report, w
