"""`JobQueue`: accepts jobs into the store, starts them in fair order on a worker backend, and finishes them.

Features talk only to this (`check`, `admit`, `submit`, `list`, `get`, `cancel`, `status`, `label`).
A job is written before it is acknowledged, its ack is sent before it can start, and on start jobs
found `running` are queued again (or failed with a message after `max_attempts`). With an `Outbox`
finished jobs are posted to their chat; without one (the video service) they are kept for polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger

from bot.background import cancel_and_wait
from bot.jobs.admission import DEFAULT_TIMEZONE, MAX_OVERTAKES, day_start, pick_next, run_order
from bot.jobs.backends import LocalBackend, WorkerBackend
from bot.jobs.endings import RunEndings
from bot.jobs.eta import eta_s
from bot.jobs.late_results import LateOutcome
from bot.jobs.outbox import RESTART_REASON, Outbox
from bot.jobs.progress import StepProgress
from bot.jobs.retention import Retention
from bot.jobs.store import JobStore
from bot.jobs.types import (
    PENDING_STATES,
    CheckedJob,
    CheckedRequest,
    Job,
    JobKind,
    JobRequest,
    JobState,
    Limits,
    QueueLimitReached,
    Receipt,
)
from bot.messages import ChatRef
from generators.base import GenerationCancelled, GeneratorError
from generators.storage import StorageFull, is_no_space

NO_LIMITS = Limits()


class JobQueue:
    """A Service (start/stop with the app). `backends` are asked in order (see `WorkerBackend`)."""

    def __init__(
        self,
        store: JobStore,
        backends: Sequence[WorkerBackend] = (),
        *,
        media_dir: Path,
        outbox: Outbox | None = None,
        timezone: Callable[[], str] = lambda: DEFAULT_TIMEZONE,
        max_attempts: int = 2,
        cleanup_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.backends: list[WorkerBackend] = [*backends] or [LocalBackend()]
        self.media_dir = media_dir
        self.outbox = outbox
        self.retention = Retention(store, media_dir)
        self._timezone = timezone
        self._clock = clock  # when a job is accepted: its day for the quotas
        self.max_attempts = max_attempts
        self.cleanup_interval_s = cleanup_interval_s
        self.kinds: dict[str, JobKind] = {}
        self._labels: dict[str, str] = {}
        # fairness: kind -> priority; how many jobs in a row went ahead of the oldest waiting one
        self.priority: dict[str, int] = {}
        self.max_overtakes = MAX_OVERTAKES
        self._overtakes = 0
        self._work = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stop_flags: dict[int, threading.Event] = {}  # claimed/running job id -> should_stop
        self._claimed_on: dict[int, WorkerBackend] = {}  # claimed/running job id -> the backend it holds
        self._cancelled_by_asker: set[int] = set()  # running jobs stopped by cancel(), not by a shutdown
        self._shutting_down = False
        self._progress: dict[int, tuple[int, int]] = {}
        # told when a result or the job store cannot be written for lack of space (the app tells the admins)
        self.on_storage_full: Callable[[StorageFull], Awaitable[Any]] | None = None
        self._endings = RunEndings(store, outbox, self._storage_full)

    # -- registration ---------------------------------------------------------------------------
    def register(self, kind: JobKind, *, label: str, retention_s: Callable[[], float] | None = None,
                 priority: int = 0) -> None:
        """Add a kind of work (`label` is what users read, e.g. 视频); `retention_s` ages its media out;
        a higher `priority` (short jobs: images) may go ahead of older waiting jobs (see `run_order`)."""
        if kind.name in self.kinds:
            raise ValueError(f"job kind {kind.name!r} is already registered")
        self.kinds[kind.name] = kind
        self._labels[kind.name] = label
        self.priority[kind.name] = priority
        if retention_s is not None:
            self.retention.keep(kind.name, retention_s)

    def label(self, kind: str) -> str:
        return self._labels.get(kind, "任务")

    def backend_for(self, kind: str) -> WorkerBackend:
        return next((b for b in self.backends if b.handles(kind)), self.backends[-1])

    # -- the API features and admin commands use ------------------------------------------------
    async def check(self, kind: str, request: Any) -> CheckedRequest:
        """Validate a kind's typed request before anything is queued (GeneratorError names the broken
        rule); what comes back goes to `submit` (`CheckedRequest.job`) without being checked again."""
        await self.backend_for(kind).check(self._kind(kind), request)
        return CheckedRequest(kind, request)

    async def admit(self, kind: str, asker_id: str, chat: ChatRef, limits: Limits) -> None:
        """Raise QueueLimitReached if a job would be refused now (before costly work such as the LLM);
        counts nothing: `submit` applies the same rules again when it writes the job."""
        since, _day = day_start(self._clock(), self._timezone())
        limits = self._priced(kind, {}, limits)
        refused = await asyncio.to_thread(self.store.refusal, kind, asker_id, chat, limits, since=since,
                                          label=self.label(kind))
        if refused is not None:
            raise QueueLimitReached(refused)

    async def submit(self, request: JobRequest, limits: Limits = NO_LIMITS,
                     on_accepted: Callable[[Receipt], Awaitable[Any]] | None = None) -> Receipt:
        """Persist a job and queue it. The daily quotas count in the configured time zone, in the same
        transaction that writes the job. `on_accepted` (the acknowledgement) runs before the job can
        start, so the ack always precedes the result. Raises QueueLimitReached or GeneratorError.
        A `CheckedJob` was checked by `check`; plain params (from another process) are checked here, once."""
        if not isinstance(request, CheckedJob):
            typed = await asyncio.to_thread(self._kind(request.kind).request, request.params, request.seed)
            await self.check(request.kind, typed)
        limits = self._priced(request.kind, request.params, limits)
        now = self._clock()
        since, day = day_start(now, self._timezone())
        try:
            job, duplicate = await asyncio.to_thread(self.store.insert, request, limits, now=now, since=since,
                                                     day=day, label=self.label(request.kind),
                                                     profile=self._profile(request))
        except sqlite3.OperationalError as exc:  # "database or disk is full"
            if not is_no_space(exc):
                raise
            raise await self._storage_full(StorageFull(self.store.path.parent, str(exc))) from exc
        receipt = await self._receipt(job, duplicate)
        if duplicate:
            return receipt
        try:
            if on_accepted is not None:
                await on_accepted(receipt)
        finally:
            await asyncio.to_thread(self.store.set_state, job.id, JobState.QUEUED,
                                    only_from=(JobState.ACCEPTED.value,))
            self._work.set()
        logger.info("jobs: accepted #{} {} for {} (position {}, eta {})", job.id, job.name,
                    request.asker_name, receipt.position,
                    "not measured yet" if receipt.eta_s is None else f"{receipt.eta_s:.0f}s")
        return receipt

    def _priced(self, kind: str, params: Mapping[str, Any], limits: Limits) -> Limits:
        """`limits` with the job's price and the daily budget when its backend charges money (a hosted
        API), so the budget is checked in the same transaction as the quotas."""
        price = getattr(self.backend_for(kind), "price", None)
        if price is None:
            return limits
        cost, budget = price(params)
        return replace(limits, cost_yuan=cost, daily_budget_yuan=budget)

    def spent_today(self, kind: str) -> float:
        """Money the kind's jobs cost today (paid, plus pending jobs at list price); SQLite: use a thread."""
        since, _day = day_start(self._clock(), self._timezone())
        return self.store.spent_since(kind, since)

    def get(self, job_id: int) -> Job | None:
        job = self.store.get(job_id)
        return self._with_progress(job) if job else None

    def list(self) -> list[Job]:
        """Pending jobs in run order (running first), with live progress."""
        return [self._with_progress(j) for j in self._in_run_order(self.store.pending())]

    async def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued job at once, or stop a running one at its next step. None if not pending."""
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or not job.state.pending:
            return None
        if job.state is JobState.RUNNING and self._stop(job_id):
            logger.info("jobs: stopping running #{}", job_id)
            return job
        changed = await asyncio.to_thread(
            self.store.set_state, job_id, JobState.CANCELLED, only_from=PENDING_STATES[:2],
            finished_at=time.time())
        if not changed:  # it started in the meantime
            self._stop(job_id)
        self._wake_outbox()
        logger.info("jobs: cancelled #{}", job_id)
        return job

    async def late_result(self, job_id: int, path: Path) -> LateOutcome:
        """A file that came back after its job ended without one (given up on, cancelled): delivered once
        if the asker has not been told how the job ended, else kept on the job's row for the admins."""
        outcome = await asyncio.to_thread(self.store.take_late_result, job_id, str(path))
        if outcome == "delivering":
            self._wake_outbox()
        return outcome

    def status(self) -> dict[str, Any]:
        """A small summary for admins (#状态) and health checks."""
        pending = self.list()
        running = [j for j in pending if j.state is JobState.RUNNING]
        return {
            "running": [{"id": j.id, "kind": j.request.kind,
                         "asker": j.request.asker_name, "step": j.step, "steps": j.steps} for j in running],
            "queued": len(pending) - len(running),
            "slots": self._slots(),
            "kinds": sorted(self.kinds),
        }

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        requeued, failed = await asyncio.to_thread(self.store.recover, self.max_attempts, time.time(),
                                                   RESTART_REASON)
        if requeued or failed:
            logger.warning("jobs: recovered after restart: {} re-queued, {} failed", requeued, failed)
        for backend in self.backends:
            await backend.start()
        self._shutting_down = False
        self._tasks = [asyncio.create_task(self._worker(), name=f"jobs-worker-{i}")
                       for i in range(self._slots())]
        if self.outbox is not None:
            delivery = self.outbox.run(self.store, self.label)
            self._tasks.append(asyncio.create_task(delivery, name="jobs-outbox"))
        self._tasks.append(asyncio.create_task(self._cleanup_loop(), name="jobs-cleanup"))
        self._work.set()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Interrupt running jobs (they are re-queued, not lost) and stop the loops."""
        self._shutting_down = True
        for flag in self._stop_flags.values():
            flag.set()
        self._work.set()  # idle workers wake up and see the shutdown
        workers = [t for t in self._tasks if t.get_name().startswith("jobs-worker")]
        if workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), grace_s)
        try:
            await cancel_and_wait(*self._tasks)
        finally:
            self._tasks = []
            for backend in self.backends:
                with contextlib.suppress(Exception):
                    await backend.stop()
            self.store.close()

    # -- internals ------------------------------------------------------------------------------
    def _slots(self) -> int:
        return max(backend.slots for backend in self.backends)

    def _kind(self, name: str) -> JobKind:
        try:
            return self.kinds[name]
        except KeyError:
            raise GeneratorError(f"「{name}」类任务还没有开通") from None

    def _stop(self, job_id: int) -> bool:
        """Raise the stop flag of a claimed or running job; False if no worker holds it."""
        flag = self._stop_flags.get(job_id)
        if flag is None:
            return False
        self._cancelled_by_asker.add(job_id)
        flag.set()
        return True

    def _wake_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.wake()

    def _with_progress(self, job: Job) -> Job:
        step, steps = self._progress.get(job.id, (0, 0))
        return replace(job, step=step, steps=steps) if steps else job

    def _profile(self, request: JobRequest) -> str:
        profile = getattr(self.kinds.get(request.kind), "profile", None)
        return profile(request.params) if profile is not None else ""

    def _in_run_order(self, pending: list[Job]) -> list[Job]:
        """Running jobs first, then the waiting ones in the order the fairness policy will start them."""
        running = [j for j in pending if j.state is JobState.RUNNING]
        waiting = [j for j in pending if j.state is not JobState.RUNNING]
        return running + run_order(waiting, self.priority, self._overtakes, self.max_overtakes)

    async def _receipt(self, job: Job, duplicate: bool) -> Receipt:
        pending = await asyncio.to_thread(self.store.pending)
        ordered = self._in_run_order(pending)
        ids = [j.id for j in ordered]
        ahead = ordered[:ids.index(job.id)] if job.id in ids else [j for j in pending if j.id < job.id]
        workers = self.backend_for(job.request.kind).live_workers()
        eta = await asyncio.to_thread(eta_s, self.store, job, ahead, workers, time.time())
        return Receipt(job=job, position=len(ahead) + 1, eta_s=eta, duplicate=duplicate, live_workers=workers)

    def _has_room(self, job: Job) -> bool:
        """Whether the backend that would run `job` runs fewer than its `slots` jobs now (one GPU runs one
        job; a hosted API runs `max_in_flight`), so a claimed job is always really running."""
        backend = self.backend_for(job.request.kind)
        return sum(b is backend for b in self._claimed_on.values()) < backend.slots

    async def _claim(self) -> Job | None:
        """Take the next queued job per `run_order` whose backend has room, and mark it running (one
        claim at a time)."""
        while True:
            queued = [j for j in await asyncio.to_thread(self.store.pending)
                      if j.state is JobState.QUEUED and self._has_room(j)]
            if not queued:
                return None
            job, overtakes = pick_next(queued, self.priority, self._overtakes, self.max_overtakes)
            # the stop flag exists before the row says running, so cancel() can always reach the job
            flag = threading.Event()
            if self._stop_flags.setdefault(job.id, flag) is not flag:
                continue  # another worker is claiming it right now
            self._claimed_on[job.id] = self.backend_for(job.request.kind)
            claimed = await asyncio.to_thread(
                self.store.set_state, job.id, JobState.RUNNING, only_from=("queued",),
                started_at=time.time(), attempts=job.attempts + 1)
            if claimed:
                self._overtakes = overtakes
                return await asyncio.to_thread(self.store.get, job.id)
            self._stop_flags.pop(job.id, None)
            self._claimed_on.pop(job.id, None)

    async def _worker(self) -> None:
        while not self._shutting_down:
            job = await self._claim()
            if job is None:
                self._work.clear()
                job = await self._claim()  # a submit may have landed between the read and the clear
                if job is None:
                    await self._work.wait()
                    continue
            await self._run(job)
            self._wake_outbox()

    async def _run(self, job: Job) -> None:
        flag = self._stop_flags.setdefault(job.id, threading.Event())  # made by _claim
        output_stem = self.media_dir / job.request.kind / f"{job.id:06d}-{job.request.seed}"
        output_stem.parent.mkdir(parents=True, exist_ok=True)

        progress = StepProgress(f"jobs: #{job.id} {self.label(job.request.kind)}")

        def on_progress(step: int, steps: int) -> None:  # called from a worker thread
            self._progress[job.id] = (step, steps)
            progress.update(step, steps)

        started = time.monotonic()
        try:
            kind = self._kind(job.request.kind)
            backend = self.backend_for(kind.name)
            path = await backend.execute(kind, job, output_stem, on_progress, flag.is_set)
        except GenerationCancelled:
            by_shutdown = self._shutting_down and job.id not in self._cancelled_by_asker
            await self._endings.stopped(job, by_shutdown=by_shutdown)
        except asyncio.CancelledError:
            raise  # the loop is going away; the row stays 'running' and is recovered on start
        except Exception as exc:  # noqa: BLE001 - one bad job must never stop the queue
            await self._endings.failed(job, exc, output_stem.parent)
        else:
            await self._endings.done(job, path, time.monotonic() - started)
        finally:
            progress.close()
            self._stop_flags.pop(job.id, None)
            self._claimed_on.pop(job.id, None)
            self._work.set()  # a slot is free: an idle worker may take a job that waited for it
            self._cancelled_by_asker.discard(job.id)
            self._progress.pop(job.id, None)

    async def _storage_full(self, error: StorageFull) -> StorageFull:
        """Log a full disk as such and tell `on_storage_full`; returns `error` for the caller to raise."""
        logger.error("jobs: no space left in {}: {}", error.where, error.detail)
        if self.on_storage_full is not None:
            try:
                await self.on_storage_full(error)
            except Exception:  # noqa: BLE001 - telling the admin must not hide the failure itself
                logger.exception("jobs: telling the admins about the full disk failed")
        return error

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.retention.cleanup)
            except Exception:  # noqa: BLE001 - retention must never take the queue down
                logger.exception("jobs: media cleanup failed")
            await asyncio.sleep(self.cleanup_interval_s)
