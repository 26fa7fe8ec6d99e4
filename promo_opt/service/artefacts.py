"""Files of the service, all under the data directory and all named by server-made ids.

A job writes into ``jobs/.<id>.partial/`` and the directory is renamed to ``jobs/<id>/`` only when
every file is written; the job is then marked done. At startup, partial directories and the
directories of jobs that are not done are removed: an artefact is either complete or absent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from promo_opt.service.store import ID_PATTERN

log = logging.getLogger(__name__)
_ID = re.compile(ID_PATTERN)


class Artefacts:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        for sub in ("campaigns", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check(rid: str) -> str:
        if not _ID.match(rid):  # ids come from the store; this guards against any other path reaching here
            raise ValueError(f"not a resource id: {rid!r}")
        return rid

    def campaign_dir(self, cid: str) -> Path:
        return self.root / "campaigns" / self._check(cid)

    def job_dir(self, jid: str) -> Path:
        return self.root / "jobs" / self._check(jid)

    def partial_dir(self, rid: str, kind: str = "jobs") -> Path:
        d = self.root / kind / f".{self._check(rid)}.partial"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def commit(self, rid: str, kind: str = "jobs") -> Path:
        """Rename the finished partial directory into place (atomic on one filesystem)."""
        final = self.root / kind / self._check(rid)
        os.replace(self.root / kind / f".{rid}.partial", final)
        return final

    def discard(self, rid: str, kind: str = "jobs") -> None:
        shutil.rmtree(self.root / kind / f".{self._check(rid)}.partial", ignore_errors=True)

    def recover(self, done_jobs: set[str], campaigns: set[str]) -> list[str]:
        """Remove partial output and the output of jobs that did not finish. Returns what was removed."""
        removed = []
        for kind, keep in (("jobs", done_jobs), ("campaigns", campaigns)):
            for p in (self.root / kind).iterdir():
                if p.name.startswith(".") and p.name.endswith(".partial") or (p.is_dir() and p.name not in keep):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(f"{kind}/{p.name}")
        if removed:
            log.warning("removed incomplete output", extra={"removed": removed})
        return removed
