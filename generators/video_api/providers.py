"""The two documented protocols (../shared/notes/video-apis.md): 智谱 BigModel's CogVideoX
(`videos/generations` + `async-result`) and Alibaba DashScope's 通义万相 (`video-synthesis` + `tasks`).

A provider only builds requests and reads answers; `VideoApiClient` does the HTTP. Error bodies:
zhipu `{"error": {"code": "1301", "message": ...}}`, DashScope `{"code": "DataInspectionFailed",
"message": ...}`; both are sorted into `Failure`s here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from generators.video_api.errors import ApiFailure, Failure
from generators.video_api.photo import PhotoRules

if TYPE_CHECKING:
    from generators.settings import VideoApiSettings

KEY_ENVS = {"zhipu": "ZHIPUAI_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class TaskStatus:
    """One poll's answer: still running, done with a video URL, or failed (refused or not)."""

    state: Literal["running", "succeeded", "failed"]
    video_url: str | None = None
    failure: Failure | None = None
    detail: str = ""


def fit_prompt(prompt: str, limit: int) -> str:
    """The prompt within `limit` characters, cut after a whole sentence (a hard cut only when the first
    sentence alone is longer)."""
    prompt = " ".join(prompt.split())
    if len(prompt) <= limit:
        return prompt
    kept = ""
    for sentence in _SENTENCE_END.split(prompt):
        candidate = f"{kept} {sentence}".strip()
        if len(candidate) > limit:
            break
        kept = candidate
    return kept or prompt[:limit]


def _text(body: Any) -> str:
    return str(body)[:300] if body is not None else ""


class Zhipu:
    """智谱 BigModel: CogVideoX (text and photo to video), Bearer key, states PROCESSING/SUCCESS/FAIL."""

    name = "zhipu"
    label = "智谱 CogVideoX"
    default_base_url = "https://open.bigmodel.cn/api/paas/v4"
    max_prompt_chars = 512
    photo_rules = PhotoRules(formats=("JPEG", "PNG"), max_bytes=5_000_000, min_side=1, max_side=4096)
    _REFUSED = {"1301"}
    _ACCOUNT = {"1000", "1001", "1002", "1003", "1004", "1113"}
    _BUSY = {"1302", "1303", "1305", "1312"}

    def headers(self, key: str, *, create: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def create_path(self) -> str:
        return "/videos/generations"

    def poll_path(self, task_id: str) -> str:
        return f"/async-result/{task_id}"

    def create_body(self, settings: VideoApiSettings, *, model: str, prompt: str, photo: str | None,
                    request_id: str, user_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "quality": settings.quality, "duration": settings.duration,
                                "request_id": request_id}
        if prompt:
            body["prompt"] = fit_prompt(prompt, self.max_prompt_chars)
        if photo is not None:
            body["image_url"] = photo  # base64, no data: prefix
        if settings.size:
            body["size"] = settings.size.replace("*", "x")
        if settings.fps:
            body["fps"] = settings.fps
        if settings.watermark is not None:
            body["watermark_enabled"] = settings.watermark
        if user_id and 6 <= len(user_id) <= 128:
            body["user_id"] = user_id
        return body

    def photo_value(self, mime: str, b64: str) -> str:
        return b64

    def task_id(self, body: dict[str, Any]) -> str:
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ApiFailure(Failure.BAD_ANSWER, f"create answered without a task id: {_text(body)}")
        return task_id

    def status(self, body: dict[str, Any]) -> TaskStatus:
        state = body.get("task_status")
        if state == "PROCESSING":
            return TaskStatus("running")
        if state == "SUCCESS":
            results = body.get("video_result")
            url = results[0].get("url") if isinstance(results, list) and results and isinstance(
                results[0], dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ApiFailure(Failure.BAD_ANSWER, f"SUCCESS without a video URL: {_text(body)}")
            return TaskStatus("succeeded", video_url=url)
        if state == "FAIL":
            return TaskStatus("failed", failure=Failure.FAILED, detail=_text(body))
        raise ApiFailure(Failure.BAD_ANSWER, f"unknown task_status {state!r}: {_text(body)}")

    def error(self, status: int, body: Any) -> ApiFailure:
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        message = str(error.get("message") or "") if isinstance(error, dict) else _text(body)
        detail = f"HTTP {status} {code} {message}".strip()
        if code in self._REFUSED:
            failure = Failure.REFUSED
        elif code in self._ACCOUNT or status == 401 or (status == 429 and "余额" in message):
            failure = Failure.ACCOUNT
        elif code in self._BUSY or status == 429 or status >= 500:
            failure = Failure.BUSY
        else:
            failure = Failure.REJECTED
        return ApiFailure(failure, detail, status=status, code=code or None)


class DashScope:
    """Alibaba DashScope 通义万相 (Wan): async header on create, states PENDING/RUNNING/SUCCEEDED/FAILED."""

    name = "dashscope"
    label = "通义万相"
    default_base_url = "https://dashscope.aliyuncs.com/api/v1"
    max_prompt_chars = 800
    photo_rules = PhotoRules(formats=("JPEG", "PNG"), max_bytes=10_000_000, min_side=360, max_side=2000)
    _ACCOUNT = ("InvalidApiKey", "Arrearage", "AccessDenied", "Unauthorized")

    def headers(self, key: str, *, create: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if create:
            headers["X-DashScope-Async"] = "enable"
        return headers

    def create_path(self) -> str:
        return "/services/aigc/video-generation/video-synthesis"

    def poll_path(self, task_id: str) -> str:
        return f"/tasks/{task_id}"

    def create_body(self, settings: VideoApiSettings, *, model: str, prompt: str, photo: str | None,
                    request_id: str, user_id: str | None) -> dict[str, Any]:
        task_input: dict[str, Any] = {"prompt": fit_prompt(prompt, self.max_prompt_chars)}
        if photo is not None:
            task_input["img_url"] = photo
        parameters: dict[str, Any] = {"duration": settings.duration, "prompt_extend": True}
        if settings.size:
            parameters["size"] = settings.size.replace("x", "*")
        if settings.watermark is not None:
            parameters["watermark"] = settings.watermark
        return {"model": model, "input": task_input, "parameters": parameters}

    def photo_value(self, mime: str, b64: str) -> str:
        return f"data:{mime};base64,{b64}"

    def task_id(self, body: dict[str, Any]) -> str:
        output = body.get("output")
        task_id = output.get("task_id") if isinstance(output, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ApiFailure(Failure.BAD_ANSWER, f"create answered without output.task_id: {_text(body)}")
        return task_id

    def status(self, body: dict[str, Any]) -> TaskStatus:
        output = body.get("output")
        if not isinstance(output, dict):
            raise ApiFailure(Failure.BAD_ANSWER, f"poll answered without output: {_text(body)}")
        state = output.get("task_status")
        if state in ("PENDING", "RUNNING"):
            return TaskStatus("running")
        if state == "SUCCEEDED":
            url = output.get("video_url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ApiFailure(Failure.BAD_ANSWER, f"SUCCEEDED without output.video_url: {_text(body)}")
            return TaskStatus("succeeded", video_url=url)
        if state in ("FAILED", "CANCELED"):
            code = str(output.get("code") or "")
            refused = code.startswith("DataInspectionFailed") or "inappropriate" in str(output.get("message"))
            return TaskStatus("failed", failure=Failure.REFUSED if refused else Failure.FAILED,
                              detail=f"{state} {code} {output.get('message') or ''}".strip())
        if state == "UNKNOWN":  # the task id is kept 24 h, then forgotten
            raise ApiFailure(Failure.GONE, f"the task is no longer known: {_text(body)}")
        raise ApiFailure(Failure.BAD_ANSWER, f"unknown task_status {state!r}: {_text(body)}")

    def error(self, status: int, body: Any) -> ApiFailure:
        code = str(body.get("code") or "") if isinstance(body, dict) else ""
        message = str(body.get("message") or "") if isinstance(body, dict) else _text(body)
        detail = f"HTTP {status} {code} {message}".strip()
        if code.startswith("DataInspectionFailed"):
            failure = Failure.REFUSED
        elif code.startswith(self._ACCOUNT) or status == 401:
            failure = Failure.ACCOUNT
        elif code.startswith("Throttling") or status == 429 or status >= 500:
            failure = Failure.BUSY
        else:
            failure = Failure.REJECTED
        return ApiFailure(failure, detail, status=status, code=code or None)


Provider = Zhipu | DashScope
PROVIDERS: dict[str, type[Zhipu] | type[DashScope]] = {"zhipu": Zhipu, "dashscope": DashScope}


def provider_for(name: str) -> Provider:
    return PROVIDERS[name]()
