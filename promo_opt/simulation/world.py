"""Simulated worlds with known potential outcomes.

A world is a YAML file (see ``scenarios/``) describing a population of users, the campaign's
arms and, for every user, the TRUE conversion probability under every arm and the true expected
order value. Because the truth is known, the value of any targeting policy can be computed
exactly, which is what the evaluation code compares learners and solvers against.

Response model, for user ``i`` and arm ``k`` (column 0 = control)::

    membership[i, t] = softmax_t(score_t(x_i))                       (latent user types)
    logit[i, k]      = base(x_i) + drift + sum_t membership[i, t] * (base_lift_t + arm_lift_t[k])
    true_p[i, k]     = sigmoid(logit[i, k])
    true_value[i]    = exp(order_value.score(x_i))                  (arm-independent)

``outcome_type`` count: ``true_p`` is the expected number of orders ``exp(logit)`` (Poisson);
amount: the expected spend ``sigmoid(logit) x value``, with ``true_value`` 1 (the outcome is money).

Scores are linear in features with optional level indicators, step functions and pairwise
interactions (so trees have something to find). Missing values are missing at random in the
observed features only: the truth uses each user's value before it went missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from promo_opt.config import ArmConfig, Objective, OutcomeType, format_validation_error, read_yaml
from promo_opt.data import atomic_write
from promo_opt.economics import compute_economics
from promo_opt.errors import ConfigError

Population = Literal["train", "candidates"]
_CANDIDATE_ID_OFFSET = 5_000_000  # candidate ids start at u5000001, so they never collide with train ids


# -- the world YAML ------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FeatureBase(_Strict):
    name: str = Field(min_length=1)
    missing_rate: float = Field(default=0.0, ge=0.0, lt=1.0)


class _NumericBase(_FeatureBase):
    clip: tuple[float, float] | None = None  # (low, high) applied after drawing
    decimals: int | None = Field(default=None, ge=0)  # round the value (truth uses the rounded value)


class NormalFeature(_NumericBase):
    kind: Literal["normal"]
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0.0)


class LognormalFeature(_NumericBase):
    kind: Literal["lognormal"]
    mu: float = 0.0  # mean of log(x)
    sigma: float = Field(default=1.0, gt=0.0)  # std of log(x)


class UniformFeature(_NumericBase):
    kind: Literal["uniform"]
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _order(self):
        if self.high <= self.low:
            raise ValueError(f"feature '{self.name}': high ({self.high}) must be above low ({self.low})")
        return self


class PoissonFeature(_NumericBase):
    kind: Literal["poisson"]
    lam: float = Field(gt=0.0)


class CategoricalFeature(_FeatureBase):
    kind: Literal["categorical"]
    levels: dict[str, float]  # level -> probability

    @field_validator("levels")
    @classmethod
    def _probabilities(cls, v: dict[str, float]):
        return _check_probabilities(v, "levels")


Feature = Annotated[
    NormalFeature | LognormalFeature | UniformFeature | PoissonFeature | CategoricalFeature,
    Field(discriminator="kind"),
]
NumericFeature = NormalFeature | LognormalFeature | UniformFeature | PoissonFeature


class Step(_Strict):
    """``coef * 1[feature > above]``."""

    feature: str
    above: float
    coef: float


class Interaction(_Strict):
    """``coef * prod(factors)``; a factor is a numeric feature name or ``"feature=level"``."""

    factors: list[str] = Field(min_length=2)
    coef: float


class Score(_Strict):
    """A linear score: ``intercept + sum linear + level indicators + steps + interactions``."""

    intercept: float = 0.0
    linear: dict[str, float] = {}
    levels: dict[str, dict[str, float]] = {}
    steps: list[Step] = []
    interactions: list[Interaction] = []


class UserType(_Strict):
    """A latent user type. Membership is a softmax over the types' ``score``s."""

    name: str = Field(min_length=1)
    score: Score = Score()
    base_lift: float = 0.0  # added to the base logit under every arm
    arm_lift: dict[str, float] = {}  # non-control arm -> logit lift (missing arms: 0)


class OrderValue(_Strict):
    """Expected order value ``exp(score)``; realized values are lognormal around it with ``sigma``."""

    score: Score
    sigma: float = Field(default=0.3, ge=0.0)


class RandomLogging(_Strict):
    kind: Literal["random"] = "random"
    shares: dict[str, float] | None = None  # arm -> share; default: equal shares

    @field_validator("shares")
    @classmethod
    def _probabilities(cls, v: dict[str, float] | None):
        return None if v is None else _check_probabilities(v, "shares")


class PolicyLogging(_Strict):
    """The past campaign assigned arms by ``softmax_k(scores[k](x))``; arms without a score get 0."""

    kind: Literal["policy"]
    scores: dict[str, Score]


Logging = Annotated[RandomLogging | PolicyLogging, Field(discriminator="kind")]


class Drift(_Strict):
    """How candidates differ from the train population."""

    logit_shift: float = 0.0  # added to every candidate's conversion logit (all arms)
    shift: dict[str, float] = {}  # numeric feature -> shift of its location (mean, mu, low/high, lam)
    levels: dict[str, dict[str, float]] = {}  # categorical feature -> new level probabilities

    @field_validator("levels")
    @classmethod
    def _probabilities(cls, v: dict[str, dict[str, float]]):
        return {name: _check_probabilities(p, f"levels.{name}") for name, p in v.items()}


class CampaignDefaults(_Strict):
    """Defaults of the campaign written by :meth:`World.write_campaign`."""

    objective: Objective = "conversions"
    budget_fraction: float = Field(default=0.3, gt=0.0, le=1.0)
    min_roi: float | None = Field(default=None, ge=0.0)
    holdout_fraction: float = Field(default=0.05, ge=0.0, lt=1.0)


class WorldSpec(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    n_train: int = Field(default=100_000, gt=0)
    n_candidates: int = Field(default=50_000, gt=0)
    seed: int = Field(default=0, ge=0)
    features: list[Feature] = Field(min_length=1)
    arms: list[ArmConfig] = Field(min_length=2)
    base: Score
    types: list[UserType] = Field(min_length=1)
    order_value: OrderValue
    logging: Logging = RandomLogging()
    drift: Drift = Drift()
    campaign: CampaignDefaults = CampaignDefaults()
    # binary: converted ~ Bernoulli(sigmoid(logit)); count: orders ~ Poisson(exp(logit)), the logit read
    # as a log rate, each order worth value; amount: spend = Bernoulli(sigmoid(logit)) x order value,
    # the outcome itself in currency (no value column; each unit of it is worth 1)
    outcome_type: OutcomeType = "binary"

    @model_validator(mode="after")
    def _references(self):
        _check_unique([f.name for f in self.features], "features", "feature names")
        _check_unique([a.name for a in self.arms], "arms", "arm names")
        _check_unique([t.name for t in self.types], "types", "type names")
        controls = [a.name for a in self.arms if a.control]
        if len(controls) != 1:
            raise ValueError(f"key 'arms': exactly one arm must have control: true; found {len(controls)} ({controls})")
        feats = {f.name: f for f in self.features}
        arm_names = {a.name for a in self.arms}
        treated = arm_names - set(controls)
        _check_score(self.base, "base", feats)
        _check_score(self.order_value.score, "order_value.score", feats)
        for i, t in enumerate(self.types):
            _check_score(t.score, f"types.{i}.score", feats)
            _check_keys(t.arm_lift, treated, f"types.{i}.arm_lift", "a non-control arm")
        if isinstance(self.logging, PolicyLogging):
            _check_keys(self.logging.scores, arm_names, "logging.scores", "an arm")
            for arm, s in self.logging.scores.items():
                _check_score(s, f"logging.scores.{arm}", feats)
        elif self.logging.shares is not None:
            _check_keys(self.logging.shares, arm_names, "logging.shares", "an arm")
        numeric = {n for n, f in feats.items() if not isinstance(f, CategoricalFeature)}
        _check_keys(self.drift.shift, numeric, "drift.shift", "a numeric feature")
        for name, probs in self.drift.levels.items():
            _check_keys({name: 0}, set(feats) - numeric, "drift.levels", "a categorical feature")
            _check_keys(probs, set(feats[name].levels), f"drift.levels.{name}", f"a level of '{name}'")
        return self


def _check_probabilities(v: dict[str, float], key: str) -> dict[str, float]:
    if not v or any(p < 0 for p in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
        raise ValueError(f"expected non-negative probabilities summing to 1, got {v}")
    return v


def _check_unique(names: list[str], key: str, what: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"key '{key}': {what} must be unique; repeated: {dup}")


def _check_keys(mapping: dict, allowed: set[str], key: str, what: str) -> None:
    for k in mapping:
        if k not in allowed:
            raise ValueError(f"key '{key}.{k}': '{k}' is not {what}; expected one of {sorted(allowed)}")


def _check_score(score: Score, key: str, feats: dict[str, _FeatureBase]) -> None:
    numeric = {n for n, f in feats.items() if not isinstance(f, CategoricalFeature)}
    categorical = {n: set(f.levels) for n, f in feats.items() if isinstance(f, CategoricalFeature)}
    _check_keys(score.linear, numeric, f"{key}.linear", "a numeric feature")
    _check_keys(score.levels, set(categorical), f"{key}.levels", "a categorical feature")
    for name, coefs in score.levels.items():
        _check_keys(coefs, categorical[name], f"{key}.levels.{name}", f"a level of '{name}'")
    for i, step in enumerate(score.steps):
        _check_keys({step.feature: 0}, numeric, f"{key}.steps.{i}.feature", "a numeric feature")
    for i, inter in enumerate(score.interactions):
        for factor in inter.factors:
            name, _, level = factor.partition("=")
            where = f"{key}.interactions.{i}.factors"
            if level:
                _check_keys({name: 0}, set(categorical), where, "a categorical feature")
                _check_keys({level: 0}, categorical[name], f"{where}.{name}", f"a level of '{name}'")
            else:
                _check_keys({name: 0}, numeric, where, "a numeric feature (or 'feature=level')")


# -- loading -------------------------------------------------------------------------------
def scenario_dirs() -> list[Path]:
    """Folders searched for ``<name>.yaml``, in order: the repo's ``scenarios/``, then ``promo_opt/scenarios/``."""
    here = Path(__file__).resolve()
    return [here.parents[2] / "scenarios", here.parents[1] / "scenarios"]


def available_worlds() -> list[str]:
    """Names of the worlds found in :func:`scenario_dirs` (first folder wins on a clash)."""
    names: set[str] = set()
    for d in scenario_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def load_world(name_or_path: str | Path) -> World:
    """Load a world by name (e.g. ``"travel"``, searched in :func:`scenario_dirs`) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        found = [d / f"{name_or_path}.yaml" for d in scenario_dirs() if (d / f"{name_or_path}.yaml").is_file()]
        if not found:
            raise ConfigError(f"unknown world '{name_or_path}'; available worlds: {available_worlds()} (or give a YAML path)")
        path = found[0]
    return parse_world(read_yaml(path, "world"), source=str(path))


def parse_world(raw: dict, source: str = "world") -> World:
    """Validate a world mapping; every error names the offending key as a dotted path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a world must be a YAML mapping of keys, got {type(raw).__name__}")
    try:
        return World(WorldSpec.model_validate(raw))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, "world", _without_tags)) from None


def _without_tags(loc: tuple) -> list:
    """Drop pydantic's union tags from an error location: ``features.0.normal.std`` -> ``features.0.std``."""
    out: list = []
    for i, part in enumerate(loc):
        after_feature = i >= 2 and loc[i - 2] == "features" and isinstance(loc[i - 1], int)
        if (after_feature or (i >= 1 and loc[i - 1] == "logging")) and part in _TAGS:
            continue
        out.append(part)
    return out


_TAGS = {"normal", "lognormal", "uniform", "poisson", "categorical", "random", "policy"}


# -- the world -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedSample:
    """Users drawn from a world, with their potential outcomes.

    ``features``: DataFrame (n rows) with ``user_id`` and the observed features (NaN where missing).
    ``true_p``: (n, K) true conversion probability under each arm, columns in ``arm_names`` order.
    ``true_value``: (n,) true expected order value if the user converts (the same under every arm).
    ``type_prob``: (n, T) membership probability of each latent user type.
    ``propensity``: (n, K) logging probability of each arm (train only, else None).
    ``latent``: each feature's values before any went missing, by name (what the truth reads).
    """

    population: Population
    arm_names: tuple[str, ...]
    features: pd.DataFrame
    true_p: np.ndarray
    true_value: np.ndarray
    type_prob: np.ndarray
    propensity: np.ndarray | None
    # amount outcomes only: P(order) per arm (n, K) and the expected value of an order (n,); true_p is their product
    conversion_p: np.ndarray | None = None
    order_value: np.ndarray | None = None
    latent: dict[str, np.ndarray] | None = None

    @property
    def true_uplift(self) -> np.ndarray:
        """(n, K) ``true_p - true_p[:, [0]]``; column 0 is zero."""
        return self.true_p - self.true_p[:, [0]]


class World:
    """A validated world: draws users, their potential outcomes and a logged past campaign."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        control = next(a for a in spec.arms if a.control)
        self.arms: list[ArmConfig] = [control] + [a for a in spec.arms if not a.control]
        self.arm_names: list[str] = [a.name for a in self.arms]
        self.feature_names: list[str] = [f.name for f in spec.features]

    def __repr__(self) -> str:
        return f"World({self.name!r}, arms={self.arm_names}, features={len(self.feature_names)})"

    @property
    def name(self) -> str:
        return self.spec.name

    # -- drawing ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int | None = None, population: Population = "train") -> SimulatedSample:
        """Draw ``n`` users of ``population`` ("candidates" are drifted if the world says so).

        Ids are ``u0000001``... for train and ``u5000001``... for candidates (unique while n < 5M). ``seed`` defaults to
        the world's seed; train and candidates draw from different streams of the same seed.
        """
        if population not in ("train", "candidates"):
            raise ValueError(f"population must be 'train' or 'candidates', got {population!r}")
        seed = self.spec.seed if seed is None else seed
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(population == "candidates"),)))
        drift = self.spec.drift if population == "candidates" else Drift()
        latent, observed = self._draw_features(rng, n, drift)

        scores = np.column_stack([_evaluate(t.score, latent, n) for t in self.spec.types])
        type_prob = softmax(scores)
        base_lift = np.array([t.base_lift for t in self.spec.types])
        arm_lift = np.array([[t.arm_lift.get(a, 0.0) for a in self.arm_names] for t in self.spec.types])
        base = _evaluate(self.spec.base, latent, n) + drift.logit_shift + type_prob @ base_lift
        logit = base[:, None] + type_prob @ arm_lift
        true_p = 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))
        true_value = np.exp(_evaluate(self.spec.order_value.score, latent, n))
        conversion_p = order_value = None
        if self.spec.outcome_type == "count":
            true_p = np.exp(np.clip(logit, -30.0, 3.0))  # at most ~20 orders a user
        elif self.spec.outcome_type == "amount":
            conversion_p, order_value = true_p, true_value
            true_p, true_value = true_p * true_value[:, None], np.ones(n)

        offset = 1 if population == "train" else _CANDIDATE_ID_OFFSET + 1
        ids = [f"u{i:07d}" for i in range(offset, offset + n)]
        features = pd.DataFrame({"user_id": ids, **observed})
        propensity = self._propensity(latent, n) if population == "train" else None
        return SimulatedSample(population, tuple(self.arm_names), features, true_p, true_value, type_prob, propensity,
                               conversion_p=conversion_p, order_value=order_value, latent=latent)

    def realize(self, sample: SimulatedSample, seed: int | None = None) -> pd.DataFrame:
        """Run the past campaign on a train sample: arm ~ logging policy, converted ~ Bernoulli(true_p).

        Returns ``user_id``, the features, ``arm`` (name), ``converted`` (0/1), ``order_value`` (0 when
        not converted) and, when logging is not random, ``propensity`` (probability of the arm received).
        """
        if sample.propensity is None:
            raise ValueError("realize needs a train sample (it carries the logging propensities)")
        seed = self.spec.seed if seed is None else seed
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
        n = len(sample.true_value)
        u = rng.random(n)
        arm = np.minimum((np.cumsum(sample.propensity, axis=1) < u[:, None]).sum(axis=1), len(self.arm_names) - 1)
        rows = np.arange(n)
        sigma = self.spec.order_value.sigma
        df = sample.features.copy()
        df["arm"] = np.asarray(self.arm_names, dtype=object)[arm]
        kind = self.spec.outcome_type
        if kind == "amount":
            converted = rng.random(n) < sample.conversion_p[rows, arm]
            realized = sample.order_value * np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2)
            df[self.outcome_column] = np.where(converted, np.round(realized, 2), 0.0)
        elif kind == "count":
            orders = rng.poisson(sample.true_p[rows, arm])
            realized = sample.true_value * np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2)
            df[self.outcome_column] = orders.astype(np.int64)
            df["order_value"] = np.where(orders > 0, np.round(realized, 2), 0.0)
        else:
            converted = rng.random(n) < sample.true_p[rows, arm]
            realized = sample.true_value * np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2)
            df["converted"] = converted.astype(np.int64)
            df["order_value"] = np.where(converted, np.round(realized, 2), 0.0)
        if isinstance(self.spec.logging, PolicyLogging):
            df["propensity"] = sample.propensity[rows, arm]
        return df

    @property
    def outcome_column(self) -> str:
        """The outcome column of the written past campaign, by ``outcome_type``."""
        return {"binary": "converted", "count": "orders", "amount": "amount"}[self.spec.outcome_type]

    # -- writing a campaign ----------------------------------------------------------------
    def write_campaign(
        self,
        out_dir: str | Path,
        seed: int | None = None,
        budget: float | None = None,
        min_roi: float | None = None,
        n_train: int | None = None,
        n_candidates: int | None = None,
    ) -> Path:
        """Write ``train.csv``, ``candidates.csv``, ``truth.parquet`` and ``campaign.yaml``; return the latter.

        The default budget is ``campaign.budget_fraction`` of the expected spend of giving every
        candidate its most expensive arm, so it binds. Same arguments -> byte-identical files.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        seed = self.spec.seed if seed is None else seed
        s_train, s_real, s_cand = self.campaign_seeds(seed)
        train = self.sample(n_train or self.spec.n_train, seed=s_train, population="train")
        cand = self.sample(n_candidates or self.spec.n_candidates, seed=s_cand, population="candidates")
        truth = pd.DataFrame(
            {"user_id": cand.features["user_id"], **{f"p_{a}": cand.true_p[:, k] for k, a in enumerate(self.arm_names)}}
        )
        truth["value"] = cand.true_value

        defaults = self.spec.campaign
        if budget is None:
            spend = compute_economics(cand.true_p, cand.true_value, self.arms, self.spec.outcome_type).spend  # (n, K)
            budget = round(defaults.budget_fraction * float(spend.max(axis=1).sum()), 2)
        min_roi = defaults.min_roi if min_roi is None else min_roi
        data = {
            "train": "train.csv",
            "candidates": "candidates.csv",
            "truth": "truth.parquet",
            "id": "user_id",
            "treatment": "arm",
            "outcome": self.outcome_column,
        }
        if self.spec.outcome_type != "binary":
            data["outcome_type"] = self.spec.outcome_type
        if self.spec.outcome_type != "amount":  # an amount is money itself
            data["value"] = "order_value"
        if isinstance(self.spec.logging, PolicyLogging):
            data["propensity"] = "propensity"
        data["features"] = "auto"
        campaign = {
            "name": self.name,
            "data": data,
            "arms": [a.model_dump(exclude_none=True) for a in self.spec.arms],
            "objective": defaults.objective,
            "constraints": {"budget": float(budget), **({} if min_roi is None else {"min_roi": float(min_roi)})},
            "holdout": {"fraction": defaults.holdout_fraction},
            "seed": int(seed),
        }
        csv = {"index": False, "float_format": "%.6g", "lineterminator": "\n"}
        atomic_write(out / "train.csv", lambda p: self.realize(train, seed=s_real).to_csv(p, **csv))
        atomic_write(out / "candidates.csv", lambda p: cand.features.to_csv(p, **csv))
        atomic_write(out / "truth.parquet", lambda p: truth.to_parquet(p, index=False))
        atomic_write(out / "campaign.yaml", lambda p: p.write_text(yaml.safe_dump(campaign, sort_keys=False)))
        return out / "campaign.yaml"

    def campaign_seeds(self, seed: int | None = None) -> tuple[int, int, int]:
        """The seeds :meth:`write_campaign` draws the train users, their past campaign and the candidates with."""
        seed = self.spec.seed if seed is None else seed
        s_train, s_real, s_cand = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        return s_train, s_real, s_cand

    # -- what the truth says about estimating from a past campaign ---------------------------
    def logging_propensity(self, sample: SimulatedSample) -> np.ndarray:
        """(n, K) probability that the past campaign's logging policy gives each arm to users like ``sample``'s
        (of either population: the candidates' own, had they been in the past campaign)."""
        return self._propensity(sample.latent, len(sample.true_value))

    def outcome_variance(self, sample: SimulatedSample) -> np.ndarray:
        """(n, K) variance of one user's outcome under each arm, as :meth:`realize` draws it (conversions 0/1,
        Poisson orders, or an amount: a Bernoulli purchase times a mean-preserving lognormal order value)."""
        kind = self.spec.outcome_type
        if kind == "count":
            return sample.true_p.copy()
        if kind == "amount":
            second = sample.conversion_p * (sample.order_value**2 * np.exp(self.spec.order_value.sigma**2))[:, None]
            return second - sample.true_p**2
        return sample.true_p * (1.0 - sample.true_p)

    def density_ratio(self, latent: dict[str, np.ndarray]) -> np.ndarray:
        """(n,) density of the candidates' features over the train users' at ``latent`` values (the drift's
        shifted locations and level shares; features are drawn independently); ``inf`` where the train users
        have no density (a uniform feature shifted past its range). Clipping and rounding are not modelled."""
        from scipy import stats

        drift = self.spec.drift
        n = len(next(iter(latent.values())))
        logw = np.zeros(n)
        feats = {f.name: f for f in self.spec.features}
        for name, shift in drift.shift.items():
            f, x = feats[name], np.asarray(latent[name], dtype=np.float64)
            if isinstance(f, NormalFeature):
                logw += stats.norm.logpdf(x, f.mean + shift, f.std) - stats.norm.logpdf(x, f.mean, f.std)
            elif isinstance(f, LognormalFeature):
                lx = np.log(np.maximum(x, 1e-300))
                logw += stats.norm.logpdf(lx, f.mu + shift, f.sigma) - stats.norm.logpdf(lx, f.mu, f.sigma)
            elif isinstance(f, UniformFeature):
                inside = (x >= f.low) & (x <= f.high)
                logw += np.where(inside, 0.0, np.inf)
            else:
                lam, lam2 = f.lam, max(f.lam + shift, 1e-9)
                logw += stats.poisson.logpmf(x, lam2) - stats.poisson.logpmf(x, lam)
        for name, probs in drift.levels.items():
            base = feats[name].levels
            x = np.asarray(latent[name], dtype=object)
            ratio = {lv: (probs.get(lv, 0.0) / p if p > 0 else np.inf) for lv, p in base.items()}
            logw += np.log(np.array([ratio[v] for v in x], dtype=np.float64))
        return np.exp(logw)

    # -- internals -------------------------------------------------------------------------
    def _draw_features(
        self, rng: np.random.Generator, n: int, drift: Drift
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Latent values (used by the truth) and observed values (NaN where missing), by feature name."""
        latent: dict[str, np.ndarray] = {}
        observed: dict[str, np.ndarray] = {}
        for f in self.spec.features:
            if isinstance(f, CategoricalFeature):
                probs = drift.levels.get(f.name, f.levels)
                levels = np.array(list(f.levels), dtype=object)
                values = levels[rng.choice(len(levels), size=n, p=[probs.get(lv, 0.0) for lv in f.levels])]
            else:
                values = _draw_numeric(rng, f, n, drift.shift.get(f.name, 0.0))
            latent[f.name] = values
            shown = values.copy() if isinstance(f, CategoricalFeature) else values.astype(np.float64)
            if f.missing_rate > 0:
                shown[rng.random(n) < f.missing_rate] = np.nan
            observed[f.name] = shown
        return latent, observed

    def _propensity(self, latent: dict[str, np.ndarray], n: int) -> np.ndarray:
        """(n, K) probability that the past campaign gave each arm."""
        log = self.spec.logging
        if isinstance(log, PolicyLogging):
            zero = Score()
            return softmax(np.column_stack([_evaluate(log.scores.get(a, zero), latent, n) for a in self.arm_names]))
        shares = log.shares or {a: 1.0 / len(self.arm_names) for a in self.arm_names}
        return np.tile([shares.get(a, 0.0) for a in self.arm_names], (n, 1))


def _draw_numeric(rng: np.random.Generator, f: NumericFeature, n: int, shift: float) -> np.ndarray:
    if isinstance(f, NormalFeature):
        x = rng.normal(f.mean + shift, f.std, n)
    elif isinstance(f, LognormalFeature):
        x = rng.lognormal(f.mu + shift, f.sigma, n)
    elif isinstance(f, UniformFeature):
        x = rng.uniform(f.low + shift, f.high + shift, n)
    else:
        x = rng.poisson(max(f.lam + shift, 1e-9), n).astype(np.float64)
    if f.clip is not None:
        x = np.clip(x, *f.clip)
    return x if f.decimals is None else np.round(x, f.decimals)


def score_terms(score: Score, latent: dict[str, np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """The terms of a linear score at latent feature values, as (column, coefficient) pairs: linear terms,
    level indicators, steps and interactions, in that order (the intercept apart)."""

    def factor(term: str) -> np.ndarray:
        name, _, level = term.partition("=")
        return (latent[name] == level).astype(np.float64) if level else latent[name]

    terms = [(latent[name], coef) for name, coef in score.linear.items()]
    terms += [(latent[name] == level, coef) for name, coefs in score.levels.items() for level, coef in coefs.items()]
    terms += [(latent[step.feature] > step.above, step.coef) for step in score.steps]
    terms += [(np.prod([factor(t) for t in inter.factors], axis=0), inter.coef) for inter in score.interactions]
    return terms


def _evaluate(score: Score, latent: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(n,) value of a linear score on latent feature values."""
    out = np.full(n, score.intercept, dtype=np.float64)
    for column, coef in score_terms(score, latent):
        out += coef * column
    return out


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an (n, m) matrix."""
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
