"""The HTTP service: a door over the same core the CLI calls (``promo_opt.pipeline``)."""

from promo_opt.service.app import create_app
from promo_opt.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
