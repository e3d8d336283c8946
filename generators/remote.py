"""The `remote` video backend: the same Generator contract, answered by `xiaoai serve-video` over HTTP.

Protocol (see `bot/video_service.py`): `POST /v1/videos/check` validates without queueing,
`POST /v1/videos` queues and returns a job id, `GET /v1/videos/{id}` reports status and progress,
`GET /v1/videos/{id}/content` returns the MP4, `DELETE /v1/videos/{id}` cancels. Polling (not one long
request) lets the bot show progress and really stop a render; a poll that gets no answer is retried
for up to `POLL_OUTAGE_S`, and a render given up on is cancelled. Blocking httpx calls: worker threads only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from loguru import logger

from generators.base import (
    GenerationCancelled,
    Generator,
    GeneratorError,
    MediaOutput,
    ShouldStop,
    StepCallback,
)

if TYPE_CHECKING:
    from generators.cogvideox import VideoRequest
    from generators.settings import VideoSettings

UNREACHABLE = "视频服务连不上（{url}），请管理员检查 serve-video 是否在运行。"
REFUSED = "视频服务拒绝了访问令牌，请管理员检查 XIAOAI_VIDEO_TOKEN。"
POLL_OUTAGE_S = 60.0  # while rendering, how long the service may stay unreachable (a Wi-Fi blip)


class RemoteVideoGenerator(Generator["VideoRequest", MediaOutput]):
    """Renders on a `serve-video` host; `generate` returns the downloaded MP4 as a MediaOutput."""

    def __init__(self, config: VideoSettings, token: str | None, *, download_dir: Path | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not config.remote.url:
            raise GeneratorError("video.remote.url is not set")
        self.config = config
        self.base_url = config.remote.url.rstrip("/")
        self.download_dir = download_dir
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                    timeout=httpx.Timeout(30.0, connect=5.0))

    # -- plumbing --------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            logger.warning("remote video: {} {} failed: {}", method, path, exc)
            raise GeneratorError(UNREACHABLE.format(url=self.base_url)) from exc
        if response.status_code in (401, 403):
            raise GeneratorError(REFUSED)
        if response.status_code in (400, 404, 409, 422):
            raise GeneratorError(_detail(response))
        if response.status_code >= 300:
            raise GeneratorError(f"视频服务出错了（HTTP {response.status_code}）：{_detail(response)}")
        return response

    @staticmethod
    def _body(request: VideoRequest) -> dict[str, Any]:
        return request.to_dict()

    # -- Generator -------------------------------------------------------------------------------
    def check_inputs(self, request: VideoRequest) -> None:
        """The service runs the real model's checks (size, frames, steps, prompt tokens)."""
        self._call("POST", "/v1/videos/check", json=self._body(request))

    def load(self) -> None:
        self._call("GET", "/v1/health")

    @property
    def loaded(self) -> bool:
        return True  # the service keeps its model resident

    def generate(self, request: VideoRequest, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> MediaOutput:
        job_id = self._call("POST", "/v1/videos", json=self._body(request)).json()["id"]
        deadline = time.monotonic() + self.config.remote.timeout_s
        last_step = -1
        unreachable_since: float | None = None
        while True:
            try:
                status = self._call("GET", f"/v1/videos/{job_id}").json()
                unreachable_since = None
            except GeneratorError as exc:
                now = time.monotonic()
                if isinstance(exc.__cause__, httpx.HTTPError):  # no answer at all: maybe a blip
                    unreachable_since = now if unreachable_since is None else unreachable_since
                    if now - unreachable_since < POLL_OUTAGE_S and now < deadline:
                        if self._wait(should_stop):
                            self._cancel(job_id)
                            raise GenerationCancelled(f"remote job {job_id} stopped") from exc
                        continue
                self._cancel(job_id)  # best effort: nobody would collect this render
                raise
            state = status["status"]
            if on_step is not None and status.get("steps") and status.get("step", 0) != last_step:
                last_step = status["step"]
                on_step(last_step, status["steps"])
            if state == "done":
                return self._download(job_id)
            if state == "failed":
                raise GeneratorError(status.get("error") or "视频服务没能生成这个视频")
            if state == "cancelled":
                raise GenerationCancelled(f"remote job {job_id} was cancelled")
            if time.monotonic() > deadline:
                self._cancel(job_id)
                raise GeneratorError(f"视频服务超过 {self.config.remote.timeout_s:.0f} 秒还没做完，已放弃。")
            if self._wait(should_stop):
                self._cancel(job_id)
                raise GenerationCancelled(f"remote job {job_id} stopped")

    # -- helpers ---------------------------------------------------------------------------------
    def _wait(self, should_stop: ShouldStop | None) -> bool:
        """Sleep one poll interval, checking should_stop often; True when asked to stop."""
        end = time.monotonic() + self.config.remote.poll_s
        while time.monotonic() < end:
            if should_stop is not None and should_stop():
                return True
            time.sleep(min(0.05, self.config.remote.poll_s))
        return should_stop is not None and should_stop()

    def _cancel(self, job_id: Any) -> None:
        try:
            self._call("DELETE", f"/v1/videos/{job_id}")
        except GeneratorError as exc:
            logger.warning("remote video: could not cancel job {}: {}", job_id, exc)

    def _download(self, job_id: Any) -> MediaOutput:
        if self.download_dir is not None:
            self.download_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".mp4", dir=self.download_dir)
        path = Path(name)
        try:
            url = f"/v1/videos/{job_id}/content"
            with open(handle, "wb") as out, self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    response.read()
                    raise GeneratorError(
                        f"视频服务没有给出文件（HTTP {response.status_code}）：{_detail(response)}")
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.HTTPError as exc:
            path.unlink(missing_ok=True)
            raise GeneratorError(UNREACHABLE.format(url=self.base_url)) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return MediaOutput(path=path)

    def close(self) -> None:
        self._client.close()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
    return str(detail or response.text[:200] or response.reason_phrase)
