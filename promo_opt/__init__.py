"""promo-opt: budget-constrained promotion optimizer."""

__version__ = "0.1.0"
