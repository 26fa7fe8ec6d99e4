"""The campaign config: a YAML file validated into typed pydantic models.

Every error names the offending key (as a dotted path, e.g. ``arms.2.discount``) and what was
expected. Paths in ``data`` are resolved relative to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from promo_opt.errors import ConfigError
from promo_opt.ltv.settings import LtvConfig, expand_structure

# long_term_value: net revenue with each arm's incremental revenue scaled by its long-term multiplier (ltv:)
Objective = Literal["conversions", "net_revenue", "long_term_value"]
# binary: 0/1 conversions; count: a non-negative integer per user (bookings, nights); amount: a
# non-negative number (e.g. spend). For count/amount "conversions" everywhere means the expected
# outcome, and a discount's trigger cost scales with it.
OutcomeType = Literal["binary", "count", "amount"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    train: Path | None = None
    candidates: Path | None = None
    truth: Path | None = None  # simulated worlds only: id, p_<arm> per arm, value
    id: str = "user_id"
    treatment: str = "arm"
    outcome: str = "converted"
    outcome_type: OutcomeType = "binary"
    value: str | None = None
    propensity: str | None = None
    features: Literal["auto"] | list[str] = "auto"
    segment: str | None = None  # a candidates column with its own budget (constraints.segment_budgets)
    time: str | None = None  # observational effects: the period column (difference-in-differences)
    unit: str | None = None  # observational effects: the unit column of a panel (repeated over periods)

    @field_validator("features")
    @classmethod
    def _features_nonempty(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("an explicit feature list must not be empty (or use 'auto')")
            if len(set(v)) != len(v):
                raise ValueError("feature names must be unique")
        return v


class ArmConfig(_Strict):
    name: str = Field(min_length=1)
    control: bool = False
    discount: float = Field(default=0.0, ge=0.0, le=1.0)
    cost_per_conversion: float = Field(default=0.0, ge=0.0)
    cost_per_send: float = Field(default=0.0, ge=0.0)
    max_users: int | None = Field(default=None, ge=0)
    max_spend: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _control_is_free(self):
        if self.control and (self.discount or self.cost_per_conversion or self.cost_per_send):
            raise ValueError(f"the control arm '{self.name}' cannot have a cost: everything is measured against it")
        if self.control and (self.max_users is not None or self.max_spend is not None):
            raise ValueError(f"the control arm '{self.name}' cannot have a cap")
        return self


class Constraints(_Strict):
    budget: float | None = Field(default=None, ge=0.0)
    min_roi: float | None = Field(default=None, ge=0.0)
    segment_budgets: dict[str, float] | None = None
    # guarantee mode: the ROI floor holds with this probability under the model's uncertainty
    # (promo_opt.evaluation.guarantee); needs min_roi
    min_roi_confidence: float | None = Field(default=None, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _confidence_needs_floor(self):
        if self.min_roi_confidence is not None and not self.min_roi:
            raise ValueError("constraints.min_roi_confidence needs constraints.min_roi (the floor it guarantees)")
        return self


class HoldoutConfig(_Strict):
    fraction: float = Field(default=0.0, ge=0.0, lt=1.0)


class ModelConfig(_Strict):
    learner: str = "auto"  # 'auto' or a name of promo_opt.learners.registry.LEARNERS
    folds: int = Field(default=5, ge=2, le=20)
    calibrate: bool = True  # cross-fitted calibration of the uplift (winner's-curse correction)
    # learner: auto races its candidates fold by fold (a clearly worse or too slow one stops early);
    # false: every candidate is cross-fitted on every fold (the pre-race behaviour, for comparison)
    race: bool = True
    # forecast the policy's totals with the realized/expected ratios of its held-out-fold twin
    # (promo_opt.evaluation.heldout): the 'forecast' block of the allocation summary
    correct_forecast: bool = True

    @field_validator("learner")
    @classmethod
    def _known_learner(cls, v: str) -> str:
        from promo_opt.learners.registry import learner_names

        if v != "auto" and v not in learner_names():
            raise ValueError(f"unknown learner; expected 'auto' or one of {learner_names()}")
        return v


class DriftConfig(_Strict):
    """The train-vs-candidates check before money is spent (``promo_opt.evaluation.drift``)."""

    check: bool = True  # fit the domain classifier (summary.drift)
    auc_threshold: float = Field(default=0.6, gt=0.5, lt=1.0)  # shifted when the AUC reaches this
    reweight: bool = True  # when shifted: train and forecast with importance weights where overlap allows
    # refuse when more than this share of the candidates lies where the past campaign had almost no
    # users (density ratio above max_weight): the model would extrapolate
    max_outside_share: float = Field(default=0.1, gt=0.0, le=1.0)
    max_weight: float = Field(default=20.0, gt=1.0)
    on_extrapolation: Literal["refuse", "warn"] = "refuse"


class SparkConfig(_Strict):
    """Settings of the Spark engine (``--engine spark``). Tables: a Parquet path or ``table:<name>``."""

    master: str = "local[*]"
    partitions: int | None = Field(default=None, ge=1)  # repartition the input to this many (None: as read)
    candidates: str | None = None  # input for scoring (default: data.candidates)
    scores: str | None = None  # scores written by score / read by allocate and plan
    targets: str | None = None  # the targeting list, partitioned Parquet (default: <out>/targets.parquet)
    partition_by: list[str] = ["arm"]  # partition columns of the targeting list
    conf: dict[str, str] = {}  # extra Spark settings, e.g. spark.driver.memory


class ObservationalConfig(_Strict):
    """Options of ``promo-opt effect`` and of estimated propensities (see ``promo_opt.observational``)."""

    # auto: fit both, keep the one whose weights balance the covariates best (propensity.select_by_balance)
    propensity_model: Literal["auto", "logistic", "gbm"] = "auto"
    calibrate: bool = True  # calibrate the gradient-boosting propensities (isotonic from 2,000 rows, else sigmoid)
    folds: int = Field(default=5, ge=2, le=20)  # cross-fitting of propensity and outcome models
    estimate_propensity: bool = False  # training fills P(logged arm) when data.propensity is not given
    trim: float = Field(default=0.01, ge=0.0, lt=0.5)  # drop rows with a compared arm's propensity below this
    outcome_model: Literal["linear", "gbm"] = "linear"  # outcome regression of AIPW
    caliper: float | None = Field(default=0.2, gt=0.0)  # matching: in SDs of the logit propensity
    neighbors: int = Field(default=1, ge=1, le=20)
    replace: bool = True  # matching with replacement
    exact: list[str] = []  # matching: columns matched exactly
    treatment_start: float | None = None  # DID: first post period (default: the later of two periods)
    controls: list[str] = []  # DID: covariates added to the regression


class DriversConfig(_Strict):
    """The ``drivers:`` section: causal graph and driver analysis (``promo-opt drivers``, promo_opt.graph)."""

    data: Path  # one row per user; CSV or Parquet; relative to the config
    id: str | None = None  # never a variable
    outcome: str
    variables: Literal["auto"] | list[str] = "auto"  # auto = every other column
    tiers: list[list[str]] = []  # a variable can only be caused by variables of its own or earlier tiers
    required: list[tuple[str, str]] = []  # [[from, to], ...]
    forbidden: list[tuple[str, str]] = []
    # hybrid: hill climbing on the score inside the skeleton of a PC search (MMHC-style); hc: hill climbing
    # alone; pc: constraint-based (pgmpy)
    method: Literal["hybrid", "hc", "pc"] = "hybrid"
    score: Literal["bic", "k2"] = "bic"  # hc: degenerate-Gaussian BIC (mixed data) or K2 (discrete data only)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)  # pc: level of the conditional independence tests
    skeleton_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)  # hybrid: level of its PC skeleton
    max_parents: int | None = Field(default=None, ge=1)
    bootstrap: int = Field(default=50, ge=0, le=1000)  # resampled searches for the edge frequencies
    bootstrap_rows: int | None = Field(default=100_000, ge=10)  # rows per resample (subsample above this)
    stable: float = Field(default=0.8, gt=0.0, le=1.0)  # edges at or above this frequency are drawn solid
    effect_bootstrap: int = Field(default=200, ge=20, le=5000)  # resamples of the driver effects' intervals
    contrast: tuple[float, float] = (0.25, 0.75)  # do(low) / do(high) quantiles of a non-binary variable
    funnel: list[str] = []  # ordered 0/1 actions (e.g. [entered_room, switched_room, add_to_cart]): funnel.csv
    # the variables a suggested targeting rule may use (known before the campaign): suggested_rules.yaml;
    # auto = every variable but the outcome and the funnel actions
    targetable: Literal["auto"] | list[str] = "auto"

    @field_validator("variables")
    @classmethod
    def _variables_nonempty(cls, v):
        if isinstance(v, list):
            if len(v) < 1:
                raise ValueError("an explicit variable list must not be empty (or use 'auto')")
            if len(set(v)) != len(v):
                raise ValueError("variable names must be unique")
        return v

    @model_validator(mode="after")
    def _k2_is_hill_climbing(self):
        if self.score == "k2" and self.method != "hc":
            raise ValueError(f"drivers.score 'k2' is a score of method 'hc' (got method '{self.method}')")
        return self

    @field_validator("contrast")
    @classmethod
    def _contrast(cls, v):
        if not 0.0 <= v[0] < v[1] <= 1.0:
            raise ValueError("expected two quantiles 0 <= low < high <= 1")
        return v


class TargetingRuleConfig(_Strict):
    """One entry of ``targeting_rules:``: a segment (``promo_opt.targeting`` grammar) given one arm, compared
    with the optimized policy at the same budget (``policy_comparison``, strategy ``rule: <name>``)."""

    name: str = Field(min_length=1)
    rule: str
    arm: str | None = None  # a promotion arm; None: the arm with the most expected gain in the segment

    @field_validator("rule")
    @classmethod
    def _parses(cls, v: str, info: ValidationInfo) -> str:
        from promo_opt.targeting import RuleSyntaxError, parse_rule

        try:
            parse_rule(v)
        except RuleSyntaxError as err:
            raise ValueError(f"rule '{info.data.get('name', '?')}': {err}") from None
        return v

    @property
    def parsed(self):
        from promo_opt.targeting import parse_rule

        return parse_rule(self.rule)


class GraphConfig(_Strict):
    """A causal graph declared by hand: ``graph: {edges: [[from, to], ...]}`` (``effect --adjust graph``)."""

    edges: list[tuple[str, str]] = Field(min_length=1)


class CampaignConfig(_Strict):
    name: str = "campaign"
    data: DataConfig
    arms: list[ArmConfig]
    objective: Objective = "conversions"
    constraints: Constraints = Constraints()
    holdout: HoldoutConfig = HoldoutConfig()
    model: ModelConfig = ModelConfig()
    solver: Literal["auto", "dual", "cpsat", "mip", "pulp"] = "auto"
    seed: int = 0
    spark: SparkConfig = SparkConfig()  # used only with --engine spark
    observational: ObservationalConfig = ObservationalConfig()
    drift: DriftConfig = DriftConfig()
    ltv: LtvConfig | None = None  # long-term value: promo-opt ltv, objective: long_term_value
    drivers: DriversConfig | None = None  # promo-opt drivers
    graph: GraphConfig | None = None  # effect --adjust graph
    targeting_rules: list[TargetingRuleConfig] = []  # segments compared with the optimized policy

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: list[ArmConfig]):
        if len(arms) < 2:
            raise ValueError("give at least two arms: the control and one promotion")
        names = [a.name for a in arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"arm names must be unique; repeated: {dup}")
        controls = [a.name for a in arms if a.control]
        if len(controls) != 1:
            raise ValueError(f"exactly one arm must have control: true; found {len(controls)} ({controls})")
        return arms

    @model_validator(mode="after")
    def _discount_needs_value(self):
        pct = [a.name for a in self.arms if a.discount > 0]
        if pct and self.data.value is None and self.data.outcome_type != "amount":  # an amount is its own value
            raise ValueError(f"arms {pct} give a percentage discount, which costs discount x order value: "
                             "set data.value to the order-value column (or use cost_per_conversion)")
        return self

    @model_validator(mode="after")
    def _segments(self):
        if (self.data.segment is None) != (self.constraints.segment_budgets is None):
            raise ValueError("data.segment and constraints.segment_budgets go together: give both or neither")
        return self

    @model_validator(mode="after")
    def _long_term_needs_ltv(self):
        if self.objective == "long_term_value" and self.ltv is None:
            raise ValueError("objective 'long_term_value' needs an ltv: section (ltv.multipliers, ltv.values: an "
                             "ltv.json, or ltv.panel to fit)")
        return self

    @model_validator(mode="after")
    def _targeting_rules(self):
        promos = [a.name for a in self.arms if not a.control]
        names = [r.name for r in self.targeting_rules]
        for i, r in enumerate(self.targeting_rules):
            if names.count(r.name) > 1:
                raise ValueError(f"targeting_rules.{i}: the name '{r.name}' is used by more than one rule; "
                                 "expected unique names (each is a strategy of policy_comparison)")
            if r.arm is not None and r.arm not in promos:
                what = "is the control arm" if r.arm == self.control.name else "is not an arm of this config"
                raise ValueError(f"targeting_rules.{i} '{r.name}': arm '{r.arm}' {what}; expected one of the "
                                 f"promotion arms {promos} (or no arm: the best one for the segment)")
        return self

    # -- derived views ---------------------------------------------------------------------
    @property
    def control(self) -> ArmConfig:
        return next(a for a in self.arms if a.control)

    @property
    def long_term_segment(self) -> str | None:
        """The candidates' column whose levels pick each user's long-term multipliers (objective
        long_term_value with ltv.segment), else None."""
        if self.objective != "long_term_value" or self.ltv is None:
            return None
        return self.ltv.segment

    @property
    def arm_names(self) -> list[str]:
        """Arm names with the control first: the column order of every (n_users, n_arms) matrix."""
        return [self.control.name] + [a.name for a in self.arms if not a.control]

    @property
    def ordered_arms(self) -> list[ArmConfig]:
        return [self.control] + [a for a in self.arms if not a.control]


def format_validation_error(err: ValidationError, source: str, what: str = "campaign config",
                            clean_loc=lambda loc: loc) -> str:
    """One line naming every offending key as a dotted path (shared by every YAML we validate)."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in clean_loc(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if not key:  # cross-field checks name their key in the message
            lines.append(msg)
        elif e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        elif e["type"] == "missing":
            lines.append(f"missing required key '{key}'")
        else:
            lines.append(f"key '{key}': {msg} (got {e.get('input')!r})")
    return f"{source}: invalid {what}: " + "; ".join(lines)


def yaml_problem(err: "yaml.YAMLError") -> str:
    """A YAML parser's complaint in one line: what is wrong and where (line, column; 1-based)."""
    mark = getattr(err, "problem_mark", None)
    what = " ".join(str(getattr(err, "problem", None) or err).split())
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else what


def read_yaml(path: str | Path, what: str = "config") -> object:
    """The parsed YAML of a file, or a ConfigError saying it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None


def parse_config(raw: dict, base_dir: Path | None = None, source: str = "config") -> CampaignConfig:
    """Validate a config mapping; data paths are made absolute against ``base_dir``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of keys, got {type(raw).__name__}")
    raw = expand_structure(raw, base_dir, source)  # ltv.structure: a separate file of the model's equations
    try:
        cfg = CampaignConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    if base_dir is not None:
        upd = {}
        for key in ("train", "candidates", "truth"):
            p = getattr(cfg.data, key)
            if p is not None and not p.is_absolute():
                upd[key] = (base_dir / p).resolve()
        if upd:
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=upd)})
        sp = {k: str((base_dir / v).resolve()) for k in ("candidates", "scores", "targets")
              if (v := getattr(cfg.spark, k)) and "://" not in v and not v.startswith("table:") and not Path(v).is_absolute()}
        if sp:  # relative local Spark paths, like data paths, are relative to the config file
            cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update=sp)})
        if cfg.ltv is not None:
            lp = {k: (base_dir / v).resolve() for k in ("panel", "values", "structure")
                  if (v := getattr(cfg.ltv, k)) is not None and not v.is_absolute()}
            if lp:
                cfg = cfg.model_copy(update={"ltv": cfg.ltv.model_copy(update=lp)})
        cfg = cfg.model_copy(update={"drivers": _resolve_drivers(cfg.drivers, base_dir)})
    return cfg


def load_config(path: str | Path, **overrides) -> CampaignConfig:
    """Read and validate a campaign YAML. ``overrides`` are dotted keys, e.g. ``{"constraints.budget": 10}``."""
    path = Path(path)
    raw = read_yaml(path, "config")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node, dict) else node
        node[leaf] = value
    return parse_config(raw, base_dir=path.parent.resolve(), source=str(path))


# ---- issue 14: the drivers section on its own ----
class DriversFile(_Strict):
    """A config holding only ``name`` and ``drivers:`` (plus ``seed``, ``graph``): enough for ``promo-opt drivers``."""

    name: str = "campaign"
    seed: int = 0
    drivers: DriversConfig
    graph: GraphConfig | None = None


def _resolve_drivers(drivers: DriversConfig | None, base_dir: Path) -> DriversConfig | None:
    if drivers is None or drivers.data.is_absolute():
        return drivers
    return drivers.model_copy(update={"data": (base_dir / drivers.data).resolve()})


def drivers_of(cfg: CampaignConfig, source: str = "config") -> DriversFile:
    """The ``drivers:`` section of a validated campaign config, as ``promo-opt drivers`` reads it."""
    if cfg.drivers is None:
        raise ConfigError(f"{source}: missing required key 'drivers' (the driver analysis section)")
    return DriversFile(name=cfg.name, seed=cfg.seed, drivers=cfg.drivers, graph=cfg.graph)


def load_drivers_config(path: str | Path) -> DriversFile:
    """The ``drivers:`` section of a config: a campaign config (validated whole) or one with only name/drivers."""
    path = Path(path)
    raw = read_yaml(path, "config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping of keys, got {type(raw).__name__}")
    if "data" in raw or "arms" in raw:  # a campaign config: every section is checked, then drivers taken
        return drivers_of(parse_config(raw, base_dir=path.parent.resolve(), source=str(path)), str(path))
    try:
        dfile = DriversFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path))) from None
    return dfile.model_copy(update={"drivers": _resolve_drivers(dfile.drivers, path.parent.resolve())})
