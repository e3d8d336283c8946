"""The job subsystem's plain data: what a job is, its states, the admission rules and the receipt.

Nothing here refers to a live object, so a request can be stored in SQLite or handed to another process
or host unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.messages import ChatRef
from generators.base import ShouldStop, StepCallback


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

    @property
    def text(self) -> str:
        """What people read for this state (#队列, the playground's job panel)."""
        return _STATE_TEXT[self]


_STATE_TEXT = {
    JobState.ACCEPTED: "排队中", JobState.QUEUED: "排队中", JobState.RUNNING: "生成中",
    JobState.DONE: "已完成", JobState.FAILED: "失败", JobState.CANCELLED: "已取消",
}
PENDING_STATES = ("accepted", "queued", "running")
FINISHED_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class JobRequest:
    """Everything needed to run a job and post its result, as plain data (JSON in SQLite)."""

    kind: str  # "video", "image"
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
class CheckedJob(JobRequest):
    """A `JobRequest` made from a `CheckedRequest`: `JobQueue.submit` stores it without checking it again
    (a plain `JobRequest`, e.g. from an HTTP body, is checked there once)."""


@dataclass(frozen=True)
class CheckedRequest:
    """A kind's typed request (`VideoRequest`, `ImageRequest`, seed included) that its worker backend
    accepted (`JobQueue.check`). Only the prompt may change afterwards: the rewriter writes it after the
    check, fitted to the kind's own token count."""

    kind: str
    request: Any

    def with_prompt(self, prompt: str) -> CheckedRequest:
        return replace(self, request=replace(self.request, prompt=prompt))

    def job(self, *, asker_id: str, asker_name: str, chat: ChatRef, message_id: str,
            caption: str = "") -> CheckedJob:
        """The job to submit: the request as the store keeps it (plain params, the seed apart)."""
        params = self.request.to_dict()
        seed = params.pop("seed")
        if seed is None:
            raise ValueError("a job's seed is chosen before its request is checked")
        return CheckedJob(kind=self.kind, params=params, seed=seed, asker_id=asker_id, asker_name=asker_name,
                          chat=chat, message_id=message_id, caption=caption)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job, for listings (#队列), the backends and tests."""

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
    profile: str = ""  # what its duration depends on (JobKind.profile): estimates compare like with like

    @property
    def name(self) -> str:
        """Stable, human-readable id: `{kind}:{chat}:{n}` (also usable as a remote task id)."""
        return f"{self.request.kind}:{self.request.chat.chat_id}:{self.id}"


@dataclass(frozen=True)
class Limits:
    """Admission rules for one submission, computed by the caller (`limits_for`)."""

    max_pending_per_user: int | None = None  # queued + running per asker; None = unlimited
    daily_quota_per_chat: int | None = None  # accepted per room per day; None = unlimited, 0 = none
    daily_quota_per_user: int | None = None  # accepted per asker in one chat per day; None/0 as above
    seconds_per_job: float = 120.0  # ETA estimate until real durations have been measured
    daily_budget_yuan: float | None = None  # money the kind may spend per day (a hosted API); None = any
    cost_yuan: float = 0.0  # what this job will cost (its list price) once its provider task succeeds


@dataclass(frozen=True)
class Receipt:
    """What `submit` tells the asker: their job, their place in line and the expected wait."""

    job: Job
    position: int  # 1 = next to run (or running)
    eta_s: float | None  # None until jobs like these have been measured: no number is better than a guess
    duplicate: bool = False  # the same message was already submitted (a replayed event)
    live_workers: int = 1  # workers able to run it now; 0 = it waits until one comes back


class QueueLimitReached(Exception):
    """Admission refused; the message is shown to the asker as is."""


class JobKind(Protocol):
    """The work of one kind of job. Hosted by whichever process runs it (the bot, a GPU service...)."""

    name: str

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        """The kind's typed request from plain params (a stored job, a body from another process);
        raises GeneratorError on fields it does not know."""

    def check(self, request: Any) -> None:
        """Cheap validation of a typed request before a job is accepted; raise GeneratorError naming the
        rule."""

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        """Blocking: do the work, write one file next to `output_stem` (adding a suffix), return it.

        Raise GeneratorError (message shown to the asker) or GenerationCancelled when should_stop()."""


def describe(job: Job, label: str) -> str:
    """One line per job for #队列: `#12 视频 妈妈 生成中 10/50`."""
    progress = f" {job.step}/{job.steps}" if job.state is JobState.RUNNING and job.steps else ""
    return f"#{job.id} {label} {job.request.asker_name} {job.state.text}{progress}"


__all__ = [
    "FINISHED_STATES", "PENDING_STATES", "CheckedJob", "CheckedRequest", "Job", "JobKind", "JobRequest",
    "JobState", "Limits", "QueueLimitReached", "Receipt", "ShouldStop", "StepCallback", "describe",
]
