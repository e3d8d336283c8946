"""`ApiVideoBackend`: `video` jobs made by a hosted API (智谱 CogVideoX or DashScope 通义万相) while
`video.backend` is `api`, or `auto` picked the API (see `video_choice`).

The job store is the task's ledger (`StoreLedger`): the provider's task id is written before anything
else is done with the create call's answer, so a restart follows that task and never pays for a second;
a delivered job is finished in the store and never run, so never fetched, again. Each failure is worded
twice: a plain sentence for the asker (`FAILURE_REPLIES`), the exact fix for the admins, told once per
problem (the outbox's `tell_admins_about`). Prices and the daily budget feed the admission check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from bot.config import VideoConfig
from bot.jobs.store import JobStore
from bot.jobs.types import Job, JobKind, ShouldStop, StepCallback
from bot.jobs.video_choice import VideoChoice
from generators.base import GeneratorError, not_ready
from generators.video_api import (
    KEY_ENVS,
    ApiFailure,
    Failure,
    TaskRecord,
    VideoApiClient,
    VideoApiRender,
    VideoApiRequest,
    provider_for,
    redact,
)

FAILURE_REPLIES = {
    Failure.REFUSED: "视频服务说这段描述（或照片）没通过内容审核，换个说法再试试吧",
    Failure.ACCOUNT: "视频服务的账户出了问题（密钥或余额），我已经告诉管理员了",
    Failure.BUSY: "视频服务现在太忙了，稍后再试吧",
    Failure.FAILED: "视频服务试了两次都没做成，换个说法或者稍后再试吧",
    Failure.GONE: "视频做好了，但取回来时链接已经失效了，我已经告诉管理员了，请再发一次",
    Failure.BAD_ANSWER: "视频服务返回的结果有问题，我已经告诉管理员了，稍后再试吧",
    Failure.TOO_BIG: "视频服务给的文件太大了，没能取回来，我已经告诉管理员了",
    Failure.TIMEOUT: "视频服务太久没做完，已经放弃了，稍后再试吧",
    Failure.REJECTED: "视频服务不接受这个请求，我已经告诉管理员了",
    Failure.BAD_PHOTO: "这张照片没法用（打不开或者太特别），换一张试试吧",
    Failure.UNCONFIRMED: ("视频服务中途断了联系，没能确认视频是否已开始做；"
                          "为免重复扣费没有再发，请稍后再发一次"),
}
ADMIN_FIXES = {
    Failure.ACCOUNT: "{label} 拒绝了密钥或账户欠费（{detail}）：请检查环境变量 {env}、账户余额后重启小爱。",
    Failure.GONE: "{label} 的视频链接已失效（{detail}）；通义万相的结果只保留 24 小时。这次的钱已经花了。",
    Failure.BAD_ANSWER: "{label} 的回答看不懂（{detail}）。",
    Failure.TOO_BIG: "{label} 给的视频超过 video.api.max_download_mb（{detail}），需要时调高这个值。",
    Failure.REJECTED: "{label} 拒绝了请求（{detail}）：请检查 video.api.model / size / duration。",
    Failure.UNCONFIRMED: ("{label} 的创建请求没有收到回答（{detail}）："
                          "请在控制台按 request_id 查一下是否扣费；"
                         "为免重复付费没有再发。"),
}


class StoreLedger:
    """The `TaskLedger` of one job: rows of the job store's `api_tasks` table, written through a thread."""

    def __init__(self, store: JobStore, job_id: int) -> None:
        self._store = store
        self._job_id = job_id

    async def load(self) -> TaskRecord | None:
        row = await asyncio.to_thread(self._store.api_task, self._job_id)
        if row is None:
            return None
        return TaskRecord(provider=row["provider"], model=row["model"], request_id=row["request_id"],
                          attempt=row["attempt"], task_id=row["task_id"], created_at=row["created_at"],
                          video_url=row["video_url"])

    async def creating(self, record: TaskRecord) -> None:
        await asyncio.to_thread(self._store.api_task_creating, self._job_id, record.provider, record.model,
                                record.request_id, record.attempt)

    async def created(self, task_id: str, created_at: float) -> None:
        await asyncio.to_thread(self._store.api_task_created, self._job_id, task_id, created_at)

    async def not_created(self) -> None:
        await asyncio.to_thread(self._store.api_task_not_created, self._job_id)

    async def succeeded(self, video_url: str) -> None:
        await asyncio.to_thread(self._store.api_task_succeeded, self._job_id, video_url, time.time())


class ApiVideoBackend:
    """Runs `video` jobs through the chosen provider, `video.api.max_in_flight` at a time."""

    name = "api"

    def __init__(self, config: Callable[[], VideoConfig], store: JobStore,
                 keys: Callable[[], Mapping[str, str | None]], choice: Callable[[], VideoChoice], *,
                 kind: str = "video") -> None:
        self._config = config
        self._store = store
        self._keys = keys
        self._choice = choice
        self._kind = kind
        # the queue runs at most this many here at once; read at start, and only when videos go to the API
        # then (extra queue workers are for the provider, never for the one GPU)
        self.slots = config().api.max_in_flight if choice().backend == "api" else 1

    # -- WorkerBackend --------------------------------------------------------------------------
    def handles(self, kind: str) -> bool:
        return kind == self._kind and self._choice().backend == "api"

    def live_workers(self) -> int:
        return self.slots

    async def start(self) -> None:
        choice = await asyncio.to_thread(self._choice)  # the first choice may probe the GPU
        logger.info("video: backend {} ({})", choice.text, choice.reason)

    async def stop(self) -> None:
        return None

    async def check(self, kind: JobKind, request: Any) -> None:
        """No model here to check against: the prompt, the key and the price."""
        provider = self._provider()
        if not self._keys().get(provider):
            label = provider_for(provider).label
            raise not_ready("视频", f"video.backend 用的是 {label}，但没有设置环境变量 "
                            f"{KEY_ENVS[provider]}：设置后重启小爱。", f"video-api:no-key:{provider}")
        with_photo = bool(request.image)
        if not str(request.prompt or "").strip() and not with_photo:
            raise GeneratorError("要先说说想要什么样的视频哦。")
        if self._settings_for(provider).price_yuan(with_photo) is None:
            model = self._settings_for(provider).model_for(with_photo)
            raise not_ready("视频", f"模型 {model} 没有价格：请在 video.api.prices_yuan（每个视频）或 "
                            "prices_yuan_per_second（每秒）里写上它的价格。", f"video-api:no-price:{model}")

    def price(self, params: Mapping[str, Any]) -> tuple[float, float | None]:
        """(this job's list price in 元, the daily budget) for the admission check."""
        settings = self._settings_for(self._provider())
        return settings.price_yuan(_photo_of(params) is not None) or 0.0, settings.daily_budget_yuan

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        provider_name = self._provider()
        key = self._keys().get(provider_name) or ""
        config = self._config()
        settings = self._settings_for(provider_name)
        provider = provider_for(provider_name)
        params = job.request.params
        photo = _photo_of(params)
        asker = hashlib.sha256(job.request.asker_id.encode()).hexdigest()[:24]  # no WeChat id leaves here
        request = VideoApiRequest(prompt=str(params.get("prompt") or ""), photo=photo,
                                  user_id=f"xiaoai-{asker}")
        client = VideoApiClient(provider, key, settings.base_url, timeout_s=min(60.0, settings.timeout_s))
        try:
            render = VideoApiRender(client, settings, config.encode)
            path = await render.render(request, StoreLedger(self._store, job.id),
                                       output_stem.with_suffix(".mp4"), should_stop)
        except ApiFailure as exc:
            raise self._worded(exc, provider.label, provider_name, key, job) from exc
        finally:
            await client.close()
        await self._log_spend(job)
        return path

    async def _log_spend(self, job: Job) -> None:
        """One log line per paid video: its price and the day's total so far."""
        days = await asyncio.to_thread(self._store.spend_by_day, self._kind, job.created_at - 86400)
        task = await asyncio.to_thread(self._store.api_task, job.id)
        if days and task is not None:
            day, yuan, count = days[-1]
            logger.info("video api: #{} paid ({} {}); {} spent {:.2f} yuan on {} videos", job.id,
                        task["provider"], task["model"], day, yuan, count)

    def choice(self) -> VideoChoice:
        """Which backend videos go to now, and why (#状态, the console)."""
        return self._choice()

    # -- internals ------------------------------------------------------------------------------
    def _provider(self) -> str:
        return self._choice().provider or self._config().api.provider

    def _settings_for(self, provider: str) -> Any:
        settings = self._config().api
        if provider != settings.provider:  # auto took the other provider's key: its default models
            settings = settings.model_copy(update={"provider": provider, "model": None, "photo_model": None})
        return settings

    @staticmethod
    def _worded(exc: ApiFailure, label: str, provider: str, key: str, job: Job) -> GeneratorError:
        detail = redact(str(exc), key)
        logger.warning("video api: job #{} {} failed: {} ({})", job.id, provider, exc.failure.value, detail)
        reply = FAILURE_REPLIES.get(exc.failure, FAILURE_REPLIES[Failure.BAD_ANSWER])
        fix = ADMIN_FIXES.get(exc.failure)
        if fix is None:
            return GeneratorError(reply)
        admin = fix.format(label=label, detail=detail, env=KEY_ENVS[provider])
        return GeneratorError(reply, admin_detail=f"任务 #{job.id}：{admin}",
                              problem=f"video-api:{exc.failure.value}:{provider}")



def _photo_of(params: Mapping[str, Any]) -> bytes | None:
    """A job's photo: `image`, base64 JPEG text as the photo intent stores it."""
    if not params.get("image"):
        return None
    try:
        return base64.b64decode(str(params["image"]), validate=True)
    except ValueError:
        return b""  # not base64: the provider rules turn it into a kind bad-photo reply
