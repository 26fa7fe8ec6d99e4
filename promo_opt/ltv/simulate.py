"""Weekly customer panels with known dynamics, for checking the long-term model.

A panel world (``scenarios/ltv/*.yaml``) is a linear dynamic system written out explicitly:
every variable at week t is its intercept, plus the controls' effects, plus weighted lags of the
variables, plus the effect of the arm given in this and the previous weeks, plus weighted
same-period parents, plus Gaussian noise. Arms are assigned at random every week (the weekly
probabilities in ``assignment``), so the promotions are randomized.

The truth is computed by this module's own recursion, independently of ``promo_opt.ltv.shocks``:
two noiseless runs of the world from the same start, one with the arm in week 0, one without.
In a linear world that difference is exactly the average effect over customers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from promo_opt.config import ArmConfig, format_validation_error, read_yaml
from promo_opt.data import atomic_write, write_table
from promo_opt.errors import ConfigError
from promo_opt.ltv.settings import find_cycle, topological_order


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ControlSpec(_Strict):
    mean: float = 0.0
    sd: float = Field(default=1.0, gt=0)


class PanelWorld(_Strict):
    name: str
    description: str = ""
    customers: int = Field(default=20_000, ge=1)
    weeks: int = Field(default=52, ge=2)
    burn_in: int = Field(default=30, ge=0)  # weeks simulated before the panel starts (then dropped)
    arms: list[ArmConfig]
    assignment: dict[str, float]  # weekly probability of every promotion arm (the rest: control)
    variables: list[str]  # surrogates, then the outcome (last)
    controls: dict[str, ControlSpec] = {}
    intercept: dict[str, float] = {}
    lags: dict[str, dict[str, list[float]]] = {}  # lags[var][from]: weights of lags 1, 2, ...
    arm_effects: dict[str, dict[str, list[float]]] = {}  # arm_effects[var][arm]: weights of lags 0, 1, ...
    same_period: list[tuple[str, str, float]] = []  # (from, to, weight) inside one week
    control_effects: dict[str, dict[str, float]] = {}
    noise: dict[str, float] = {}  # sd of each variable's noise (default 1)
    # sd of an unobserved, persistent customer intercept of each variable (heterogeneity the controls miss)
    customer_effects: dict[str, float] = {}
    fit_lags: int = Field(default=4, ge=1)  # ltv.lags of the written campaign config
    horizon: int = Field(default=26, ge=1)

    @model_validator(mode="after")
    def _names(self):
        V, A = self.variables, [a.name for a in self.arms]
        for key, table in (("lags", self.lags), ("arm_effects", self.arm_effects),
                           ("control_effects", self.control_effects), ("intercept", self.intercept),
                           ("noise", self.noise), ("customer_effects", self.customer_effects)):
            for var in table:
                if var not in V:
                    raise ValueError(f"{key}.{var}: not a variable {V}")
        for var, src in self.lags.items():
            for v in src:
                if v not in V:
                    raise ValueError(f"lags.{var}.{v}: not a variable {V}")
        for var, src in self.arm_effects.items():
            for a in src:
                if a not in A or a == self.control:
                    raise ValueError(f"arm_effects.{var}.{a}: not a promotion arm {A[1:]}")
        for var, src in self.control_effects.items():
            for c in src:
                if c not in self.controls:
                    raise ValueError(f"control_effects.{var}.{c}: not a control {list(self.controls)}")
        for a in self.assignment:
            if a not in A or a == self.control:
                raise ValueError(f"assignment.{a}: not a promotion arm")
        if sum(self.assignment.values()) >= 1:
            raise ValueError("assignment: the promotion probabilities must add to less than 1")
        if find_cycle(V, [(a, b) for a, b, _ in self.same_period]):
            raise ValueError("same_period: the edges form a cycle")
        return self

    @property
    def control(self) -> str:
        return next(a.name for a in self.arms if a.control)

    @property
    def arm_names(self) -> list[str]:
        return [self.control] + [a.name for a in self.arms if not a.control]

    @property
    def outcome(self) -> str:
        return self.variables[-1]

    @property
    def max_lag(self) -> int:
        return max([len(w) for src in self.lags.values() for w in src.values()]
                   + [len(w) - 1 for src in self.arm_effects.values() for w in src.values()] + [1])

    # -- simulation ----------------------------------------------------------------------------
    def _step(self, Y: list[np.ndarray], arm: list[np.ndarray], X: dict[str, np.ndarray], t: int,
              noise: dict[str, np.ndarray] | None) -> np.ndarray:
        """Every variable at week t (index into the lists Y and arm), shape (n, m)."""
        V = self.variables
        n = len(arm[t])
        y = np.zeros((n, len(V)))
        for var in topological_order(V, [(a, b) for a, b, _ in self.same_period]):
            j = V.index(var)
            val = np.full(n, self.intercept.get(var, 0.0))
            for c, w in self.control_effects.get(var, {}).items():
                val += w * X[c]
            if f"_u_{var}" in X:  # the unobserved customer intercept
                val += X[f"_u_{var}"]
            for src, ws in self.lags.get(var, {}).items():
                for lag, w in enumerate(ws, start=1):
                    if t - lag >= 0:
                        val += w * Y[t - lag][:, V.index(src)]
            for a, ws in self.arm_effects.get(var, {}).items():
                k = self.arm_names.index(a)
                for lag, w in enumerate(ws):
                    if t - lag >= 0:
                        val += w * (arm[t - lag] == k)
            for a, b, w in self.same_period:
                if b == var:
                    val += w * y[:, V.index(a)]
            if noise is not None:
                val += noise[var][:, t]
            y[:, j] = val
        return y

    def simulate(self, seed: int, customers: int | None = None) -> pd.DataFrame:
        """The panel: user_id, week, arm, the variables and the controls; weeks 0..weeks-1."""
        n = customers or self.customers
        rng = np.random.default_rng([seed, 2024])
        T = self.burn_in + self.weeks
        X = {c: rng.normal(s.mean, s.sd, n) for c, s in self.controls.items()}
        hidden = np.random.default_rng([seed, 2025])  # its own stream: worlds without it draw as before
        X.update({f"_u_{v}": hidden.normal(0, sd, n) for v, sd in self.customer_effects.items()})
        probs = np.array([1 - sum(self.assignment.values())] + [self.assignment.get(a, 0.0) for a in self.arm_names[1:]])
        arms = rng.choice(len(self.arm_names), size=(T, n), p=probs)
        noise = {v: rng.normal(0, self.noise.get(v, 1.0), (n, T)) for v in self.variables}
        Y: list[np.ndarray] = []
        arm_list = list(arms)
        for t in range(T):
            Y.append(self._step(Y, arm_list, X, t, noise))
        keep = slice(self.burn_in, T)
        Yk = np.stack(Y[keep], axis=1)  # (n, weeks, m)
        df = pd.DataFrame({"user_id": np.repeat(np.arange(n), self.weeks),
                           "week": np.tile(np.arange(self.weeks), n),
                           "arm": np.array(self.arm_names, dtype=object)[arms[keep].T.ravel()]})
        for j, v in enumerate(self.variables):
            df[v] = Yk[:, :, j].ravel()
        for c in self.controls:
            df[c] = np.repeat(X[c], self.weeks)
        return df

    def true_effect(self, arm: str, horizon: int | None = None) -> np.ndarray:
        """The true change of every variable in weeks 0..H-1, ``(H, m)``, for the arm once in week 0."""
        H = horizon or self.horizon
        k = self.arm_names.index(arm)
        pre = self.max_lag + 1
        X = {c: np.zeros(1) for c in self.controls}
        runs = []
        for given in (k, 0):
            arm_list = [np.zeros(1, dtype=np.int64) for _ in range(pre + H)]
            arm_list[pre] = np.array([given])
            Y: list[np.ndarray] = []
            for t in range(pre + H):
                Y.append(self._step(Y, arm_list, X, t, None))
            runs.append(np.concatenate(Y[pre:], axis=0))
        return runs[0] - runs[1]

    def true_values(self, horizon: int | None = None) -> dict[str, dict[str, float]]:
        """``{arm: {"immediate", "long_term"}}`` of the outcome, from :meth:`true_effect`."""
        out = {}
        for a in self.arm_names[1:]:
            e = self.true_effect(a, horizon)[:, -1]
            out[a] = {"immediate": float(e[0]), "long_term": float(e.sum())}
        return out

    def campaign_config(self, panel: str = "panel.parquet", boot: int = 200) -> dict:
        return {
            "name": f"ltv-{self.name}",
            "data": {"value": "order_value"},  # arms with a discount need it (the uplift side)
            "arms": [a.model_dump(exclude_defaults=True) | {"name": a.name} for a in self.arms],
            "ltv": {"panel": panel, "customer": "user_id", "week": "week", "treatment": "arm",
                    "outcome": self.outcome, "surrogates": self.variables[:-1], "controls": list(self.controls),
                    "lags": self.fit_lags, "horizon": self.horizon,
                    "same_period": [[a, b] for a, b, _ in self.same_period], "boot": boot},
        }

    def write_campaign(self, out: str | Path, seed: int = 0, customers: int | None = None, boot: int = 200,
                       fmt: str = "parquet") -> Path:
        """The simulated panel and a campaign config with its ltv: section; returns the config path."""
        out = Path(out)
        name = f"panel.{fmt}"
        write_table(self.simulate(seed, customers), out / name)
        text = yaml.safe_dump(self.campaign_config(name, boot), sort_keys=False)
        return atomic_write(out / "campaign.yaml", lambda p: p.write_text(text))


def segmented_panel(worlds: dict[str, PanelWorld], column: str, seed: int,
                    customers: int | None = None) -> pd.DataFrame:
    """One panel whose customers come from several worlds: ``column`` holds each customer's level (the key of
    its world in ``worlds``), user ids are made distinct. The worlds must share variables, arms and controls;
    each level's truth is its world's :meth:`PanelWorld.true_values` (``ltv.segment: column`` values them)."""
    first = next(iter(worlds.values()))
    for level, w in worlds.items():
        if w.variables != first.variables or w.arm_names != first.arm_names or list(w.controls) != list(first.controls):
            raise ConfigError(f"segmented_panel: world '{w.name}' ({column}={level}) differs from '{first.name}' in its "
                              "variables, arms or controls; the levels of one panel share them")
    parts, offset = [], 0
    for i, (level, w) in enumerate(worlds.items()):
        df = w.simulate(seed * len(worlds) + i, customers)
        df["user_id"] += offset
        offset = int(df["user_id"].max()) + 1
        parts.append(df.assign(**{column: level}))
    return pd.concat(parts, ignore_index=True)


def panel_world_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "scenarios" / "ltv"


def available_panel_worlds() -> list[str]:
    return sorted(p.stem for p in panel_world_dir().glob("*.yaml"))


def load_panel_world(name_or_path: str | Path) -> PanelWorld:
    path = Path(name_or_path)
    if not path.is_file():
        path = panel_world_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown panel world '{name_or_path}'; available: {available_panel_worlds()}")
    raw = read_yaml(path, "panel world")
    try:
        return PanelWorld.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), "panel world")) from None
