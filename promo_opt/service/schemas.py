"""Request and response bodies. Field names are the core's words: budget, min_roi, arm, spend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from promo_opt.learners.registry import learner_names
from promo_opt.service.store import ID_PATTERN

Id = Field(pattern=ID_PATTERN, description="a server-made id, e.g. mod_0123456789abcdef")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Campaign(BaseModel):
    id: str
    name: str
    files: dict
    created_at: float
    config: dict | None = None


class JobOut(BaseModel):
    id: str
    kind: Literal["train", "score", "allocate", "push", "analysis"]
    status: Literal["queued", "running", "done", "failed"]
    campaign_id: str | None
    parent_id: str | None = Field(description="model of a score job, scores of an allocation, allocation of a push "
                                              "or of a policy comparison, drivers analysis of an effect adjusted by its graph")
    params: dict
    result: dict | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    elapsed_seconds: float | None = Field(default=None, description="seconds running so far (or in all, once finished)")


# the registry's names, so the API offers exactly what a campaign config accepts
LearnerName = Literal[("auto", *learner_names())]


class ModelSettings(_Body):
    """Overrides of the campaign's ``model`` section (same names and meanings)."""

    learner: LearnerName | None = None
    folds: int | None = Field(default=None, ge=2, le=20)
    calibrate: bool | None = None
    correct_forecast: bool | None = None


class TrainRequest(_Body):
    campaign_id: str = Id
    model: ModelSettings | None = Field(default=None, description="overrides of the campaign's model section")


class ScoreRequest(_Body):
    model_id: str = Id
    campaign_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                    description="whose candidates to score; default: the model's campaign")


class BudgetRange(_Body):
    low: float = Field(ge=0, le=1e15)
    high: float = Field(ge=0, le=1e15)
    n: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"budget_range: high ({self.high}) must be >= low ({self.low})")
        return self


class PlanRequest(_Body):
    scores_id: str = Id
    budgets: list[float] | None = Field(default=None, max_length=1000,
                                        description="budgets to evaluate (each >= 0)")
    budget_range: BudgetRange | None = None
    min_roi: float | None = Field(default=None, ge=0, le=1e6, description="default: the campaign's constraints.min_roi")
    n_points: int = Field(default=50, ge=2, le=1000, description="points from 0 to the useful spend when no budgets")

    @model_validator(mode="after")
    def _one_of(self):
        if self.budgets is not None and self.budget_range is not None:
            raise ValueError("give budgets or budget_range, not both")
        if self.budgets is not None and any(not (0 <= b <= 1e15) for b in self.budgets):
            raise ValueError("budgets must be finite numbers in [0, 1e15]")
        return self


class PlanForecast(BaseModel):
    """A budget's forecast as an allocation's ``summary.forecast`` gives it (``pipeline.curve_forecast``)."""

    incremental_conversions: float
    incremental_revenue: float
    spend: float
    interval90: dict[str, list[float]] = Field(
        description="90% interval of each true total: incremental_conversions, incremental_revenue, spend")
    net_revenue_interval90: list[float] = Field(description="90% interval of the true incremental revenue - spend")
    warning: str | None = Field(default=None, description="set where the intervals do not show that the plan gains")


class PlanPoint(BaseModel):
    budget: float
    spend: float
    incremental_conversions: float
    incremental_revenue: float
    objective: float
    roi: float | None
    marginal_gain_per_unit: float
    users_per_arm: dict[str, int]
    spend_per_arm: dict[str, float] = Field(default_factory=dict, description="expected spend on each arm")
    resolved: bool
    forecast: PlanForecast | None = Field(
        default=None, description="the winner's-curse corrected forecast with 90% intervals (the scoring model's "
                                  "held-out measurement; absent without one)")


class PlanResponse(BaseModel):
    scores_id: str
    min_roi: float | None
    # the floor on the model's expected ROI that the curve holds: min_roi on the scoring model's corrected forecast
    # (pipeline.held_floor), raised in guarantee mode until min_roi holds with min_roi_confidence
    allocated_min_roi: float | None = None
    min_roi_confidence: float | None = None
    objective: str
    # under net_revenue: the weight of the spend in the gain the curve holds (incremental revenue - weight x spend),
    # the break-even the scoring model's held-out twin showed pays (pipeline.reported_cost_weight); None otherwise
    allocated_cost_weight: float | None = None
    points: list[PlanPoint]


class ArmCap(_Body):
    max_users: int | None = Field(default=None, ge=0)
    max_spend: float | None = Field(default=None, ge=0)


class AllocationRequest(_Body):
    scores_id: str = Id
    budget: float | None = Field(default=None, ge=0, le=1e15, description="default: the campaign's budget")
    min_roi: float | None = Field(default=None, ge=0, le=1e6, description="default: the campaign's min_roi")
    arm_caps: dict[str, ArmCap] | None = Field(default=None, description="per-arm caps, by arm name")


class PushRequestBody(_Body):
    url: HttpUrl
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    include_control: bool = Field(default=False, description="also send users left on the control arm")


class TargetsPage(BaseModel):
    allocation_id: str
    offset: int
    limit: int
    total: int
    next_offset: int | None
    rows: list[dict]


class Delivery(BaseModel):
    batch: int
    attempt: int
    idempotency_key: str
    status_code: int | None
    error: str | None
    at: float


class PushOut(JobOut):
    deliveries: list[Delivery]


class AnalysisRequest(_Body):
    """A campaign's report (``effect``, ``ltv``, ``drivers``: the CLI commands of the same names) or the policy
    comparison of a targeting list (``policies``: off-policy, as ``promo-opt run`` reports it)."""

    analysis: Literal["effect", "ltv", "drivers", "policies"]
    campaign_id: str | None = Field(default=None, pattern=ID_PATTERN, description="effect, ltv, drivers: the campaign")
    allocation_id: str | None = Field(default=None, pattern=ID_PATTERN, description="policies: the targeting list")
    method: Literal["naive", "psm", "ipw", "aipw", "did"] | None = Field(default=None, description="effect only; "
                                                                          "default aipw")
    estimand: Literal["ate", "att"] | None = Field(default=None, description="effect only; default ate")
    adjust: Literal["graph"] | None = Field(default=None, description="effect only: adjust for a backdoor set of a "
                                            "causal graph (the config's graph: edges, or graph_analysis_id's)")
    graph_analysis_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                          description="effect with adjust graph: a finished drivers analysis whose "
                                                      "graph.json to read")
    boot: int | None = Field(default=None, ge=1, le=5000, description="ltv only: override ltv.boot")

    @model_validator(mode="after")
    def _fits_the_analysis(self):
        if self.analysis == "policies":
            if self.allocation_id is None or self.campaign_id is not None:
                raise ValueError("analysis 'policies' takes allocation_id (the targeting list), not campaign_id")
        elif self.campaign_id is None or self.allocation_id is not None:
            raise ValueError(f"analysis '{self.analysis}' takes campaign_id, not allocation_id")
        only = {"method": "effect", "estimand": "effect", "adjust": "effect", "graph_analysis_id": "effect",
                "boot": "ltv"}
        for key, owner in only.items():
            if getattr(self, key) is not None and self.analysis != owner:
                raise ValueError(f"{key} is an option of analysis '{owner}', not of '{self.analysis}'")
        if self.graph_analysis_id is not None and self.adjust != "graph":
            raise ValueError("graph_analysis_id is read only with adjust 'graph'")
        return self


class AnalysisChoice(BaseModel):
    analysis: str
    needs: str
    available: bool
    reason: str | None = Field(description="why this campaign cannot run it: the missing key")


class CampaignAnalyses(BaseModel):
    campaign_id: str
    analyses: list[AnalysisChoice]
    jobs: list[JobOut] = Field(description="this campaign's analyses, oldest first")
