"""`CeleryBackend`: video and image jobs rendered by `xiaoai worker` processes through Celery + Redis.

The bot's SQLite store stays the source of truth: a claimed job is sent as task `job.name` and
followed until its result comes back; whatever Redis forgets is sent again from here.

* resume: after a bot restart a job already rendered, rendering, or still queued in Redis is
  followed, not sent twice; anything else is submitted.
* worker lost: the bot has seen no heartbeat from the job's worker for `worker_lost_s` (SIGKILL, power;
  bot/jobs/liveness.py) -> submitted again under a new token (the old copy the broker may restore later
  is dropped by the workers); twice -> the asker is told.
* Redis lost: the job's token is gone (restarted empty) -> submitted again; progress still written by
  the copy that was rendering (an older token) is followed for its result but never counted as a loss.
* cancellation: the cancel key is set; the worker's step callback sees it and stops the render.
* given up (lost twice, Redis lost too often, a cancel the worker did not confirm): a render that still
  finishes is picked up by `LateResults` (bot/jobs/late_results.py), never dropped unseen.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from bot.background import cancel_and_wait
from bot.config.jobs import JobsConfig
from bot.jobs.broker import (
    CANCEL_KEY,
    RESULT_SUFFIXES,
    TASK,
    TOKEN_KEY,
    WORKER_KINDS,
    BrokerUrlError,
    broker_url,
    celery_app,
    check_broker_url,
    redact,
    redis_client,
)
from bot.jobs.late_results import LateResults
from bot.jobs.liveness import WorkerLiveness, read_heartbeats
from bot.jobs.outbox import GENERIC_REASON
from bot.jobs.types import Job, JobKind, ShouldStop, StepCallback
from generators.base import GenerationCancelled, GeneratorError

POLL_S = 0.25
MAX_WORKER_LOSSES = 2  # a job whose worker died this often is reported, not sent again
MAX_SUBMISSIONS = 8  # Redis lost this often during one job: give up on it
CANCEL_WAIT_S = 3.0  # how long a stopped job waits for its worker to confirm
MISCONFIGURED = "负责生成的机器连不上，请管理员查看日志"
WORKER_LOST = "负责生成的机器两次中途停掉了，这个任务不会再自动重做，请稍后再发一次"
TOO_MANY_SUBMISSIONS = "任务队列服务（Redis）反复中断，这个任务没能完成，请稍后再发一次"


@dataclass
class _Followed:
    """What `execute` keeps while it follows one job's task: its current token, how often it was sent
    and its worker lost, the last step reported, and when a cancel was sent."""

    job: Job
    output_stem: Path
    token: str
    submissions: int = 1
    losses: int = 0
    last_step: int = -1
    cancel_sent: float | None = None


class CeleryBackend:
    """The kinds `xiaoai worker` processes serve, on as many GPUs as have a worker."""

    name = "celery"

    def __init__(self, config: Callable[[], JobsConfig], *,
                 tell_admins: Callable[[str], Awaitable[Any]] | None = None,
                 env: Mapping[str, str] | None = None, poll_s: float = POLL_S) -> None:
        self._config = config
        self._tell_admins = tell_admins
        self._env = env
        self.poll_s = poll_s
        self.slots = config().max_in_flight
        self._workers: list[dict[str, Any]] = []
        self._liveness = WorkerLiveness(lambda: self._config().worker_lost_s)
        self._redis_ok = True
        self._refused: str | None = None
        self._client: Any = None
        self._app: Any = None
        self._monitor: asyncio.Task | None = None
        self.late = LateResults(self._config, self._tell)

    # -- WorkerBackend --------------------------------------------------------------------------
    def handles(self, kind: str) -> bool:
        return self._config().backend == "celery" and kind in WORKER_KINDS

    def live_workers(self) -> int:
        return len(self._workers)

    def workers(self) -> list[dict[str, Any]]:
        """The live workers' heartbeats (name, host, gpu, queues, job) for #状态."""
        return list(self._workers)

    async def start(self) -> None:
        url = broker_url(self._config(), self._env)
        try:
            check_broker_url(url)
        except BrokerUrlError as exc:
            self._refused = str(exc)
            logger.error("jobs: celery backend refused: {}", exc)
            await self._tell(f"视频/图片任务发不出去：{exc}")
            return
        self._client = await asyncio.to_thread(redis_client, url)
        self._app = await asyncio.to_thread(celery_app, url, self._config())
        logger.info("jobs: celery backend on {}", redact(url))
        self._monitor = asyncio.create_task(self._watch_workers(), name="jobs-celery-workers")
        self.late.start(self._client, self._app, self._write)

    async def stop(self) -> None:
        try:
            await cancel_and_wait(self._monitor)
            await self.late.stop()
        finally:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._client.close)

    async def check(self, kind: JobKind, request: Any) -> None:
        await asyncio.to_thread(kind.check, request)  # the bot has the config; the tokenizer files

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        if self._refused is not None or self._app is None:
            raise GeneratorError(MISCONFIGURED)
        token = await self._retrying(self._resume_or_submit, job.name, job, should_stop)
        task = _Followed(job, output_stem, token)
        while True:
            if should_stop() and task.cancel_sent is None:
                await self._retrying(self._send_cancel, job.name, None, should_stop=lambda: False)
                task.cancel_sent = time.monotonic()
            try:
                status, result, has_token, lost = await asyncio.to_thread(self._poll, job.name, task.token)
            except Exception as exc:  # noqa: BLE001 - Redis restarting: keep following the job
                if task.cancel_sent is not None:
                    break
                logger.warning("jobs: cannot reach Redis for {} ({}); retrying", job.name, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if status == "SUCCESS":
                return await self._collect(job.name, result, output_stem)
            if status == "FAILURE":
                await asyncio.to_thread(self._forget, job.name, False)
                raise GeneratorError(GENERIC_REASON, problem="celery:task-failure",
                                     admin_detail=f"GPU 工作进程上的任务 {job.name} 失败: {result!r}")
            if task.cancel_sent is not None:  # waiting for the worker to confirm: never sent again
                if status != "PROGRESS":
                    break  # not rendering (queued copies find no token and are dropped)
                if time.monotonic() - task.cancel_sent > CANCEL_WAIT_S:
                    await self._retrying(self._give_up, job.name, job, lambda: False, output_stem)
                    break  # not answering: its render may still finish
            elif reason := await self._send_again_why(task, status, result, has_token, lost, on_progress):
                await self._send_again(task, reason, should_stop)
                continue
            await asyncio.sleep(self.poll_s)
        await asyncio.to_thread(self._forget, job.name, True)
        raise GenerationCancelled(f"{job.name} stopped")

    async def _send_again_why(self, task: _Followed, status: str, result: Any, has_token: bool, lost: bool,
                              on_progress: StepCallback) -> str | None:
        """Why the followed task must be sent again (None: keep following); reports its progress, and
        gives up on a job whose worker was lost `MAX_WORKER_LOSSES` times."""
        if status == "PENDING":
            return None if has_token else "Redis lost it"
        if status != "PROGRESS" or not isinstance(result, dict):
            return None
        if result.get("steps") and result.get("step") != task.last_step:
            task.last_step = result["step"]
            on_progress(task.last_step, result["steps"])
        if result.get("token", task.token) != task.token:  # a copy sent before Redis forgot its token:
            return None if has_token else "Redis lost it"  # its result counts, its silence does not
        if not lost:
            return None
        job = task.job
        task.losses += 1
        logger.warning("jobs: worker {} stopped while rendering {} ({}x)", result.get("worker"), job.name,
                       task.losses)
        await self._tell(f"GPU 工作进程 {result.get('worker')} 在做任务 #{job.id} 时失联了"
                         + ("，已交给别的工作进程重做。" if task.losses < MAX_WORKER_LOSSES else "。"))
        if task.losses >= MAX_WORKER_LOSSES:
            await self._retrying(self._give_up, job.name, job, lambda: False, task.output_stem)
            raise GeneratorError(WORKER_LOST)
        return "its worker was lost"

    async def _send_again(self, task: _Followed, reason: str, should_stop: ShouldStop) -> None:
        """Submit the job again under a new token, unless Redis lost it too often already."""
        job = task.job
        task.submissions += 1
        if task.submissions > MAX_SUBMISSIONS:
            await self._retrying(self._give_up, job.name, job, lambda: False, task.output_stem)
            raise GeneratorError(TOO_MANY_SUBMISSIONS)
        logger.warning("jobs: sending {} again ({})", job.name, reason)
        task.token = await self._retrying(self._submit, job.name, job, should_stop)
        task.last_step = -1

    # -- blocking helpers (threads) -------------------------------------------------------------
    def _poll(self, task_id: str, token: str | None = None) -> tuple[str, Any, bool, bool]:
        """(status, result, whether Redis has the job's token, whether the copy `token` names was
        rendering on a worker the bot has not heard from for `worker_lost_s`)."""
        meta = self._app.backend.get_task_meta(task_id)
        has_token = bool(self._client.exists(TOKEN_KEY + task_id))
        status, result = meta.get("status", "PENDING"), meta.get("result")
        lost = False
        if (token is not None and status == "PROGRESS" and isinstance(result, dict)
                and result.get("token", token) == token):
            lost = self.is_lost(str(result.get("worker") or ""))
        return status, result, has_token, lost

    def _resume_or_submit(self, task_id: str, job: Job) -> str:
        """Follow a job Redis still knows (rendered, rendering, queued); otherwise submit it."""
        token = self._client.get(TOKEN_KEY + task_id)
        status, *_ = self._poll(task_id)
        if token is not None and (status in ("SUCCESS", "PROGRESS") or self._queued(task_id, job)):
            logger.info("jobs: following {} ({})", task_id, status.lower())
            return token.decode()
        if status == "SUCCESS":
            return ""
        return self._submit(task_id, job)

    def _queued(self, task_id: str, job: Job) -> bool:
        """Whether a message for the task waits in its queue or is held by a worker."""
        needle = task_id.encode()
        waiting = self._client.lrange(job.request.kind, 0, -1)
        held = self._client.hvals("unacked")
        return any(needle in message for message in [*waiting, *held])

    def _submit(self, task_id: str, job: Job) -> str:
        """Send the job under a new token (only kind, parameters and seed: no names, no chat ids)."""
        token = secrets.token_hex(8)
        ttl = int(self._config().visibility_timeout_s * 2)
        self.late.unwatch(task_id)  # followed again: its result goes the usual way
        self._app.backend.forget(task_id)
        self._client.delete(CANCEL_KEY + task_id)
        self._client.set(TOKEN_KEY + task_id, token, ex=ttl)
        request = job.request
        self._app.send_task(TASK, kwargs={"kind": request.kind, "params": dict(request.params),
                                          "seed": request.seed, "token": token},
                            task_id=task_id, queue=request.kind)
        return token

    def _send_cancel(self, task_id: str, _job: Any) -> None:
        self._client.set(CANCEL_KEY + task_id, "1", ex=int(self._config().visibility_timeout_s))
        self._client.delete(TOKEN_KEY + task_id)

    def _give_up(self, task_id: str, job: Job, output_stem: Path) -> None:
        """Stop following a job whose render may still finish somewhere: its result is watched for."""
        self.late.watch(task_id, job.id, output_stem)
        self._forget(task_id, keep_cancel=True)

    def _forget(self, task_id: str, keep_cancel: bool) -> None:
        """Drop what Redis holds for a finished job (the cancel key stays until a render saw it)."""
        with contextlib.suppress(Exception):
            self._client.delete(TOKEN_KEY + task_id)
            if not keep_cancel:
                self._client.delete(CANCEL_KEY + task_id)
            self._app.backend.forget(task_id)

    def _write(self, task_id: str, result: Mapping[str, Any], output_stem: Path) -> Path:
        suffix = str(result.get("suffix", ""))
        if suffix not in RESULT_SUFFIXES:
            raise GeneratorError(GENERIC_REASON, problem="celery:file-type",
                                 admin_detail=f"GPU 工作进程交回了意外的文件类型 {suffix!r}（{task_id}）")
        data = str(result.get("data", ""))
        if len(data) > self._config().max_result_mb * 1e6 * 4 / 3 + 4:
            raise GeneratorError(f"做好的文件超过了 {self._config().max_result_mb:g} MB 的上限")
        path = output_stem.with_suffix(suffix)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(base64.b64decode(data, validate=True))
        return partial.replace(path)

    async def _collect(self, task_id: str, result: Any, output_stem: Path) -> Path:
        try:
            if not isinstance(result, dict):
                raise GeneratorError(GENERIC_REASON)
            status = result.get("status")
            if status == "cancelled":
                raise GenerationCancelled(f"{task_id} cancelled on {result.get('worker')}")
            if status == "failed":
                raise GeneratorError(str(result.get("error") or GENERIC_REASON),
                                     admin_detail=result.get("admin_detail"), problem=result.get("problem"))
            if status != "done":
                raise GeneratorError(GENERIC_REASON, problem="celery:bad-result",
                                     admin_detail=f"GPU 工作进程的结果看不懂（{task_id}）: "
                                                  f"{result.get('error') or status}")
            path = await asyncio.to_thread(self._write, task_id, result, output_stem)
            logger.info("jobs: {} came back from {} ({} bytes)", task_id, result.get("worker"),
                        path.stat().st_size)
            return path
        finally:
            await asyncio.to_thread(self._forget, task_id, False)

    async def _retrying(self, call: Callable[..., str | None], task_id: str, job: Job | None,
                        should_stop: ShouldStop, *more: Any) -> Any:
        """`call` in a thread until Redis answers (it may be restarting); GenerationCancelled if stopped."""
        while True:
            try:
                return await asyncio.to_thread(call, task_id, job, *more)
            except Exception as exc:  # noqa: BLE001 - Redis down: the job waits, the bot keeps serving
                if should_stop():
                    raise GenerationCancelled(f"{task_id} stopped while Redis was unreachable") from exc
                logger.warning("jobs: cannot reach Redis to send {} ({}); retrying", task_id,
                               type(exc).__name__)
                await asyncio.sleep(1.0)

    # -- live workers ---------------------------------------------------------------------------
    def is_lost(self, worker: str) -> bool:
        """Whether the bot has heard no heartbeat from `worker` for `worker_lost_s` (its key is read now;
        blocking: call it in a thread). See bot/jobs/liveness.py."""
        if not worker:
            return False
        read_at = time.monotonic()
        beat = read_heartbeats(self._client, [worker]).get(worker)
        return self._liveness.is_lost(worker, None if beat is None else beat[1], read_at)

    def _refresh_workers(self) -> list[dict[str, Any]]:
        read_at = time.monotonic()
        heartbeats = read_heartbeats(self._client)
        self._liveness.saw(heartbeats, read_at)
        workers = [info for info, _age in heartbeats.values()]
        try:  # INFO may be refused by an ACL (+@all -@dangerous) or lack the field: then no restart is seen
            uptime = float(self._client.info("server")["uptime_in_seconds"])
        except Exception:  # noqa: BLE001 - the heartbeats above are what counts
            return workers
        self._liveness.redis_up_for(uptime)
        return workers

    async def _watch_workers(self) -> None:
        """Refresh the live workers every heartbeat; tell the admins when none is left."""
        told_none = False
        started = time.monotonic()
        while True:
            try:
                workers = await asyncio.to_thread(self._refresh_workers)
                if not self._redis_ok:
                    self._liveness.redis_gap()
                self._workers, self._redis_ok = workers, True
            except Exception as exc:  # noqa: BLE001 - Redis down: no worker is reachable either
                if self._redis_ok:
                    logger.warning("jobs: Redis unreachable ({})", type(exc).__name__)
                self._redis_ok, self._workers = False, []
                self._liveness.redis_gap()  # no worker can beat meanwhile: none is lost
            grace = time.monotonic() - started > self._config().worker_lost_s
            if not self._workers and grace and not told_none:
                told_none = True
                why = "没有 GPU 工作进程在线" if self._redis_ok else "连不上任务队列服务（Redis）"
                logger.warning("jobs: no live worker ({})", why)
                await self._tell(f"{why}：新的视频/图片任务会排队，等工作进程（xiaoai worker）恢复后才开始。")
            elif self._workers and told_none:
                told_none = False
                logger.info("jobs: {} worker(s) live again", len(self._workers))
            await asyncio.sleep(self._config().heartbeat_s)

    async def _tell(self, text: str) -> None:
        if self._tell_admins is not None:
            with contextlib.suppress(Exception):
                await self._tell_admins(text)
