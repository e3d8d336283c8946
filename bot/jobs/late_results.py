"""Results that come back after the bot stopped following their job (given up on, or a cancel the
worker did not confirm).

A worker counted as lost may still be rendering (its heartbeat could not get through), and one that did
not confirm a cancel may still finish. Such a job is watched in Redis (`xiaoai:late`, so a restarted bot
keeps watching) until its worker reports an end or the result could no longer arrive. One rule for a
finished render (applied by the queue: `JobQueue.late_result`): it is delivered once if the asker has not
been told the job ended without it, else it is kept for the admins (file and job row) and logged. A job
the queue runs again (after a restart) follows its own result. Nothing is dropped unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from bot.background import cancel_and_wait
from bot.config.jobs import JobsConfig
from generators.base import GeneratorError

LATE_KEY = "xiaoai:late"  # hash: task id -> {"job": id, "stem": output stem, "until": epoch seconds}
WATCH_EVERY_S = 1.0
LateOutcome = Literal["delivering", "kept", "pending"]
OnLateResult = Callable[[int, Path], Awaitable[LateOutcome]]
"""The queue's verdict on a late file: sent to the asker, kept for the admins, or the job runs again."""
Write = Callable[[str, Mapping[str, Any], Path], Path]
ADMIN_KEPT = ("任务 #{id} 在提问人已经收到「没做成」的消息之后才由 GPU 工作进程 {worker} 做好，"
              "没有再发到群里；文件留在 {path}")
ADMIN_UNUSABLE = "任务 #{id} 在判定失败之后才从 GPU 工作进程 {worker} 回来，但结果用不了：{error}"


class LateResults:
    """Watches given-up jobs (`watch`/`unwatch` block on Redis: call them in a thread)."""

    def __init__(self, config: Callable[[], JobsConfig],
                 tell_admins: Callable[[str], Awaitable[None]]) -> None:
        self._config = config
        self._tell = tell_admins
        self.on_result: OnLateResult | None = None
        self._client: Any = None
        self._app: Any = None
        self._write: Write | None = None
        self._task: asyncio.Task | None = None

    def start(self, client: Any, app: Any, write: Write) -> None:
        self._client, self._app, self._write = client, app, write
        self._task = asyncio.create_task(self._run(), name="jobs-celery-late-results")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def watch(self, task_id: str, job_id: int, output_stem: Path) -> None:
        """Follow `task_id` for as long as its result could still come back (the result's own expiry)."""
        until = time.time() + self._config().visibility_timeout_s * 2
        entry = {"job": job_id, "stem": str(output_stem), "until": until}
        self._client.hset(LATE_KEY, task_id, json.dumps(entry))
        logger.info("jobs: watching {} for a result that may still come back", task_id)

    def unwatch(self, task_id: str) -> None:
        self._client.hdel(LATE_KEY, task_id)

    def _ended(self) -> list[tuple[str, dict[str, Any], str, Any]]:
        """Watched tasks whose worker reported an end: (task id, entry, Celery status, result)."""
        ended = []
        for raw_id, raw in self._client.hgetall(LATE_KEY).items():
            task_id = raw_id.decode()
            try:
                entry = json.loads(raw)
                job_id, until = int(entry["job"]), float(entry["until"])
            except (ValueError, KeyError, TypeError):
                self.unwatch(task_id)
                continue
            meta = self._app.backend.get_task_meta(task_id)
            status = meta.get("status", "PENDING")
            if status in ("SUCCESS", "FAILURE"):
                ended.append((task_id, {**entry, "job": job_id}, status, meta.get("result")))
            elif time.time() > until:
                logger.info("jobs: stopped watching {}: no result came back", task_id)
                self.unwatch(task_id)
        return ended

    def _done_with(self, task_id: str, forget_result: bool = True) -> None:
        self.unwatch(task_id)
        if forget_result:
            self._app.backend.forget(task_id)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                for task_id, entry, status, result in await asyncio.to_thread(self._ended):
                    await self._handle(task_id, entry, status, result)
                failing = False
            except Exception as exc:  # noqa: BLE001 - Redis restarting: look again next round
                if not failing:
                    logger.warning("jobs: cannot check for late results ({})", type(exc).__name__)
                failing = True
            await asyncio.sleep(WATCH_EVERY_S)

    async def _handle(self, task_id: str, entry: Mapping[str, Any], status: str, result: Any) -> None:
        job_id = entry["job"]
        worker = result.get("worker", "?") if isinstance(result, dict) else "?"
        if status != "SUCCESS" or not isinstance(result, dict) or result.get("status") != "done":
            ended = result.get("status") if isinstance(result, dict) else status.lower()
            logger.info("jobs: #{} ended on worker {} without a file ({})", job_id, worker, ended)
            await asyncio.to_thread(self._done_with, task_id)
            return
        assert self._write is not None
        try:
            path = await asyncio.to_thread(self._write, task_id, result, Path(entry["stem"]))
        except (GeneratorError, ValueError, OSError) as exc:
            logger.error("jobs: late result of #{} from {} is unusable: {}", job_id, worker, exc)
            await asyncio.to_thread(self._done_with, task_id)
            await self._tell(ADMIN_UNUSABLE.format(id=job_id, worker=worker, error=exc))
            return
        outcome: LateOutcome = "kept" if self.on_result is None else await self.on_result(job_id, path)
        await asyncio.to_thread(self._done_with, task_id, outcome != "pending")
        if outcome == "delivering":
            logger.warning("jobs: #{} came back from {} after it was given up on; sending it to its asker",
                           job_id, worker)
        elif outcome == "kept":
            logger.warning("jobs: #{} came back from {} after its asker was told it failed; kept at {}",
                           job_id, worker, path)
            with contextlib.suppress(Exception):
                await self._tell(ADMIN_KEPT.format(id=job_id, worker=worker, path=path))
