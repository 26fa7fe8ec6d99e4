"""One exception family. Messages name the key/column/value and say what was expected."""


class PromoOptError(Exception):
    """Base class of every error a user can cause (bad config, bad data, infeasible problem)."""


class ConfigError(PromoOptError):
    """The campaign config is malformed: unknown key, wrong type, inconsistent arms."""


class DataError(PromoOptError):
    """An input table is missing, unreadable, or does not match the config."""


class InfeasibleError(PromoOptError):
    """The constraints cannot be met (e.g. the ROI floor is above the best attainable ROI)."""


class ModelError(PromoOptError):
    """A saved model does not fit the config or data it is used with."""


class UnreachableFloor(InfeasibleError):
    """An ROI floor above ``best``, the best ROI any user x arm reaches: no policy that treats anyone meets it.
    Carries both numbers, so a caller that raised the floor itself (guarantee mode) can say what it asked for."""

    def __init__(self, message: str, min_roi: float, best: float):
        super().__init__(message)
        self.min_roi = min_roi
        self.best = best


class GuaranteeRefused(InfeasibleError):
    """Guarantee mode (``constraints.min_roi_confidence``) found no policy safe enough; the message is whole (it
    names the planner's floor and the floor the guarantee needs or why none is safe), so callers add nothing."""
