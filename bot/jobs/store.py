"""SQLite persistence of jobs: the source of truth for what was accepted, what runs and what was delivered.

WAL + synchronous=FULL, so an acknowledged job survives a power cut. Calls are synchronous and short;
`JobQueue` and `Outbox` call them through `asyncio.to_thread`. The file (`data_dir/jobs.sqlite3`) keeps
the schema of every earlier release: `_migrate` only adds what is missing, never drops or rewrites.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from loguru import logger

from bot.jobs.admission import Counts, refusal
from bot.jobs.late_results import LateOutcome
from bot.jobs.types import (
    FINISHED_STATES,
    PENDING_STATES,
    Job,
    JobRequest,
    JobState,
    Limits,
    QueueLimitReached,
)
from bot.messages import ChatRef

SCHEMA_VERSION = 1
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
    error TEXT,
    caption_sent_at REAL,
    profile TEXT NOT NULL DEFAULT '',
    cost_yuan REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_tasks (
    job_id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    task_id TEXT,
    created_at REAL,
    video_url TEXT,
    paid_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_message ON jobs(kind, message_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_chat_created ON jobs(chat_key, created_at);
"""
# columns a file from an older release might lack, with what ALTER TABLE adds for them
_ADDED_COLUMNS = {
    "deliver_failures": "INTEGER NOT NULL DEFAULT 0",
    "next_delivery_at": "REAL NOT NULL DEFAULT 0",
    "caption_sent_at": "REAL",
    "profile": "TEXT NOT NULL DEFAULT ''",
    "cost_yuan": "REAL NOT NULL DEFAULT 0",
}
LEGACY_QUOTA_FILE = "quotas.json"  # an earlier release's daily counts, beside this store in data_dir
_COUNTED = "kind=? AND created_at>=? AND state NOT IN ('failed', 'cancelled')"
# money a kind's jobs since a time cost or will cost: the price of every job still pending or done, and of
# a failed or cancelled one only when its provider task had succeeded (a refused or failed task is free)
_SPENT = ("SELECT COALESCE(SUM(cost_yuan), 0) FROM jobs WHERE kind=? AND created_at>=? AND cost_yuan>0"
          " AND (state NOT IN ('failed', 'cancelled')"
          " OR id IN (SELECT job_id FROM api_tasks WHERE paid_at IS NOT NULL))")


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        db = self._db
        existing = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        if existing:
            for column, declaration in _ADDED_COLUMNS.items():
                if column not in existing:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        legacy = self.path.with_name(LEGACY_QUOTA_FILE)
        if legacy.is_file():  # today's jobs are all in this store, so its counts are not needed
            logger.info("jobs: ignoring {}: daily quotas are counted from {}", legacy, self.path.name)

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
            result=Path(row["result"]) if row["result"] else None, error=row["error"], profile=row["profile"],
        )

    # -- admission ------------------------------------------------------------------------------
    def _counts(self, kind: str, asker_id: str, chat: ChatRef, since: float) -> Counts:
        db = self._db
        (pending,) = db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE asker_id=? AND kind=? AND state IN {PENDING_STATES}",
            (asker_id, kind)).fetchone()
        (mine,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE chat_key=? AND asker_id=? AND {_COUNTED}",
                             (chat.key, asker_id, kind, since)).fetchone()
        room = None
        if chat.is_room:
            (room,) = db.execute(f"SELECT COUNT(*) FROM jobs WHERE chat_key=? AND {_COUNTED}",
                                 (chat.key, kind, since)).fetchone()
        (spent,) = db.execute(_SPENT, (kind, since)).fetchone()
        return Counts(pending=pending, asker_today=mine, room_today=room, spent_yuan=spent)

    def refusal(self, kind: str, asker_id: str, chat: ChatRef, limits: Limits, *, since: float,
                label: str) -> str | None:
        """The admission answer a job would get now (read-only: nothing is counted)."""
        with self._lock:
            return refusal(limits, self._counts(kind, asker_id, chat, since), label)

    def insert(self, request: JobRequest, limits: Limits, *, now: float, since: float, day: str,
               label: str, profile: str = "") -> tuple[Job, bool]:
        """Check the limits and write the job in one transaction; (job, duplicate).

        `since` is the start of today in the configured time zone. Raises QueueLimitReached."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM jobs WHERE kind=? AND message_id=?",
                                 (request.kind, request.message_id)).fetchone()
                if row is not None:
                    db.execute("COMMIT")
                    return self._job(row), True
                counts = self._counts(request.kind, request.asker_id, request.chat, since)
                refused = refusal(limits, counts, label)
                if refused is not None:
                    raise QueueLimitReached(refused)
                cursor = db.execute(
                    "INSERT INTO jobs (kind, message_id, chat_key, asker_id, day, request, state, created_at,"
                    " profile, cost_yuan) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?, ?)",
                    (request.kind, request.message_id, request.chat.key, request.asker_id, day,
                     request.to_json(), now, profile, limits.cost_yuan))
                row = db.execute("SELECT * FROM jobs WHERE id=?", (cursor.lastrowid,)).fetchone()
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite has rolled back itself after some errors (a full disk)
                    db.execute("ROLLBACK")
                raise
        return self._job(row), False

    # -- reads ----------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id=?", (job_id,))
        return self._job(rows[0]) if rows else None

    def pending(self) -> list[Job]:
        return [self._job(r) for r in self._rows(
            f"SELECT * FROM jobs WHERE state IN {PENDING_STATES} ORDER BY id")]

    def finished_since(self, cutoff: float) -> list[Job]:
        """Jobs finished at or after `cutoff`, newest first (the console's history)."""
        return [self._job(r) for r in self._rows(
            f"SELECT * FROM jobs WHERE state IN {FINISHED_STATES} AND finished_at >= ?"
            " ORDER BY finished_at DESC",
            (cutoff,))]

    def undelivered(self, now: float) -> tuple[list[Job], float | None]:
        """Finished, not yet posted jobs in finish order, and the earliest retry time among the rest."""
        rows = self._rows(
            f"SELECT *, next_delivery_at AS nd FROM jobs WHERE state IN {FINISHED_STATES}"
            " AND delivered_at IS NULL ORDER BY finished_at, id")
        due: list[Job] = []
        for row in rows:  # in order: a result waiting for its retry holds back the ones after it
            if row["nd"] > now:
                return due, row["nd"]
            due.append(self._job(row))
        return due, None

    def recent_durations(self, kind: str, profile: str = "", count: int = 5) -> list[float]:
        """How long the last `count` finished jobs of this kind and profile (model, preset, size) ran."""
        rows = self._rows(
            "SELECT finished_at - started_at AS d FROM jobs WHERE kind=? AND profile=? AND state='done' "
            "AND started_at IS NOT NULL ORDER BY id DESC LIMIT ?", (kind, profile, count))
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

    def mark_delivered(self, job_id: int, now: float, state: JobState | None = None) -> bool:
        """False when `state` is given and the job left it meanwhile (a late result: deliver that too)."""
        if state is None:
            return self._write("UPDATE jobs SET delivered_at=? WHERE id=?", (now, job_id)) > 0
        return self._write("UPDATE jobs SET delivered_at=? WHERE id=? AND state=?",
                           (now, job_id, state.value)) > 0

    def take_late_result(self, job_id: int, result: str) -> LateOutcome:
        """A file that came back after the job ended without one: 'delivering' (the job is done now: its
        asker had not been told how it ended), 'kept' (on the row, for the admins) or 'pending' (it runs
        again and will collect its own result)."""
        with self._lock:
            row = self._db.execute("SELECT state, delivered_at FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return "kept"
            if row["state"] in PENDING_STATES:
                return "pending"
            if row["state"] != "done" and row["delivered_at"] is None and self._db.execute(
                    "UPDATE jobs SET state='done', result=?, error=NULL WHERE id=? AND delivered_at IS NULL",
                    (result, job_id)).rowcount:
                return "delivering"
            self._db.execute("UPDATE jobs SET result=? WHERE id=? AND result IS NULL", (result, job_id))
            return "kept"

    def mark_caption_sent(self, job_id: int, now: float) -> None:
        self._write("UPDATE jobs SET caption_sent_at=? WHERE id=?", (now, job_id))

    def caption_sent(self, job_id: int) -> bool:
        rows = self._rows("SELECT caption_sent_at FROM jobs WHERE id=?", (job_id,))
        return bool(rows) and rows[0][0] is not None

    def mark_delivery_failed(self, job_id: int, retry_at: float, counted: bool) -> None:
        self._write("UPDATE jobs SET next_delivery_at=?, deliver_failures=deliver_failures+? WHERE id=?",
                    (retry_at, 1 if counted else 0, job_id))

    def forget_result(self, job_id: int) -> None:
        self._write("UPDATE jobs SET result=NULL WHERE id=?", (job_id,))

    # -- a hosted API's task per job (see generators.video_api.run: the ledger) -------------------------
    def api_task(self, job_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM api_tasks WHERE job_id=?", (job_id,))
        return dict(rows[0]) if rows else None

    def api_task_creating(self, job_id: int, provider: str, model: str, request_id: str,
                          attempt: int) -> None:
        """Before a create call: a row with no task id yet (a restart that finds it never sends again)."""
        self._write("INSERT OR REPLACE INTO api_tasks (job_id, provider, model, request_id, attempt)"
                    " VALUES (?, ?, ?, ?, ?)", (job_id, provider, model, request_id, attempt))

    def api_task_created(self, job_id: int, task_id: str, created_at: float) -> None:
        self._write("UPDATE api_tasks SET task_id=?, created_at=? WHERE job_id=?",
                    (task_id, created_at, job_id))

    def api_task_not_created(self, job_id: int) -> None:
        self._write("DELETE FROM api_tasks WHERE job_id=? AND task_id IS NULL", (job_id,))

    def api_task_succeeded(self, job_id: int, video_url: str, now: float) -> None:
        """The task made its video: from now on the job's price counts as spent, whatever happens next."""
        self._write("UPDATE api_tasks SET video_url=?, paid_at=COALESCE(paid_at, ?) WHERE job_id=?",
                    (video_url, now, job_id))

    def spend_by_day(self, kind: str, since: float) -> list[tuple[str, float, int]]:
        """(day, 元 paid, videos paid) per day since `since`, oldest first: tasks that made their video."""
        rows = self._rows(
            "SELECT j.day AS day, SUM(j.cost_yuan) AS yuan, COUNT(*) AS n FROM jobs j JOIN api_tasks t"
            " ON t.job_id = j.id WHERE j.kind=? AND t.paid_at IS NOT NULL AND j.created_at>=?"
            " GROUP BY j.day ORDER BY j.day", (kind, since))
        return [(r["day"], r["yuan"], r["n"]) for r in rows]

    def spent_since(self, kind: str, since: float) -> float:
        """Paid and still-pending money of `kind` since `since` (what the daily budget is checked against)."""
        return float(self._rows(_SPENT, (kind, since))[0][0])

    def recover(self, max_attempts: int, now: float, reason: str) -> tuple[int, int]:
        """After a crash or restart: re-queue interrupted jobs, fail those tried too often (with
        `reason`), and retry undelivered results at once; (re-queued, failed)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET next_delivery_at=0 WHERE delivered_at IS NULL")
            failed = self._db.execute(
                "UPDATE jobs SET state='failed', error=?, finished_at=? "
                "WHERE state='running' AND attempts>=?",
                (reason, now, max_attempts)).rowcount
            requeued = self._db.execute(
                "UPDATE jobs SET state='queued' WHERE state IN ('running', 'accepted')").rowcount
        return requeued, failed
