"""`RemoteBackend`: video jobs rendered by an `xiaoai serve-video` host over HTTP.

Protocol (see `bot/hosts/serve_video.py`): `POST /v1/videos/check` validates without queueing,
`POST /v1/videos` queues and returns a job id, `GET /v1/videos/{id}` reports status and progress,
`GET /v1/videos/{id}/content` returns the MP4, `DELETE /v1/videos/{id}` cancels. Polling (not one long
request) lets the bot show progress and really stop a render; a poll that gets no answer is retried
for up to `POLL_OUTAGE_S`, and a render given up on is cancelled. It handles `video` jobs while
`video.backend` is `remote`; the blocking httpx calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from loguru import logger

from bot.jobs.types import Job, JobKind, ShouldStop, StepCallback
from bot.ops.notices import ADMINS_TOLD
from generators.base import GenerationCancelled, GeneratorError, not_ready

if TYPE_CHECKING:
    from bot.config import VideoConfig

UNREACHABLE = f"视频服务暂时连不上，{ADMINS_TOLD}，稍后再试吧。"
UNREACHABLE_FIX = ("连不上视频服务 {url}（{cause}）：请检查 xiaoai serve-video 是否在运行、"
                   "video.remote.url 是否正确。")
REFUSED = f"视频功能暂时用不了，{ADMINS_TOLD}。"
REFUSED_FIX = "视频服务 {url} 拒绝了访问令牌（HTTP {status}）：请让两边的 XIAOAI_VIDEO_TOKEN 一致后重启。"
FAILED = "视频服务出错了，稍后再试吧。"
POLL_OUTAGE_S = 60.0  # while rendering, how long the service may stay unreachable (a Wi-Fi blip)


class RemoteBackend:
    """Hands `video` jobs to the service and downloads the MP4 to the job's output path."""

    name = "remote"
    slots = 1  # the service renders one video at a time on its GPU

    def __init__(self, config: Callable[[], VideoConfig], token: Callable[[], str | None], *,
                 kind: str = "video", transport: httpx.BaseTransport | None = None) -> None:
        self._config = config
        self._token = token
        self._kind = kind
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_for: tuple[str, str | None] | None = None

    def handles(self, kind: str) -> bool:
        return kind == self._kind and self._config().backend == "remote"

    def live_workers(self) -> int:
        return 1

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def check(self, kind: JobKind, request: Any) -> None:
        """The service runs the real model's checks (size, frames, steps, prompt tokens)."""
        await asyncio.to_thread(self.call, "POST", "/v1/videos/check", json=request.to_dict())

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        return await asyncio.to_thread(self.render, job, output_stem, on_progress, should_stop)

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        url = self._config().remote.url
        if not url:
            raise not_ready("视频", "video.backend 是 remote，但没有设置 video.remote.url。", "remote:no-url")
        return url.rstrip("/")

    def _http(self) -> httpx.Client:
        """One client per (address, token), rebuilt when either changes."""
        wanted = (self.base_url, self._token())
        if self._client is None or self._client_for != wanted:
            if self._client is not None:
                self._client.close()
            headers = {"Authorization": f"Bearer {wanted[1]}"} if wanted[1] else {}
            self._client = httpx.Client(base_url=wanted[0], headers=headers, transport=self._transport,
                                        timeout=httpx.Timeout(30.0, connect=5.0))
            self._client_for = wanted
        return self._client

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            logger.warning("remote video: {} {} failed: {}", method, path, exc)
            raise self._unreachable(exc) from exc
        if response.status_code in (401, 403):
            raise GeneratorError(REFUSED, problem="remote:refused", admin_detail=REFUSED_FIX.format(
                url=self.base_url, status=response.status_code))
        if response.status_code in (400, 404, 409, 422) and (reason := _asker_reason(response)):
            raise GeneratorError(reason)  # the service's own checks, worded for the asker there
        if response.status_code >= 300:
            raise GeneratorError(FAILED, problem=f"remote:http-{response.status_code}",
                                 admin_detail=f"视频服务 {method} {path} 回答 HTTP {response.status_code}："
                                              f"{_detail(response)}")
        return response

    def _unreachable(self, exc: Exception) -> GeneratorError:
        return GeneratorError(UNREACHABLE, problem="remote:unreachable",
                              admin_detail=UNREACHABLE_FIX.format(url=self.base_url, cause=exc))

    # -- one render ------------------------------------------------------------------------------
    def render(self, job: Job, output_stem: Path, on_progress: StepCallback | None = None,
               should_stop: ShouldStop | None = None) -> Path:
        """Blocking: queue the job on the service, follow it, download the MP4."""
        config = self._config()
        body = {**job.request.params, "seed": job.request.seed}
        remote_id = self.call("POST", "/v1/videos", json=body).json()["id"]
        deadline = time.monotonic() + config.remote.timeout_s
        last_step = -1
        unreachable_since: float | None = None
        while True:
            try:
                status = self.call("GET", f"/v1/videos/{remote_id}").json()
                unreachable_since = None
            except GeneratorError as exc:
                now = time.monotonic()
                if isinstance(exc.__cause__, httpx.HTTPError):  # no answer at all: maybe a blip
                    unreachable_since = now if unreachable_since is None else unreachable_since
                    if now - unreachable_since < POLL_OUTAGE_S and now < deadline:
                        if self._wait(config.remote.poll_s, should_stop):
                            self._cancel(remote_id)
                            raise GenerationCancelled(f"remote job {remote_id} stopped") from exc
                        continue
                self._cancel(remote_id)  # best effort: nobody would collect this render
                raise
            state = status["status"]
            if on_progress is not None and status.get("steps") and status.get("step", 0) != last_step:
                last_step = status["step"]
                on_progress(last_step, status["steps"])
            if state == "done":
                return self._download(remote_id, output_stem.with_suffix(".mp4"))
            if state == "failed":
                raise GeneratorError(status.get("error") or "视频服务没能生成这个视频")
            if state == "cancelled":
                raise GenerationCancelled(f"remote job {remote_id} was cancelled")
            if time.monotonic() > deadline:
                self._cancel(remote_id)
                raise GeneratorError(f"视频服务超过 {config.remote.timeout_s:.0f} 秒还没做完，已放弃。")
            if self._wait(config.remote.poll_s, should_stop):
                self._cancel(remote_id)
                raise GenerationCancelled(f"remote job {remote_id} stopped")

    @staticmethod
    def _wait(poll_s: float, should_stop: ShouldStop | None) -> bool:
        """Sleep one poll interval, checking should_stop often; True when asked to stop."""
        end = time.monotonic() + poll_s
        while time.monotonic() < end:
            if should_stop is not None and should_stop():
                return True
            time.sleep(min(0.05, poll_s))
        return should_stop is not None and should_stop()

    def _cancel(self, remote_id: Any) -> None:
        try:
            self.call("DELETE", f"/v1/videos/{remote_id}")
        except GeneratorError as exc:
            logger.warning("remote video: could not cancel job {}: {}", remote_id, exc)

    def _download(self, remote_id: Any, path: Path) -> Path:
        """Stream the MP4 to a partial file beside `path`, renamed only once complete."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        try:
            url = f"/v1/videos/{remote_id}/content"
            with open(partial, "wb") as out, self._http().stream("GET", url) as response:
                if response.status_code != 200:
                    response.read()
                    raise GeneratorError(
                        FAILED, problem="remote:download", admin_detail=(
                            f"视频服务没有给出文件（HTTP {response.status_code}）：{_detail(response)}"))
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise self._unreachable(exc) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return partial.replace(path)


def _asker_reason(response: httpx.Response) -> str | None:
    """The service's refusal when it is a sentence for the asker (Chinese), not a validation dump."""
    detail = _detail(response)
    return detail if re.search(r"[\u4e00-\u9fff]", detail) and len(detail) < 200 else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail or response.text[:200] or response.reason_phrase)
