"""One video through a hosted API, paid once: create the task, follow it, fetch the MP4.

Every step is written to a `TaskLedger` (the bot's job store) before the next one: the create call's
request id before it is sent, the provider's task id as soon as it comes back, the video URL once the
task succeeded. A render that finds a task in its ledger follows that task instead of creating one, so
a crash or restart never pays twice. A create whose answer was lost (the process died, or the
connection broke after sending) is never repeated: it fails as UNCONFIRMED with its request id for the
admin to look up. A FAIL task is created once more; every other failure ends the render.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from generators.base import GenerationCancelled, ShouldStop
from generators.video_api.client import VideoApiClient, sleep_unless_stopped
from generators.video_api.errors import ApiFailure, Failure
from generators.video_api.media import check_mp4, download, shrink_mp4
from generators.video_api.photo import fit_photo

if TYPE_CHECKING:
    from generators.settings import VideoApiSettings, VideoEncode

MAX_CREATES = 2  # a task that FAILs is tried once more
MIN_DOWNLOAD_WINDOW_S = 120.0  # a result that arrives at the deadline still gets this long to download


@dataclass(frozen=True)
class VideoApiRequest:
    prompt: str
    photo: bytes | Path | None = None  # from a photo: sent as base64 within the provider's rules
    user_id: str | None = None  # the provider's abuse handling (zhipu user_id)


@dataclass(frozen=True)
class TaskRecord:
    """What the ledger holds for one job's provider task."""

    provider: str
    model: str
    request_id: str
    attempt: int  # creates made for this job (1, or 2 after a FAIL)
    task_id: str | None = None  # None: the create was sent, its answer not yet written
    created_at: float | None = None  # wall clock of the create's answer
    video_url: str | None = None  # set once the task succeeded (it is paid for from then on)


class TaskLedger(Protocol):
    """Durable notes of one job's provider task (the bot's SQLite job store)."""

    async def load(self) -> TaskRecord | None: ...

    async def creating(self, record: TaskRecord) -> None:
        """Before a create call is sent."""

    async def created(self, task_id: str, created_at: float) -> None:
        """The create's answer: the provider's task id (the first thing done with the answer)."""

    async def not_created(self) -> None:
        """The create was refused (nothing was made, nothing is owed)."""

    async def succeeded(self, video_url: str) -> None: ...


class VideoApiRender:
    """Renders with one client; `settings`/`encode` are the current config sections."""

    def __init__(self, client: VideoApiClient, settings: VideoApiSettings, encode: VideoEncode) -> None:
        self.client = client
        self.settings = settings
        self.encode = encode

    async def render(self, request: VideoApiRequest, ledger: TaskLedger, output: Path,
                     should_stop: ShouldStop) -> Path:
        """The MP4 at `output` (`.mp4`), resuming whatever task the ledger holds. Raises ApiFailure,
        GenerationCancelled when `should_stop()` turned true (the task is left to resume)."""
        record = await ledger.load()
        if record is not None and record.task_id is None:
            raise ApiFailure(Failure.UNCONFIRMED, f"a create call (request_id {record.request_id}) was sent "
                             "but its answer never written: not sent again")
        if record is None:
            record = await self._create(request, ledger, 1, should_stop)
        else:
            logger.info("video api: resuming task {} ({})", record.task_id, record.provider)
        while True:
            try:
                url = record.video_url or await self._follow(record, ledger, should_stop)
                return await self._fetch(url, output, record, should_stop)
            except ApiFailure as exc:
                if exc.failure is not Failure.FAILED or record.attempt >= MAX_CREATES:
                    raise
                logger.warning("video api: task {} failed ({}); creating it once more", record.task_id, exc)
                record = await self._create(request, ledger, record.attempt + 1, should_stop)

    async def _create(self, request: VideoApiRequest, ledger: TaskLedger, attempt: int,
                      should_stop: ShouldStop) -> TaskRecord:
        provider, settings = self.client.provider, self.settings
        photo = None
        if request.photo is not None:
            mime, b64 = await asyncio.to_thread(fit_photo, request.photo, provider.photo_rules)
            photo = provider.photo_value(mime, b64)
        record = TaskRecord(provider.name, settings.model_for(photo is not None), uuid.uuid4().hex, attempt)
        body = provider.create_body(settings, model=record.model, prompt=request.prompt, photo=photo,
                                    request_id=record.request_id, user_id=request.user_id)

        async def once() -> TaskRecord:
            if should_stop():
                raise GenerationCancelled("stopped before the create call")
            await ledger.creating(record)
            try:
                answer = await self.client.call("POST", provider.create_path(), body)
            except ApiFailure as exc:
                if exc.failure is Failure.BAD_ANSWER:  # a 2xx we cannot read: a task may have been made
                    raise ApiFailure(Failure.UNCONFIRMED, f"{exc} (request_id {record.request_id})") from exc
                if exc.failure is not Failure.UNCONFIRMED:
                    await ledger.not_created()
                raise
            try:
                task_id = provider.task_id(answer)
            except ApiFailure as exc:  # answered, but with no id we cannot follow: maybe made
                raise ApiFailure(Failure.UNCONFIRMED, f"{exc} (request_id {record.request_id})") from exc
            created_at = time.time()
            await ledger.created(task_id, created_at)
            logger.info("video api: created {} task {} with {}", provider.name, task_id, record.model)
            return replace(record, task_id=task_id, created_at=created_at)

        deadline = time.time() + settings.timeout_s
        try:
            return await asyncio.wait_for(self.client.retrying(once, deadline, should_stop, "create"),
                                          settings.timeout_s)
        except TimeoutError:
            raise ApiFailure(Failure.UNCONFIRMED, f"the create call (request_id {record.request_id}) got no "
                             f"answer in {settings.timeout_s:g} s") from None

    async def _follow(self, record: TaskRecord, ledger: TaskLedger, should_stop: ShouldStop) -> str:
        """Poll until the task succeeds (its URL, written to the ledger) or fails (ApiFailure)."""
        deadline = (record.created_at or time.time()) + self.settings.timeout_s
        try:
            return await asyncio.wait_for(self._poll(record, ledger, deadline, should_stop),
                                          max(0.0, deadline - time.time()))
        except TimeoutError:
            raise ApiFailure(Failure.TIMEOUT, f"task {record.task_id} not done in "
                             f"{self.settings.timeout_s:g} s") from None

    async def _poll(self, record: TaskRecord, ledger: TaskLedger, deadline: float,
                    should_stop: ShouldStop) -> str:
        provider, path = self.client.provider, self.client.provider.poll_path(record.task_id or "")
        while True:
            answer = await self.client.retrying(lambda: self._read(path), deadline, should_stop, "poll")
            status = provider.status(answer)
            if status.state == "succeeded" and status.video_url:
                await ledger.succeeded(status.video_url)
                return status.video_url
            if status.state == "failed":
                raise ApiFailure(status.failure or Failure.FAILED, f"task {record.task_id}: {status.detail}")
            wait = min(self.settings.poll_s, max(0.0, deadline - time.time()))
            if await sleep_unless_stopped(wait, should_stop):
                raise GenerationCancelled(f"stopped while following task {record.task_id}")
            if time.time() >= deadline:
                raise TimeoutError

    async def _read(self, path: str) -> dict:
        """One poll; an answer that is not JSON (a proxy's error page) is read again like a busy one."""
        try:
            return await self.client.call("GET", path)
        except ApiFailure as exc:
            if exc.failure is Failure.BAD_ANSWER:
                raise ApiFailure(Failure.BUSY, str(exc), status=exc.status) from exc
            raise

    async def _fetch(self, url: str, output: Path, record: TaskRecord, should_stop: ShouldStop) -> Path:
        output.parent.mkdir(parents=True, exist_ok=True)
        raw = output.with_name(f"{output.stem}.provider.mp4")
        deadline = max((record.created_at or 0) + self.settings.timeout_s,
                       time.time() + MIN_DOWNLOAD_WINDOW_S)
        max_download = int(self.settings.max_download_mb * 1e6)
        await self.client.retrying(lambda: download(self.client.http, url, raw, max_download), deadline,
                                   should_stop, "download")
        try:
            frames, fps = await asyncio.to_thread(check_mp4, raw)
            max_bytes = int(self.encode.max_mp4_mb * 1e6)
            if raw.stat().st_size > max_bytes:
                logger.info("video api: the result is {:.1f} MB, re-encoding under {:.1f} MB",
                            raw.stat().st_size / 1e6, max_bytes / 1e6)
                await asyncio.to_thread(shrink_mp4, raw, output, frames, fps, max_bytes,
                                        self.encode.bitrate_kbps, self.encode.x264_preset)
            else:
                os.replace(raw, output)
        finally:
            raw.unlink(missing_ok=True)
        return output
