"""The ``ltv:`` section of the campaign config: the weekly panel and the structure of the dynamic model.

Kept free of ``promo_opt.config`` imports so the campaign config can embed it without a cycle.
Every check that needs only the config (unknown names, repeated names, a same-period cycle, a
group naming an unknown surrogate) is done here, so a bad system fails before any data is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShockConfig(_Strict):
    """A shock to value: set or raise a surrogate, the outcome, a group of surrogates or an arm."""

    target: str = Field(min_length=1)  # a surrogate, the outcome, a group name (ltv.groups) or an arm name
    kind: Literal["set", "raise"] = "raise"  # arms are always 'set' (the arm is given in those weeks)
    value: float = 1.0
    start: int = Field(default=0, ge=0)  # first week of the shock (week 0 = the first week of the horizon)
    weeks: int = Field(default=1, ge=1)  # length of the window
    name: str | None = None  # label in ltv.json (default: target:kind:value:start+weeks)

    @property
    def label(self) -> str:
        return self.name or f"{self.target}:{self.kind}:{self.value:g}:{self.start}+{self.weeks}"


class EquationConfig(_Strict):
    """Restrictions of one equation (default: the lags of every variable enter every equation)."""

    lags_of: list[str] | None = None  # variables whose lags enter (None: all)


SEGMENT_MAX_LEVELS = 20  # ltv.segment is a categorical column (a tier, a region), not an identifier or a number


class LtvConfig(_Strict):
    panel: Path | None = None  # one row per customer and week; CSV or Parquet (relative to the config)
    customer: str = "user_id"
    week: str = "week"
    treatment: str = "arm"
    outcome: str | None = None
    surrogates: list[str] = []
    controls: list[str] = []
    lags: int = Field(default=4, ge=1, le=52)
    horizon: int = Field(default=26, ge=1, le=520)
    same_period: list[tuple[str, str]] = []  # [[from, to], ...] edges inside one week (acyclic)
    # -- beyond the contract ------------------------------------------------------------------
    structure: Path | None = None  # a JSON/YAML file with surrogates/same_period/groups/equations/lags
    groups: dict[str, list[str]] = {}  # named groups of surrogates: shock targets and Shapley players
    equations: dict[str, EquationConfig] = {}  # per-equation restrictions, keyed by variable
    # each customer's mean of every variable over its first `level_weeks` weeks (default: lags) as extra
    # controls, those weeks then serving only as lags and levels: adjusts for persistent customer
    # differences the controls miss (see the README)
    customer_levels: bool = True
    level_weeks: int | None = Field(default=None, ge=1, le=104)
    alpha: float = Field(default=1e-4, ge=0.0)  # ridge penalty, relative to each regressor's sum of squares
    boot: int = Field(default=200, ge=0, le=100_000)  # bootstrap-by-customer replicates (0: no intervals)
    shocks: list[ShockConfig] = []  # extra shocks valued in ltv.json
    shapley_exact_max: int = Field(default=10, ge=1, le=16)  # exact Shapley up to this many players
    shapley_permutations: int = Field(default=200, ge=10)  # sampled Shapley beyond it (std_error in ltv.json)
    values: Path | None = None  # an ltv.json to read (objective: long_term_value) instead of fitting the panel
    # or the multipliers themselves, per promotion arm (e.g. copied from an ltv.json; for the HTTP service)
    multipliers: dict[str, float] | None = None
    # a time-invariant panel column (e.g. a loyalty tier, also a column of the candidates): every level with at
    # least segment_min_customers customers is valued on its own fit, and objective long_term_value scales each
    # candidate's incremental revenue by the multiplier of its level (see promo_opt.ltv.valuation)
    segment: str | None = None
    segment_min_customers: int = Field(default=1000, ge=1)

    @field_validator("surrogates", "controls")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"names must be unique; repeated: {dup}")
        return v

    @property
    def first_row(self) -> int:
        """A customer's first week (0-based position) fitted as an outcome: after its lags and level weeks."""
        return max(self.lags, self.level_weeks or self.lags) if self.customer_levels else self.lags

    @property
    def variables(self) -> list[str]:
        """The endogenous variables: the surrogates, then the outcome (the column order of every model array)."""
        return [*self.surrogates, self.outcome] if self.outcome is not None else list(self.surrogates)

    @model_validator(mode="after")
    def _structure(self):
        if self.panel is None and self.values is None and self.multipliers is None:
            raise ValueError("ltv: give 'panel' (the weekly customer panel to fit), 'values' (an ltv.json) or "
                             "'multipliers' (long_term / immediate per arm)")
        if sum(x is not None for x in (self.values, self.multipliers)) > 1:
            raise ValueError("ltv: give 'values' or 'multipliers', not both")
        for arm, v in (self.multipliers or {}).items():
            if not v == v or abs(v) == float("inf"):
                raise ValueError(f"ltv.multipliers.{arm}: expected a finite number, got {v}")
        if self.segment is not None and self.multipliers is not None:
            raise ValueError(f"ltv.segment '{self.segment}': per-segment multipliers come from ltv.values (an ltv.json "
                             "written with ltv.segment) or from fitting ltv.panel, not from ltv.multipliers (one number "
                             "per arm); drop one of them")
        if self.panel is not None and self.outcome is None:
            raise ValueError("ltv.outcome: name the weekly quantity whose long-run change is valued")
        if self.panel is None:
            return self
        names = self.variables
        clash = sorted(set(names) & set(self.controls))
        if clash:
            raise ValueError(f"ltv: {clash} cannot be both a surrogate/outcome and a control")
        ids = {self.customer, self.week, self.treatment}
        bad = sorted(ids & (set(names) | set(self.controls)))
        if bad or len(ids) < 3:
            raise ValueError(f"ltv: the customer, week and treatment columns must be distinct and not modelled; got {bad or sorted(ids)}")
        if self.segment is not None and self.segment in ids | set(names):
            raise ValueError(f"ltv.segment: '{self.segment}' is the customer, week or treatment column or a modelled "
                             "variable; expected a time-invariant column of the panel such as a loyalty tier")
        for i, (a, b) in enumerate(self.same_period):
            for end in (a, b):
                if end not in names:
                    raise ValueError(f"ltv.same_period.{i}: '{end}' is not a surrogate or the outcome; known: {names}")
            if a == b:
                raise ValueError(f"ltv.same_period.{i}: an edge from '{a}' to itself is a cycle")
        cycle = find_cycle(names, self.same_period)
        if cycle:
            raise ValueError("ltv.same_period: the same-period edges form a cycle " + " -> ".join(cycle)
                             + "; edges inside one week must be acyclic")
        for g, members in self.groups.items():
            unknown = [m for m in members if m not in self.surrogates]
            if unknown or not members:
                raise ValueError(f"ltv.groups.{g}: {unknown or 'empty'}: a group lists surrogates from {self.surrogates}")
            if g in names:
                raise ValueError(f"ltv.groups.{g}: a group cannot have the name of a variable")
        grouped = [s for m in self.groups.values() for s in m]
        if len(grouped) != len(set(grouped)):
            raise ValueError("ltv.groups: a surrogate may belong to one group only")
        for eq, spec in self.equations.items():
            if eq not in names:
                raise ValueError(f"ltv.equations.{eq}: not a surrogate or the outcome; known: {names}")
            for v in spec.lags_of or []:
                if v not in names:
                    raise ValueError(f"ltv.equations.{eq}.lags_of: '{v}' is not a surrogate or the outcome")
        for i, s in enumerate(self.shocks):
            if s.start + s.weeks > self.horizon:
                raise ValueError(f"ltv.shocks.{i}: the window ends at week {s.start + s.weeks - 1}, beyond the "
                                 f"horizon of {self.horizon} weeks")
        return self

    @property
    def topological_order(self) -> list[str]:
        """Variables ordered so every same-period parent comes before its child (ties: config order)."""
        return topological_order(self.variables, self.same_period)

    def parents(self, variable: str) -> list[str]:
        """Same-period parents of a variable, in variable order."""
        return [v for v in self.variables if (v, variable) in {tuple(e) for e in self.same_period}]

    def player_groups(self) -> dict[str, list[str]]:
        """Shapley players: the configured groups, plus every ungrouped surrogate on its own."""
        grouped = {s for m in self.groups.values() for s in m}
        return {**{g: list(m) for g, m in self.groups.items()},
                **{s: [s] for s in self.surrogates if s not in grouped}}


def find_cycle(nodes: list[str], edges) -> list[str] | None:
    """A directed cycle as a node list (first node repeated at the end), or None."""
    children = {n: [b for a, b in edges if a == n] for n in nodes}
    state = dict.fromkeys(nodes, 0)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for c in children[n]:
            if state[c] == 1:
                return stack[stack.index(c):] + [c]
            if state[c] == 0 and (found := visit(c)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in nodes:
        if state[n] == 0 and (found := visit(n)):
            return found
    return None


def topological_order(nodes: list[str], edges) -> list[str]:
    order, done = [], set()
    edges = [tuple(e) for e in edges]
    while len(order) < len(nodes):
        for n in nodes:
            if n not in done and all(a in done for a, b in edges if b == n):
                order.append(n)
                done.add(n)
                break
    return order


STRUCTURE_KEYS = ("surrogates", "same_period", "groups", "equations", "lags", "controls")


def expand_structure(raw: dict, base_dir: Path | None, source: str = "config") -> dict:
    """Merge the file named by ``ltv.structure`` (JSON or YAML) into the ``ltv`` mapping.

    For systems too large to list in the campaign config. The file may hold the keys
    ``STRUCTURE_KEYS``; a key given in both places is an error (no silent precedence).
    """
    import yaml

    from promo_opt.errors import ConfigError

    ltv = raw.get("ltv")
    if not isinstance(ltv, dict) or ltv.get("structure") is None:
        return raw
    path = Path(str(ltv["structure"]))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ConfigError(f"{source}: ltv.structure file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: ltv.structure is not valid JSON/YAML: {err}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: ltv.structure must be a mapping with keys from {list(STRUCTURE_KEYS)}")
    unknown = sorted(set(spec) - set(STRUCTURE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} in ltv.structure; expected keys from {list(STRUCTURE_KEYS)}")
    both = sorted(set(spec) & {k for k, v in ltv.items() if v not in (None, [], {})})
    if both:
        raise ConfigError(f"{source}: ltv.{both[0]} is given both in the config and in ltv.structure ({path}); keep one")
    return {**raw, "ltv": {**ltv, **spec}}
