"""Test doubles for the job subsystem: a recording outbox channel, a scripted worker backend, and a
queue over a temporary folder composed the way `build_app` composes it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.jobs import Job, JobKind, JobQueue, JobStore, LocalBackend, Outbox, WorkerBackend
from bot.messages import ChatRef, Reply
from generators.base import GenerationCancelled, GeneratorError


class Recorder:
    """The channel side of an outbox: records deliveries; can pretend the channel is down."""

    def __init__(self) -> None:
        self.sent: list[tuple[ChatRef, Reply]] = []  # what the chat shows: a caption and its file as one
        self.calls: list[tuple[ChatRef, Reply]] = []  # each delivery the channel took, as sent
        self.down = False
        self.attempts = 0

    async def deliver(self, chat: ChatRef, reply: Reply) -> bool:
        self.attempts += 1
        if self.down:
            return False
        self.calls.append((chat, reply))
        if self.sent and reply.file is not None and not reply.text:  # the file after its caption
            last_chat, last = self.sent[-1]
            if last_chat == chat and last.file is None and last.text:
                self.sent[-1] = (chat, Reply(last.text, reply.file, last.mention_ids))
                return True
        self.sent.append((chat, reply))
        return True

    def texts(self) -> list[str]:
        return [reply.text for _, reply in self.sent]

    def has(self, messages: int, files: int = 0) -> bool:
        """`messages` in the chat, `files` of them with their file: a caption goes out before its file,
        so a wait on the count alone can look before the file arrived."""
        return len(self.sent) == messages and sum(r.file is not None for _, r in self.sent) >= files


def make_queue(data_dir: Path, recorder: Recorder | None = None, kinds: Sequence[JobKind] = (),
               backends: Sequence[WorkerBackend] = (), *, label: str = "测试",
               retry_delivery_s: float = 0.1, max_delivery_failures: int = 5, **kwargs: Any) -> JobQueue:
    """A queue over `data_dir/jobs.sqlite3`; with a recorder, an outbox that delivers to it."""
    outbox = None
    if recorder is not None:
        outbox = Outbox(recorder.deliver, retry_delivery_s=retry_delivery_s,
                        max_delivery_failures=max_delivery_failures)
    queue = JobQueue(JobStore(data_dir / "jobs.sqlite3"), backends or [LocalBackend()],
                     media_dir=data_dir / "media", outbox=outbox, **kwargs)
    for kind in kinds:
        queue.register(kind, label=label, retention_s=lambda: 3600)
    return queue


class FakeBackend:
    """A worker backend driven only through the `WorkerBackend` interface: it "renders" by writing the
    job's prompt to a file, after `steps` progress reports, and can be scripted to fail, to refuse
    parameters, to have no live worker, or to hold a job until `release` is set."""

    name = "fake"

    def __init__(self, kinds: set[str], *, slots: int = 1, steps: int = 3) -> None:
        self.kinds = kinds
        self.slots = slots
        self.steps = steps
        self.workers = slots
        self.executed: list[str] = []  # job names, in the order they were handed over
        self.checked: list[Mapping[str, Any]] = []
        self.fail_with: str | None = None  # GeneratorError text for the next job
        self.refuse: str | None = None  # GeneratorError text for check()
        self.hold = threading.Event()
        self.hold.set()
        self.started = self.stopped = False

    def handles(self, kind: str) -> bool:
        return kind in self.kinds

    def live_workers(self) -> int:
        return self.workers

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def check(self, kind: JobKind, request: Any) -> None:
        self.checked.append(dict(request))  # the test kinds' requests are their plain params
        if self.refuse:
            raise GeneratorError(self.refuse)

    async def execute(self, kind: JobKind, job: Job, output_stem: Path,
                      on_progress: Callable[[int, int], None], should_stop: Callable[[], bool]) -> Path:
        self.executed.append(job.name)
        return await asyncio.to_thread(self._render, job, output_stem, on_progress, should_stop)

    def _render(self, job: Job, output_stem: Path, on_progress: Callable[[int, int], None],
                should_stop: Callable[[], bool]) -> Path:
        for step in range(1, self.steps + 1):
            while not self.hold.is_set():
                if should_stop():
                    raise GenerationCancelled("stopped on the worker")
                time.sleep(0.01)
            if should_stop():
                raise GenerationCancelled("stopped on the worker")
            on_progress(step, self.steps)
        if self.fail_with is not None:
            raise GeneratorError(self.fail_with)
        path = output_stem.with_suffix(".txt")
        path.write_text(str(job.request.params.get("prompt", "")), encoding="utf-8")
        return path
