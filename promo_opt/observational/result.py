"""The typed result of one effect estimate: arm vs control, with a 95% interval."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


@dataclass
class ArmEffect:
    """Effect of ``arm`` against the control on the outcome (a difference in means / rates)."""

    arm: str
    estimate: float
    se: float
    n_arm: int  # rows of the arm used
    n_control: int  # rows of the control used
    method: str
    estimand: str  # "ate" or "att"
    details: dict = field(default_factory=dict)

    @property
    def ci_low(self) -> float:
        return self.estimate - Z95 * self.se

    @property
    def ci_high(self) -> float:
        return self.estimate + Z95 * self.se

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(ci_low=self.ci_low, ci_high=self.ci_high)
        return d
