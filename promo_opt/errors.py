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
