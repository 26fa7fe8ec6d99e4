"""The one registry of uplift learners: names for the config, factories for ``make_learner``.

Each entry says whether ``learner: auto`` tries it (affordable on large data), whether it takes
inverse-propensity sample weights (needed on logged, non-randomized data), and its size limit
(above ``max_rows`` it is fitted on a seeded subsample, logged as a warning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from promo_opt.errors import ConfigError


@dataclass(frozen=True)
class LearnerSpec:
    name: str
    description: str
    build: Callable[[int, "np.ndarray | None", int, str], object]  # (n_arms, arm_terms, seed, outcome_type) -> learner
    in_auto: bool = True
    weights: bool = True  # accepts inverse-propensity sample weights
    max_rows: int | None = None  # fitted on a subsample above this size
    outcomes: tuple[str, ...] = ("binary", "count", "amount")  # data.outcome_type values it models
    # relative cost of one fit next to pooled_smooth (measured, reports/bench_learners*.md): the race
    # in promo_opt.learners.honest lets an expensive learner in only where it can still win
    cost: float = 1.0


def _pooled(level: str, monotone: bool = False):
    def build(n_arms, arm_terms, seed, outcome_type="binary"):
        from promo_opt.learners.lgbm import POOLED_LEVELS, PooledLGBM

        return PooledLGBM(n_arms, arm_terms=arm_terms, seed=seed, monotone=monotone, outcome_type=outcome_type,
                          **POOLED_LEVELS[level])
    return build


def _tlearner(n_arms, arm_terms, seed, outcome_type="binary"):
    from promo_opt.learners.lgbm import TLEARNER_PARAMS, TLearnerLGBM

    return TLearnerLGBM(n_arms, seed=seed, outcome_type=outcome_type, **TLEARNER_PARAMS)


def _causalml(kind: str):
    def build(n_arms, arm_terms, seed, outcome_type="binary"):
        from promo_opt.learners.meta import CausalMLMetaLearner

        return CausalMLMetaLearner(n_arms, kind=kind, seed=seed, outcome_type=outcome_type)
    return build


def _econml_dr(n_arms, arm_terms, seed, outcome_type="binary"):
    from promo_opt.learners.meta import EconMLDR

    return EconMLDR(n_arms, seed=seed, max_rows=ECONML_MAX_ROWS, outcome_type=outcome_type)


def _uplift_forest(n_arms, arm_terms, seed, outcome_type="binary"):
    from promo_opt.learners.meta import UpliftForest

    return UpliftForest(n_arms, seed=seed, max_rows=FOREST_MAX_ROWS)


ECONML_MAX_ROWS = 200_000
FOREST_MAX_ROWS = 50_000

# The auto candidates are listed from the most to the least constrained: auto's one-standard-error
# rule (promo_opt.learners.honest) prefers the earliest of those whose risk is within noise of the best.
# auto: the LightGBM learners and causalml's DR-learner. The X-learner fits four LightGBM models
# per arm and was 10-50x slower than the DR-learner in the Artea benchmark folds (reports/real_data.md):
# available by name, not compared by default.
_SPECS = [
    LearnerSpec("pooled_smooth", "pooled LightGBM, arm as a feature, 4 leaves", _pooled("pooled_smooth")),
    LearnerSpec("pooled", "pooled LightGBM, arm as a feature, 15 leaves", _pooled("pooled")),
    LearnerSpec("pooled_monotone", "pooled LightGBM on the arm's terms, conversion increasing in the discount",
                _pooled("pooled", monotone=True)),
    LearnerSpec("pooled_flexible", "pooled LightGBM, arm as a feature, 31 leaves", _pooled("pooled_flexible")),
    LearnerSpec("tlearner", "one LightGBM classifier per arm", _tlearner),
    LearnerSpec("causalml_s", "causalml S-learner, LightGBM base", _causalml("s"), in_auto=False, weights=False),
    LearnerSpec("causalml_t", "causalml T-learner, LightGBM base", _causalml("t"), in_auto=False, weights=False),
    LearnerSpec("causalml_x", "causalml X-learner, LightGBM bases", _causalml("x"), in_auto=False, weights=False),
    LearnerSpec("causalml_r", "causalml R-learner, LightGBM bases", _causalml("r"), in_auto=False),
    LearnerSpec("causalml_dr", "causalml DR-learner, LightGBM bases", _causalml("dr"), in_auto=True, weights=False,
                cost=8.0),
    LearnerSpec("econml_dr", "EconML DRLearner, LightGBM nuisances and final model", _econml_dr, in_auto=False,
                max_rows=ECONML_MAX_ROWS),
    LearnerSpec("uplift_forest", "causalml UpliftRandomForestClassifier (KL splits)", _uplift_forest, in_auto=False,
                weights=False, max_rows=FOREST_MAX_ROWS, outcomes=("binary",)),
]
LEARNERS: dict[str, LearnerSpec] = {s.name: s for s in _SPECS}


def learner_names() -> list[str]:
    return list(LEARNERS)


def check_learner_name(name: str) -> str:
    """The name if registered (or 'auto'); else a ConfigError listing the valid names."""
    if name != "auto" and name not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; expected 'auto' or one of {learner_names()}")
    return name


def auto_candidates(weighted: bool = False, outcome_type: str = "binary") -> list[str]:
    """The learners ``learner: auto`` compares; with ``weighted`` (logged data) only those taking weights,
    and only those that model ``outcome_type``."""
    return [s.name for s in _SPECS if s.in_auto and (s.weights or not weighted) and outcome_type in s.outcomes]


def make_learner(name: str, n_arms: int, arm_terms: np.ndarray | None, seed: int, outcome_type: str = "binary"):
    check_learner_name(name)
    if name == "auto":
        raise ConfigError("'auto' is a selection among learners, not a learner; call select_learner")
    spec = LEARNERS[name]
    if outcome_type not in spec.outcomes:
        raise ConfigError(f"learner {name} models outcome_type {list(spec.outcomes)}, not '{outcome_type}' "
                          f"(data.outcome_type); use one of "
                          f"{[s.name for s in _SPECS if outcome_type in s.outcomes]} or 'auto'")
    return spec.build(n_arms, arm_terms, seed, outcome_type)
