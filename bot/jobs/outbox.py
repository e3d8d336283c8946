"""Posting finished jobs back to their chat, in finish order, until the channel took each one.

A result stays "undelivered" in the store until `deliver` returned True, so results wait out a WeChat
outage and survive a restart; nothing overtakes an undelivered result (per-person order holds). What the
asker reads about a finished job (the caption, a failure, a cancellation) is worded here and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger

from bot.jobs.store import JobStore
from bot.jobs.types import Job, JobState
from bot.messages import ChatRef, Reply
from bot.ops.notices import Told
from generators.base import GeneratorError

T = TypeVar("T")
Deliver = Callable[[ChatRef, Reply], Awaitable[bool]]
"""Post a reply; False when the channel could not take it (retried later)."""
TellAdmins = Callable[..., Awaitable[Told]]
"""`AdminNotices.tell(text, key=...)`: a private note to the admins, once per problem."""

FAILURE_TEXT = "抱歉，{what}没有生成成功：{reason}"
GENERIC_REASON = "出了点意外，可以稍后再试一次"
RESTART_REASON = "服务中途重启了好几次，这个任务没能完成，请再发一次"
CANCELLED_TEXT = "你的{what}任务 #{id} 已取消。"
MISSING_FILE_REASON = "文件已经过期被清理了，请再发一次"
UNDELIVERABLE_REASON = "做好了但发不出来（文件可能太大），请换个短一点的要求再试"
ADMIN_FAILURE = "小爱的{what}任务失败了（群里只说了「{asker}」）：{detail}"
ADMIN_UNDELIVERABLE = "任务 #{id} 做好了，但发了 {tries} 次都没发出去：{path}（文件太大或微信拒收？）"


def reply_for(job: Job, label: str, *, gave_up: bool) -> Reply:
    """The message for a finished job (@asker in rooms). `gave_up`: its file failed to send too often."""
    request = job.request
    mention = (request.asker_id,) if request.chat.is_room else ()
    if job.state is JobState.DONE:
        if job.result is None or not job.result.is_file():
            return Reply(FAILURE_TEXT.format(what=label, reason=MISSING_FILE_REASON), None, mention)
        if gave_up:
            return Reply(FAILURE_TEXT.format(what=label, reason=UNDELIVERABLE_REASON), None, mention)
        return Reply(request.caption, job.result, mention)
    if job.state is JobState.CANCELLED:
        return Reply(CANCELLED_TEXT.format(what=label, id=job.id), None, mention)
    return Reply(FAILURE_TEXT.format(what=label, reason=job.error or GENERIC_REASON), None, mention)


async def finish_even_if_cancelled(step: Awaitable[T]) -> T:
    """Run `step` to its end even when the outbox is cancelled meanwhile (a stop): what the channel
    already took must be written down before the store closes, or the next start would send it again."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class Outbox:
    """Delivers what the store lists as finished and undelivered; `wake()` when a job finished."""

    def __init__(self, deliver: Deliver, *, is_connected: Callable[[], bool] = lambda: True,
                 retry_delivery_s: float = 2.0, max_delivery_failures: int = 5,
                 tell_admins: TellAdmins | None = None) -> None:
        self._deliver = deliver
        self._tell_admins = tell_admins
        self._is_connected = is_connected
        self.retry_delivery_s = retry_delivery_s
        self.max_delivery_failures = max_delivery_failures
        self._due = asyncio.Event()

    def wake(self) -> None:
        self._due.set()

    async def tell_admins_about(self, error: GeneratorError, what: str = "生成") -> Told:
        """The exact fix for a failure the asker is told about in plain words (once per problem)."""
        return await self._tell(ADMIN_FAILURE.format(what=what, asker=error, detail=error.admin_detail),
                                error.problem)

    async def _tell(self, text: str, key: str | None) -> Told:
        if self._tell_admins is None:
            return Told.NO_ADMINS
        try:
            return await self._tell_admins(text, key=key)
        except Exception:  # noqa: BLE001 - telling the admin must never stop delivery
            logger.exception("jobs: telling the admins failed")
            return Told.NOT_REACHED

    def _reply(self, store: JobStore, job: Job, label: str) -> tuple[Reply, bool, bool]:
        """The reply, whether its file was given up on, whether its caption already went out (SQLite and
        a file check: run in a thread)."""
        gave_up = store.deliver_failures(job.id) >= self.max_delivery_failures
        return reply_for(job, label, gave_up=gave_up), gave_up, store.caption_sent(job.id)

    async def _post(self, store: JobStore, job: Job, label: str) -> bool:
        """Deliver one finished job; True once the channel took all of it. A result goes out as its
        caption, then its file, and a caption the channel took is never posted again: a retry after
        the upload failed (the gateway dropped mid-upload) sends the file alone."""
        reply, gave_up, caption_sent = await asyncio.to_thread(self._reply, store, job, label)
        if gave_up and job.state is JobState.DONE and job.result:
            tries = await asyncio.to_thread(store.deliver_failures, job.id)
            logger.error("jobs: #{} gave up sending {} after {} tries", job.id, job.result, tries)
            await self._tell(ADMIN_UNDELIVERABLE.format(id=job.id, tries=tries, path=job.result),
                             f"undeliverable:{job.id}")
        if reply.file is None:
            return await self._deliver(job.request.chat, reply)
        if not caption_sent and reply.text:
            if not await self._deliver(job.request.chat, Reply(reply.text, None, reply.mention_ids)):
                return False
            await finish_even_if_cancelled(asyncio.to_thread(store.mark_caption_sent, job.id, time.time()))
        return await self._deliver(job.request.chat, Reply("", reply.file))

    async def run(self, store: JobStore, label: Callable[[str], str]) -> None:
        """Deliver until cancelled (the queue runs this as one of its tasks)."""
        self._due.set()
        while True:
            self._due.clear()
            due, next_at = await asyncio.to_thread(store.undelivered, time.time())
            for job in due:
                ok = await self._post(store, job, label(job.request.kind))
                now = time.time()
                if ok:
                    if not await finish_even_if_cancelled(
                            asyncio.to_thread(store.mark_delivered, job.id, now, job.state)):
                        self._due.set()  # a late result turned the job done while its failure went out:
                        break  # send the result too
                    continue
                counted = self._is_connected()  # failures while disconnected are not the file's fault
                await asyncio.to_thread(store.mark_delivery_failed, job.id, now + self.retry_delivery_s,
                                        counted)
                logger.warning("jobs: delivery of #{} failed; retrying in {}s", job.id, self.retry_delivery_s)
                next_at = now + self.retry_delivery_s
                break  # keep the finish order: nothing overtakes an undelivered result
            timeout = None if next_at is None else max(0.05, next_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), timeout)
