"""Service settings: where state lives and how large a request may be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("promo-opt-data")


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'promo_opt.sqlite').resolve()}"


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str | None = None  # None: a SQLite file in data_dir
    max_upload_bytes: int = 200 * 2**20  # multipart campaign uploads
    max_body_bytes: int = 2**20  # every other request body (JSON)
    workers: int = 1  # background job threads
    frontier_cache: int = 4  # scored candidate sets whose budget frontier is kept in memory
    webhook_timeout: float = 10.0
    webhook_hosts: tuple[str, ...] = ()  # hosts a push may target; empty: any (set it on a shared network)

    @property
    def database_url(self) -> str:
        return self.db_url or default_db_url(self.data_dir)
