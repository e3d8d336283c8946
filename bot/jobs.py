"""The GPU job queue: accepted jobs are persisted in SQLite, run one at a time, and posted back to the chat.

Why it looks like this (see ../shared/notes/scale-out.md):

* A job is plain data: `JobRequest` (kind, params, seed, asker, `ChatRef`, message id, caption), stored
  as JSON in SQLite under `data_dir`. A result is a file path. Nothing in a job refers to live objects,
  so the same request can be handed to another process or machine unchanged.
* Three separate concerns:
    - `JobQueue` (the bot side, `app.jobs`): admission (per-user pending limit, per-group daily quota),
      persistence, ordering, position/ETA, cancellation, restart recovery, delivery with retries, and
      removal of old media. It is the only thing features talk to (`submit`, `list`, `cancel`, `status`).
    - `JobKind` (the work): `check(params)` is cheap and runs before a job is accepted;
      `run(request, output_stem, on_step, should_stop)` is blocking GPU/CPU work that writes one file.
      The video kind wraps `CogVideoXGenerator` (or the remote service); an image kind would wrap FLUX and
      submit to this SAME queue, so one GPU still runs one job at a time.
    - `JobBackend` (where the work runs): `LocalBackend` runs `kind.run` in a worker thread
      (`asyncio.to_thread`), `slots` jobs at a time (1 = one GPU).
* Plugging in more GPUs later without a rewrite: write another `JobBackend` whose `execute` hands the job
  elsewhere and awaits the file key, e.g. a Celery backend: `send_task(kind, args=[request.to_json()],
  task_id=job.name)` (the name is stable, so retries are idempotent), `slots` = number of GPU workers,
  `await asyncio.to_thread(result.get)` (Celery has no asyncio client), cancel with `revoke(terminate=True)`;
  the worker processes host the same `JobKind` objects and write to shared storage (settings that matter:
  `task_acks_late`, `task_reject_on_worker_lost`, `worker_prefetch_multiplier=1`, a `visibility_timeout`
  longer than the longest job). An xDiT multi-GPU worker is one more backend (or one kind whose `run`
  talks to a torchrun group). The queue keeps persistence and delivery either way.
* None lost, even after kill -9: a job is written before it is acknowledged; on start, jobs found
  `running` are queued again (or failed with a message after `max_attempts`), and every finished job
  stays "undelivered" until the channel accepted the message (`app.send` returns False while WeChat is
  disconnected, so delivery retries with backoff and keeps the finish order).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from bot.channels.base import ChatRef, Reply
from bot.progress import StepProgress
from generators.base import GenerationCancelled, GeneratorError

StepCallback = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


class JobState(StrEnum):
    ACCEPTED = "accepted"  # written, acknowledgement not yet sent; becomes QUEUED right after
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        return self in (JobState.ACCEPTED, JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class JobRequest:
    """Everything needed to run a job and post its result, as plain data (JSON in SQLite)."""

    kind: str  # "video", later "image"
    params: Mapping[str, Any]  # kind-specific, JSON-serialisable (prompt, num_frames, steps...)
    seed: int
    asker_id: str
    asker_name: str
    chat: ChatRef
    message_id: str  # the chat message that asked; (kind, message_id) is unique -> idempotent submit
    caption: str = ""  # text posted with the result

    def to_json(self) -> str:
        data = asdict(self)
        data["params"] = dict(self.params)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobRequest:
        data = json.loads(text)
        data["chat"] = ChatRef(**data["chat"])
        return cls(**data)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job, for listings (#队列) and tests."""

    id: int
    request: JobRequest
    state: JobState
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    delivered_at: float | None = None
    result: Path | None = None
    error: str | None = None
    step: int = 0  # progress of a running job (in memory only)
    steps: int = 0

    @property
    def name(self) -> str:
        """Stable, human-readable id: `{kind}:{chat}:{n}` (also usable as a remote task id)."""
        return f"{self.request.kind}:{self.request.chat.chat_id}:{self.id}"


@dataclass(frozen=True)
class Limits:
    """Admission rules for one submission, read from the feature's config section by the caller."""

    max_pending_per_user: int | None = None  # queued + running per asker; None = unlimited
    daily_quota_per_chat: int | None = None  # accepted per room per day; None = unlimited, 0 = none
    daily_quota_per_user: int | None = None  # accepted per asker per day; None = unlimited, 0 = none
    seconds_per_job: float = 120.0  # ETA estimate until real durations have been measured


@dataclass(frozen=True)
class Receipt:
    """What `submit` tells the asker: their job, their place in line and the expected wait."""

    job: Job
    position: int  # 1 = next to run (or running)
    eta_s: float
    duplicate: bool = False  # the same message was already submitted (a replayed event)


class QueueLimitReached(Exception):
    """Admission refused; the message is shown to the asker as is."""


class JobKind(Protocol):
    """The work of one kind of job. Hosted by whichever process runs it (bot, Celery worker...)."""

    name: str

    def check(self, params: Mapping[str, Any]) -> None:
        """Cheap validation before a job is accepted; raise GeneratorError naming the rule."""

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        """Blocking: do the work, write one file next to `output_stem` (adding a suffix), return it.

        Raise GeneratorError (message shown to the asker) or GenerationCancelled when should_stop().
        """


class JobBackend(Protocol):
    """Where the work runs. `execute` returns the result file or raises like `JobKind.run`."""

    slots: int  # how many jobs may run at the same time

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_step: StepCallback,
                      should_stop: ShouldStop) -> Path: ...


class LocalBackend:
    """In-process: one worker thread per slot (default 1 = one GPU runs one job at a time)."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_step: StepCallback,
                      should_stop: ShouldStop) -> Path:
        return await asyncio.to_thread(kind.run, job.request, output_stem, on_step, should_stop)


Deliver = Callable[[ChatRef, Reply], Awaitable[bool]]
"""Post a reply; False when the channel could not take it (retried later). `Application.send`."""

FAILURE_TEXT = "抱歉，{what}没有生成成功：{reason}"
GENERIC_REASON = "出了点意外，可以稍后再试一次"
RESTART_REASON = "服务中途重启了好几次，这个任务没能完成，请再发一次"
CANCELLED_TEXT = "你的{what}任务 #{id} 已取消。"
MISSING_FILE_REASON = "文件已经过期被清理了，请再发一次"
UNDELIVERABLE_REASON = "做好了但发不出来（文件可能太大），请换个短一点的要求再试"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    message_id TEXT NOT NULL,
    chat_key TEXT NOT NULL,
    asker_id TEXT NOT NULL,
    day TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    delivered_at REAL,
    deliver_failures INTEGER NOT NULL DEFAULT 0,
    next_delivery_at REAL NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_message ON jobs(kind, message_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""
_PENDING = ("accepted", "queued", "running")
_FINISHED = ("done", "failed", "cancelled")


class JobStore:
    """SQLite persistence (WAL). Synchronous and short; `JobQueue` calls it through `asyncio.to_thread`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged job survives a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"], request=JobRequest.from_json(row["request"]), state=JobState(row["state"]),
            attempts=row["attempts"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], delivered_at=row["delivered_at"],
            result=Path(row["result"]) if row["result"] else None, error=row["error"],
        )

    # -- admission ------------------------------------------------------------------------------
    def insert(self, request: JobRequest, limits: Limits, now: float) -> tuple[Job, bool]:
        """Check limits and write the job atomically; returns (job, duplicate). Raises QueueLimitReached."""
        day = time.strftime("%Y-%m-%d", time.localtime(now))
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM jobs WHERE kind=? AND message_id=?",
                                 (request.kind, request.message_id)).fetchone()
                if row is not None:
                    db.execute("COMMIT")
                    return self._job(row), True
                if limits.max_pending_per_user is not None:
                    (pending,) = db.execute(
                        f"SELECT COUNT(*) FROM jobs WHERE asker_id=? AND kind=? AND state IN {_PENDING}",
                        (request.asker_id, request.kind)).fetchone()
                    if pending >= limits.max_pending_per_user:
                        raise QueueLimitReached(
                            f"你已经有 {pending} 个任务在排队了，等它们做好再来吧～"
                            f"（每人最多同时 {limits.max_pending_per_user} 个）")
                counted = "kind=? AND day=? AND state NOT IN ('failed', 'cancelled')"
                if limits.daily_quota_per_user is not None:
                    (mine,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE asker_id=? AND {counted}",
                                         (request.asker_id, request.kind, day)).fetchone()
                    if mine >= limits.daily_quota_per_user:
                        raise QueueLimitReached(
                            f"你今天的额度（{limits.daily_quota_per_user} 个）已经用完了，明天再来吧～")
                if limits.daily_quota_per_chat is not None and request.chat.is_room:
                    (today,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE chat_key=? AND {counted}",
                                          (request.chat.key, request.kind, day)).fetchone()
                    if today >= limits.daily_quota_per_chat:
                        raise QueueLimitReached(
                            f"本群今天的额度（{limits.daily_quota_per_chat} 个）已经用完了，明天再来吧～")
                cursor = db.execute(
                    "INSERT INTO jobs (kind, message_id, chat_key, asker_id, day, request, state, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?)",
                    (request.kind, request.message_id, request.chat.key, request.asker_id, day,
                     request.to_json(), now))
                row = db.execute("SELECT * FROM jobs WHERE id=?", (cursor.lastrowid,)).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self._job(row), False

    # -- reads ----------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id=?", (job_id,))
        return self._job(rows[0]) if rows else None

    def pending(self) -> list[Job]:
        return [self._job(r) for r in self._rows(
            f"SELECT * FROM jobs WHERE state IN {_PENDING} ORDER BY id")]

    def recent(self, limit: int) -> list[Job]:
        return [self._job(r) for r in self._rows("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))]

    def undelivered(self, now: float) -> tuple[list[Job], float | None]:
        """Finished, not yet posted jobs in finish order, and the earliest retry time among the rest."""
        rows = self._rows(
            f"SELECT *, next_delivery_at AS nd FROM jobs WHERE state IN {_FINISHED} AND delivered_at IS NULL"
            " ORDER BY finished_at, id")
        due: list[Job] = []
        for row in rows:  # in order: a result waiting for its retry holds back the ones after it
            if row["nd"] > now:
                return due, row["nd"]
            due.append(self._job(row))
        return due, None

    def recent_durations(self, kind: str, count: int = 5) -> list[float]:
        rows = self._rows(
            "SELECT finished_at - started_at AS d FROM jobs WHERE kind=? AND state='done' "
            "AND started_at IS NOT NULL ORDER BY id DESC LIMIT ?", (kind, count))
        return [r["d"] for r in rows]

    def deliver_failures(self, job_id: int) -> int:
        rows = self._rows("SELECT deliver_failures FROM jobs WHERE id=?", (job_id,))
        return rows[0][0] if rows else 0

    def results_older_than(self, cutoff: float) -> list[tuple[int, Path]]:
        rows = self._rows("SELECT id, result FROM jobs WHERE result IS NOT NULL AND finished_at < ?",
                          (cutoff,))
        return [(r["id"], Path(r["result"])) for r in rows]

    # -- transitions ----------------------------------------------------------------------------
    def set_state(self, job_id: int, state: JobState, *, only_from: tuple[str, ...] | None = None,
                  **columns: Any) -> bool:
        sets = ", ".join(["state=?", *(f"{c}=?" for c in columns)])
        sql = f"UPDATE jobs SET {sets} WHERE id=?"
        args: tuple = (state.value, *columns.values(), job_id)
        if only_from:
            sql += f" AND state IN ({', '.join('?' * len(only_from))})"
            args += only_from
        return self._write(sql, args) > 0

    def mark_delivered(self, job_id: int, now: float) -> None:
        self._write("UPDATE jobs SET delivered_at=? WHERE id=?", (now, job_id))

    def mark_delivery_failed(self, job_id: int, retry_at: float, counted: bool) -> None:
        self._write("UPDATE jobs SET next_delivery_at=?, deliver_failures=deliver_failures+? WHERE id=?",
                    (retry_at, 1 if counted else 0, job_id))

    def forget_result(self, job_id: int) -> None:
        self._write("UPDATE jobs SET result=NULL WHERE id=?", (job_id,))

    def recover(self, max_attempts: int, now: float) -> tuple[int, int]:
        """After a crash or restart: re-queue interrupted jobs, fail those tried too often, and retry
        undelivered results at once."""
        with self._lock:
            self._db.execute("UPDATE jobs SET next_delivery_at=0 WHERE delivered_at IS NULL")
            failed = self._db.execute(
                "UPDATE jobs SET state='failed', error=?, finished_at=? "
                "WHERE state='running' AND attempts>=?",
                (RESTART_REASON, now, max_attempts)).rowcount
            requeued = self._db.execute(
                "UPDATE jobs SET state='queued' WHERE state IN ('running', 'accepted')").rowcount
        return requeued, failed


MAX_OVERTAKES = 4
"""Fairness: at most this many jobs in a row may start ahead of the oldest waiting job."""


def pick_next(waiting: list[Job], priority: Mapping[str, int], overtakes: int = 0,
              max_overtakes: int = MAX_OVERTAKES) -> tuple[Job, int]:
    """(the job to start next, the new overtake count) — short jobs first, bounded.

    The oldest job of the highest-priority kind goes first (a picture takes seconds, a video minutes, so
    pictures don't wait behind a queue of videos); but once `max_overtakes` jobs in a row went ahead
    of the oldest waiting job, that one goes next, so a video is never starved by a stream of pictures.
    Within one kind the order stays first come, first served."""
    by_age = sorted(waiting, key=lambda j: j.id)
    oldest = by_age[0]
    best = min(by_age, key=lambda j: (-priority.get(j.request.kind, 0), j.id))
    if best.id == oldest.id or overtakes >= max_overtakes:
        return oldest, 0
    return best, overtakes + 1


def run_order(waiting: list[Job], priority: Mapping[str, int], overtakes: int = 0,
              max_overtakes: int = MAX_OVERTAKES) -> list[Job]:
    """The order `pick_next` will start `waiting` in, if nothing else arrives (positions, ETAs)."""
    left, order = list(waiting), []
    while left:
        job, overtakes = pick_next(left, priority, overtakes, max_overtakes)
        order.append(job)
        left = [j for j in left if j.id != job.id]
    return order


class JobQueue:
    """`app.jobs`: submit jobs, list them, cancel them; runs them on a backend and posts the results.

    A Service (start/stop with the app). `deliver=None` keeps finished jobs for polling instead of
    posting them (the remote video service uses the queue this way).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        deliver: Deliver | None,
        backend: JobBackend | None = None,
        is_connected: Callable[[], bool] = lambda: True,
        max_attempts: int = 2,
        retry_delivery_s: float = 2.0,
        max_delivery_failures: int = 5,
        cleanup_interval_s: float = 3600.0,
        db_name: str = "jobs.sqlite3",
    ) -> None:
        self.data_dir = data_dir
        self.media_dir = data_dir / "media"
        self.store = JobStore(data_dir / db_name)
        self.backend: JobBackend = backend or LocalBackend()
        self.kinds: dict[str, JobKind] = {}
        self._labels: dict[str, str] = {}
        self._retention: dict[str, Callable[[], float]] = {}
        self._deliver = deliver
        self._is_connected = is_connected
        self.max_attempts = max_attempts
        self.retry_delivery_s = retry_delivery_s
        self.max_delivery_failures = max_delivery_failures
        self.cleanup_interval_s = cleanup_interval_s
        self._work = asyncio.Event()
        self._outbox = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stop_flags: dict[int, threading.Event] = {}  # claimed/running job id -> should_stop
        self._cancelled_by_asker: set[int] = set()  # running jobs stopped by cancel(), not by a shutdown
        self._shutting_down = False
        self._progress: dict[int, tuple[int, int]] = {}
        self.started = False
        # fairness (issue 5): kind -> priority; how many jobs in a row went ahead of the oldest waiting one
        self.priority: dict[str, int] = {}
        self.max_overtakes = MAX_OVERTAKES
        self._overtakes = 0

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
            self._retention[kind.name] = retention_s

    def label(self, kind: str) -> str:
        return self._labels.get(kind, "任务")

    # -- the API features and admin commands use ------------------------------------------------
    async def check(self, kind: str, params: Mapping[str, Any]) -> None:
        """Validate parameters before anything is queued (GeneratorError names the broken rule).

        Runs in a thread: a first check may read model files (the tokenizer) or ask a remote service."""
        await asyncio.to_thread(self._kind(kind).check, params)

    async def submit(self, request: JobRequest, limits: Limits = Limits(),
                     on_accepted: Callable[[Receipt], Awaitable[Any]] | None = None) -> Receipt:
        """Persist a job and queue it. `on_accepted` (the acknowledgement) runs before the job can
        start, so the ack always precedes the result. Raises QueueLimitReached or GeneratorError."""
        await self.check(request.kind, request.params)
        job, duplicate = await asyncio.to_thread(self.store.insert, request, limits, time.time())
        receipt = await self._receipt(job, limits.seconds_per_job, duplicate)
        if duplicate:
            return receipt
        try:
            if on_accepted is not None:
                await on_accepted(receipt)
        finally:
            await asyncio.to_thread(self.store.set_state, job.id, JobState.QUEUED,
                                    only_from=(JobState.ACCEPTED.value,))
            self._work.set()
        logger.info("jobs: accepted #{} {} for {} (position {}, eta {:.0f}s)",
                    job.id, job.name, request.asker_name, receipt.position, receipt.eta_s)
        return receipt

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
        if job.state is JobState.RUNNING:
            flag = self._stop_flags.get(job_id)
            if flag is not None:
                self._cancelled_by_asker.add(job_id)
                flag.set()
                logger.info("jobs: stopping running #{}", job_id)
                return job
        now = time.time()
        extra = {"delivered_at": now} if self._deliver is None else {}
        changed = await asyncio.to_thread(
            self.store.set_state, job_id, JobState.CANCELLED, only_from=_PENDING[:2],
            finished_at=now, **extra)
        if not changed:  # it started in the meantime
            flag = self._stop_flags.get(job_id)
            if flag is not None:
                self._cancelled_by_asker.add(job_id)
                flag.set()
        self._outbox.set()
        logger.info("jobs: cancelled #{}", job_id)
        return job

    def status(self) -> dict[str, Any]:
        """A small summary for admins (#队列) and health checks."""
        pending = self.list()
        running = [j for j in pending if j.state is JobState.RUNNING]
        return {
            "running": [{"id": j.id, "kind": j.request.kind,
                         "asker": j.request.asker_name, "step": j.step, "steps": j.steps} for j in running],
            "queued": len(pending) - len(running),
            "slots": self.backend.slots,
            "kinds": sorted(self.kinds),
        }

    async def estimate_wait(self, kind: str, seconds_per_job: float) -> tuple[int, float]:
        """(position a new job would get, seconds until it would be done) — for replies before submit."""
        pending = await asyncio.to_thread(self.store.pending)
        return len(pending) + 1, self._eta(pending, kind, seconds_per_job, own=True)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        requeued, failed = await asyncio.to_thread(self.store.recover, self.max_attempts, time.time())
        if requeued or failed:
            logger.warning("jobs: recovered after restart: {} re-queued, {} failed", requeued, failed)
        self._shutting_down = False
        self._tasks = [asyncio.create_task(self._worker(i), name=f"jobs-worker-{i}")
                       for i in range(self.backend.slots)]
        if self._deliver is not None:
            self._tasks.append(asyncio.create_task(self._delivery_loop(), name="jobs-delivery"))
        self._tasks.append(asyncio.create_task(self._cleanup_loop(), name="jobs-cleanup"))
        self._work.set()
        self._outbox.set()
        self.started = True

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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        self.started = False
        self.store.close()

    # -- internals ------------------------------------------------------------------------------
    def _kind(self, name: str) -> JobKind:
        try:
            return self.kinds[name]
        except KeyError:
            raise GeneratorError(f"「{name}」类任务还没有开通") from None

    def _with_progress(self, job: Job) -> Job:
        step, steps = self._progress.get(job.id, (0, 0))
        if not steps:
            return job
        return replace(job, step=step, steps=steps)

    def _estimate(self, kind: str, fallback: float) -> float:
        durations = self.store.recent_durations(kind)
        return sum(durations) / len(durations) if durations else fallback

    def _eta(self, ahead: list[Job], kind: str, seconds_per_job: float, own: bool) -> float:
        now = time.time()
        total = 0.0
        for job in ahead:
            estimate = self._estimate(job.request.kind, seconds_per_job)
            if job.state is JobState.RUNNING and job.started_at:
                total += max(estimate - (now - job.started_at), estimate * 0.1)
            else:
                total += estimate
        if own:
            total += self._estimate(kind, seconds_per_job)
        return math.ceil(total / max(1, self.backend.slots))

    def _in_run_order(self, pending: list[Job]) -> list[Job]:
        """Running jobs first, then the waiting ones in the order the fairness policy will start them."""
        running = [j for j in pending if j.state is JobState.RUNNING]
        waiting = [j for j in pending if j.state is not JobState.RUNNING]
        return running + run_order(waiting, self.priority, self._overtakes, self.max_overtakes)

    async def _receipt(self, job: Job, seconds_per_job: float, duplicate: bool) -> Receipt:
        pending = await asyncio.to_thread(self.store.pending)
        ordered = self._in_run_order(pending)
        ids = [j.id for j in ordered]
        ahead = ordered[:ids.index(job.id)] if job.id in ids else [j for j in pending if j.id < job.id]
        eta = await asyncio.to_thread(self._eta, ahead, job.request.kind, seconds_per_job, True)
        return Receipt(job=job, position=len(ahead) + 1, eta_s=eta, duplicate=duplicate)

    async def _claim(self) -> Job | None:
        """Take the next queued job per `run_order` and mark it running (one claim at a time)."""
        while True:
            queued = [j for j in await asyncio.to_thread(self.store.pending) if j.state is JobState.QUEUED]
            if not queued:
                return None
            job, overtakes = pick_next(queued, self.priority, self._overtakes, self.max_overtakes)
            # the stop flag exists before the row says running, so cancel() can always reach the job
            flag = threading.Event()
            if self._stop_flags.setdefault(job.id, flag) is not flag:
                continue  # another worker is claiming it right now
            claimed = await asyncio.to_thread(
                self.store.set_state, job.id, JobState.RUNNING, only_from=("queued",),
                started_at=time.time(), attempts=job.attempts + 1)
            if claimed:
                self._overtakes = overtakes
                return await asyncio.to_thread(self.store.get, job.id)
            self._stop_flags.pop(job.id, None)

    async def _worker(self, index: int) -> None:
        while not self._shutting_down:
            job = await self._claim()
            if job is None:
                self._work.clear()
                job = await self._claim()  # a submit may have landed between the read and the clear
                if job is None:
                    await self._work.wait()
                    continue
            await self._run(job)
            self._outbox.set()

    async def _run(self, job: Job) -> None:
        flag = self._stop_flags.setdefault(job.id, threading.Event())  # made by _claim
        kind = self.kinds.get(job.request.kind)
        output_stem = self.media_dir / job.request.kind / f"{job.id:06d}-{job.request.seed}"
        output_stem.parent.mkdir(parents=True, exist_ok=True)

        progress = StepProgress(f"jobs: #{job.id} {self.label(job.request.kind)}")

        def on_step(step: int, steps: int) -> None:  # called from the worker thread
            self._progress[job.id] = (step, steps)
            progress.update(step, steps)

        started = time.monotonic()
        try:
            if kind is None:
                raise GeneratorError(f"「{job.request.kind}」类任务还没有开通")
            path = await self.backend.execute(kind, job, output_stem, on_step, flag.is_set)
        except GenerationCancelled:
            if self._shutting_down and job.id not in self._cancelled_by_asker:  # run it again after restart
                await asyncio.to_thread(self.store.set_state, job.id, JobState.QUEUED,
                                        attempts=max(0, job.attempts - 1))
                logger.info("jobs: #{} interrupted by shutdown, re-queued", job.id)
            else:
                await self._finish(job.id, JobState.CANCELLED)
                logger.info("jobs: #{} cancelled while running", job.id)
        except GeneratorError as exc:
            logger.warning("jobs: #{} failed: {}", job.id, exc)
            await self._finish(job.id, JobState.FAILED, error=str(exc))
        except asyncio.CancelledError:
            raise  # the loop is going away; the row stays 'running' and is recovered on start
        except Exception as exc:  # noqa: BLE001 - one bad job must never stop the queue
            logger.exception("jobs: #{} crashed", job.id)
            await self._finish(job.id, JobState.FAILED, error=f"{GENERIC_REASON}（{type(exc).__name__}）")
        else:
            await self._finish(job.id, JobState.DONE, result=str(path))
            logger.info("jobs: #{} done in {:.1f}s -> {}", job.id, time.monotonic() - started, path)
        finally:
            progress.close()
            self._stop_flags.pop(job.id, None)
            self._cancelled_by_asker.discard(job.id)
            self._progress.pop(job.id, None)

    async def _finish(self, job_id: int, state: JobState, **columns: Any) -> None:
        now = time.time()
        if self._deliver is None:  # results are polled, not posted
            columns["delivered_at"] = now
        await asyncio.to_thread(self.store.set_state, job_id, state, finished_at=now, **columns)

    # -- delivery -------------------------------------------------------------------------------
    def _reply_for(self, job: Job) -> Reply:
        request = job.request
        what = self.label(request.kind)
        mention = (request.asker_id,) if request.chat.is_room else ()
        if job.state is JobState.DONE:
            if job.result is None or not job.result.is_file():
                return Reply(FAILURE_TEXT.format(what=what, reason=MISSING_FILE_REASON), None, mention)
            if self.store.deliver_failures(job.id) >= self.max_delivery_failures:
                return Reply(FAILURE_TEXT.format(what=what, reason=UNDELIVERABLE_REASON), None, mention)
            return Reply(request.caption, job.result, mention)
        if job.state is JobState.CANCELLED:
            return Reply(CANCELLED_TEXT.format(what=what, id=job.id), None, mention)
        return Reply(FAILURE_TEXT.format(what=what, reason=job.error or GENERIC_REASON), None, mention)

    async def _delivery_loop(self) -> None:
        assert self._deliver is not None
        while True:
            self._outbox.clear()
            due, next_at = await asyncio.to_thread(self.store.undelivered, time.time())
            for job in due:
                reply = await asyncio.to_thread(self._reply_for, job)  # SQLite and a file check
                ok = await self._deliver(job.request.chat, reply)
                now = time.time()
                if ok:
                    await asyncio.to_thread(self.store.mark_delivered, job.id, now)
                    continue
                counted = self._is_connected()  # failures while disconnected are not the file's fault
                await asyncio.to_thread(self.store.mark_delivery_failed, job.id,
                                        now + self.retry_delivery_s, counted)
                logger.warning("jobs: delivery of #{} failed; retrying in {}s", job.id, self.retry_delivery_s)
                next_at = now + self.retry_delivery_s
                break  # keep the finish order: nothing overtakes an undelivered result
            timeout = None if next_at is None else max(0.05, next_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.wait(), timeout)

    # -- media retention ------------------------------------------------------------------------
    def cleanup(self, now: float | None = None) -> int:
        """Remove media files older than their kind's retention; returns how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for kind, retention in self._retention.items():
            cutoff = now - retention()
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

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.cleanup)
            except Exception:  # noqa: BLE001 - retention must never take the queue down
                logger.exception("jobs: media cleanup failed")
            await asyncio.sleep(self.cleanup_interval_s)


def describe(job: Job, label: str) -> str:
    """One line per job for #队列: `#12 视频 妈妈 运行中 10/50`."""
    state = {
        JobState.ACCEPTED: "排队中", JobState.QUEUED: "排队中", JobState.RUNNING: "生成中",
        JobState.DONE: "已完成", JobState.FAILED: "失败", JobState.CANCELLED: "已取消",
    }[job.state]
    progress = f" {job.step}/{job.steps}" if job.state is JobState.RUNNING and job.steps else ""
    return f"#{job.id} {label} {job.request.asker_name} {state}{progress}"


__all__ = [
    "Deliver", "Job", "JobBackend", "JobKind", "JobQueue", "JobRequest", "JobState", "JobStore", "Limits",
    "LocalBackend", "QueueLimitReached", "Receipt", "describe",
    "MAX_OVERTAKES", "pick_next", "run_order",
]
