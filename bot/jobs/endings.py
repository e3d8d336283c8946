"""How a job's run ended, written to the store: done with its file, stopped (cancelled, or queued again
when a shutdown interrupted it), or failed with the sentence its asker reads — the admins told first
when only they can fix it, a full disk reported as such, a crash kept in the log and worded plainly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loguru import logger

from bot.jobs.outbox import GENERIC_REASON, Outbox
from bot.jobs.store import JobStore
from bot.jobs.types import Job, JobState
from bot.ops.notices import Told, honest
from generators.base import GeneratorError
from generators.storage import StorageFull, is_no_space


class RunEndings:
    """Writes the end of each run; `storage_full` logs a full disk and tells whoever should fix it."""

    def __init__(self, store: JobStore, outbox: Outbox | None,
                 storage_full: Callable[[StorageFull], Awaitable[StorageFull]]) -> None:
        self._store = store
        self._outbox = outbox
        self._storage_full = storage_full

    async def done(self, job: Job, path: Path, took_s: float) -> None:
        await self._finish(job.id, JobState.DONE, result=str(path))
        logger.info("jobs: #{} done in {:.1f}s -> {}", job.id, took_s, path)

    async def stopped(self, job: Job, *, by_shutdown: bool) -> None:
        """A shutdown's job runs again after the restart (the attempt is not counted); else cancelled."""
        if by_shutdown:
            await asyncio.to_thread(self._store.set_state, job.id, JobState.QUEUED,
                                    attempts=max(0, job.attempts - 1))
            logger.info("jobs: #{} interrupted by shutdown, re-queued", job.id)
        else:
            await self._finish(job.id, JobState.CANCELLED)
            logger.info("jobs: #{} cancelled while running", job.id)

    async def failed(self, job: Job, exc: Exception, media: Path) -> None:
        """`exc` ended the run; `media` is where its file was to go (named when that disk is full)."""
        if isinstance(exc, StorageFull):
            await self._storage_full(exc)
            error = str(exc)
        elif isinstance(exc, GeneratorError):
            error = await self._generator_error(job, exc)
        elif is_no_space(exc):  # e.g. moving a remote render into media/
            error = str(await self._storage_full(StorageFull(media, str(exc))))
        else:
            logger.opt(exception=exc).error("jobs: #{} crashed", job.id)  # the traceback stays in the log
            error = GENERIC_REASON
        await self._finish(job.id, JobState.FAILED, error=error)

    async def _generator_error(self, job: Job, exc: GeneratorError) -> str:
        """The asker's sentence; a fix only the admins can make goes to them first, so the sentence can say
        whether they were told."""
        logger.warning("jobs: #{} failed: {}", job.id, exc)
        told = Told.NO_ADMINS
        if exc.admin_detail:
            logger.error("jobs: #{}: {}", job.id, exc.admin_detail)
            if self._outbox is not None:
                told = await self._outbox.tell_admins_about(exc)
        return honest(str(exc), told)

    async def _finish(self, job_id: int, state: JobState, **columns: Any) -> None:
        await asyncio.to_thread(self._store.set_state, job_id, state, finished_at=time.time(), **columns)
