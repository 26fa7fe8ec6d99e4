"""Uplift learners: per-arm conversion probabilities behind one scikit-learn-style contract.

Every learner has ``fit(X, arm, y, sample_weight=None) -> self`` and ``predict_proba(X) -> (n_users, n_arms)``
(column 0 = control); hyper-parameters go in ``__init__``, learned state ends in ``_``.
"""

from promo_opt.learners.honest import CrossFitted, SelectionReport, select_learner
from promo_opt.learners.lgbm import PooledLGBM, TLearnerLGBM
from promo_opt.learners.registry import LEARNERS, auto_candidates, learner_names, make_learner
from promo_opt.learners.value import OrderValueModel

__all__ = ["LEARNERS", "CrossFitted", "OrderValueModel", "PooledLGBM", "SelectionReport", "TLearnerLGBM",
           "auto_candidates", "learner_names", "make_learner", "select_learner"]
