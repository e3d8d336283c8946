"""Media retention: results and stray partial files older than their kind's retention are removed.

Files live in `media_dir/<kind>/`; a file that belongs to a pending job is never removed. Runs hourly
from the queue and from the scheduler's nightly cleanup; blocking (disk and SQLite): call it in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from bot.jobs.store import JobStore


class Retention:
    def __init__(self, store: JobStore, media_dir: Path) -> None:
        self.store = store
        self.media_dir = media_dir
        self._keep: dict[str, Callable[[], float]] = {}  # kind -> seconds its files are kept

    def keep(self, kind: str, seconds: Callable[[], float]) -> None:
        self._keep[kind] = seconds

    def cleanup(self, now: float | None = None) -> int:
        """Remove media files older than their kind's retention; returns how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for kind, seconds in self._keep.items():
            cutoff = now - seconds()
            folder = self.media_dir / kind
            pending = {j.id for j in self.store.pending()}
            for job_id, path in self.store.results_older_than(cutoff):
                if path.parent == folder and job_id not in pending:
                    path.unlink(missing_ok=True)
                    self.store.forget_result(job_id)
                    removed += 1
            if folder.is_dir():  # strays: partial files from crashed runs
                for path in folder.iterdir():
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
                        removed += 1
        if removed:
            logger.info("jobs: removed {} old media files", removed)
        return removed
