"""Where the work of a job runs: the `WorkerBackend` seam and the in-process `LocalBackend`.

The queue keeps everything else (store, admission, order, cancellation flags, delivery); a backend only
validates parameters, runs one claimed job to a file under `output_stem`, and says how many jobs it can
run at once. The queue asks its backends in order and uses the first whose `handles(kind)` is true, so
a backend for one kind (the remote video service) sits in front of the local one that runs the rest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from bot.jobs.types import Job, JobKind, ShouldStop, StepCallback


class WorkerBackend(Protocol):
    """One place jobs can run. Every method but `handles`/`live_workers` may wait on I/O."""

    name: str
    slots: int  # the most jobs it runs at once (read when the queue starts: its number of workers)

    def handles(self, kind: str) -> bool:
        """Whether jobs of `kind` run here now (may follow the current config)."""

    def live_workers(self) -> int:
        """Workers able to take a job now (for the ETA and the ack; 0 = none alive). Cheap, no I/O."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def check(self, kind: JobKind, request: Any) -> None:
        """Validate the kind's typed request before a job is accepted; GeneratorError names the broken
        rule."""

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        """Run `job` and return its result file (next to `output_stem`, a suffix added).

        `on_progress(step, steps)` and `should_stop()` may be called from any thread. Raises
        GeneratorError (shown to the asker) or GenerationCancelled once `should_stop()` was seen."""


class LocalBackend:
    """In this process: the kind's blocking `run` in a worker thread, `slots` at a time (1 = one GPU)."""

    name = "local"

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots

    def handles(self, kind: str) -> bool:
        return True  # every registered kind can run here

    def live_workers(self) -> int:
        return self.slots

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def check(self, kind: JobKind, request: Any) -> None:
        # in a thread: a first check may read model files (the tokenizer)
        await asyncio.to_thread(kind.check, request)

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        return await asyncio.to_thread(kind.run, job.request, output_stem, on_progress, should_stop)
