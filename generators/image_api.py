"""Pictures from an OpenAI-compatible images endpoint (`images.generate`), for families without a GPU.

Same contract as `FluxGenerator`: `check_inputs` is cheap, `generate` blocks (call it from a worker
thread) and returns an `ImageResult`. Both answer shapes are handled: `b64_json` inline, or a `url` the
picture is fetched from. A refused prompt (the provider's content filter) becomes a clear message.
"""

from __future__ import annotations

import base64
import io
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from generators.base import (
    GenerationCancelled,
    Generator,
    GeneratorError,
    ShouldStop,
    StepCallback,
    not_ready,
)
from generators.flux import ImageRequest, ImageResult, validate_request

if TYPE_CHECKING:
    from generators.settings import ImageSettings

MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024
REFUSED_REPLY = "图片服务拒绝了这个描述（内容审核没通过），换个说法再试试吧～"
_REFUSAL_MARKERS = ("content_policy", "content policy", "safety", "moderation", "sensitive", "inappropriate",
                    "违规", "敏感", "审核")


def _error_text(exc: Any) -> str:
    """The provider's own words: code + message from the JSON body, else the exception text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return f"{error.get('code') or ''} {error.get('type') or ''} {error.get('message') or ''}".strip()
    return str(exc)


def is_refusal(exc: Any) -> bool:
    """Whether a 400 answer is the provider's content filter refusing the prompt."""
    text = f"{getattr(exc, 'code', '') or ''} {_error_text(exc)}".lower()
    return any(marker in text for marker in _REFUSAL_MARKERS)


class ImageApiGenerator(Generator[ImageRequest, ImageResult]):
    """One `images.generate` call per picture through the `openai` client (sync: runs in a thread)."""

    def __init__(self, config: ImageSettings, api_key: str | None, base_url: str | None = None) -> None:
        self.config = config
        self._api_key = api_key
        self._base_url = config.api.base_url or base_url
        self._client: Any = None

    # -- Generator -------------------------------------------------------------------------------
    def check_inputs(self, request: ImageRequest) -> None:
        validate_request(request, self.config.sampling.max_steps)
        if not self._api_key:
            raise not_ready("画图", "图片服务还没有配置密钥：请设置环境变量 XIAOAI_IMAGE_API_KEY"
                            "（或 OPENAI_API_KEY）后重启小爱。", "image-api:no-key")

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def load(self) -> None:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(api_key=self._api_key, base_url=self._base_url,
                                  timeout=self.config.api.timeout_s, max_retries=self.config.api.retries)

    def generate(self, request: ImageRequest, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> ImageResult:
        """Ask the endpoint for one picture (blocking). The call itself cannot be interrupted: a stop
        request is honoured before it starts and before the answer is kept."""
        import openai

        self.check_inputs(request)
        self.load()
        if should_stop is not None and should_stop():
            raise GenerationCancelled("stopped before the request was sent")
        kwargs: dict[str, Any] = {"model": self.config.api.model, "prompt": request.prompt.strip(), "n": 1}
        if self.config.api.size:
            kwargs["size"] = self.config.api.size
        if self.config.api.response_format:
            kwargs["response_format"] = self.config.api.response_format
        started = time.perf_counter()
        try:
            response = self._client.images.generate(**kwargs)
        except openai.BadRequestError as exc:
            if is_refusal(exc):
                logger.info("image api refused the prompt: {}", _error_text(exc))
                raise GeneratorError(REFUSED_REPLY) from exc
            raise GeneratorError("图片服务不接受这个请求，换个说法试试吧。",
                                 admin_detail=f"图片服务拒绝了请求（HTTP 400）：{_error_text(exc)[:300]}",
                                 problem="image-api:bad-request") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise not_ready("画图", f"图片服务拒绝了密钥（HTTP {exc.status_code}）：请检查环境变量 "
                            f"XIAOAI_IMAGE_API_KEY 和 image.api.model。{_error_text(exc)[:200]}",
                            "image-api:key-rejected") from exc
        except openai.RateLimitError as exc:
            raise GeneratorError("图片服务现在太忙（或额度用完了），稍后再试吧。") from exc
        except openai.APITimeoutError as exc:
            raise GeneratorError("图片服务太久没有回应，稍后再试吧。") from exc
        except openai.APIConnectionError as exc:
            raise GeneratorError("连不上图片服务，稍后再试吧。") from exc
        except openai.APIStatusError as exc:
            raise GeneratorError(f"图片服务出错了（HTTP {exc.status_code}），稍后再试吧。") from exc
        image = self._decode(response)
        if should_stop is not None and should_stop():
            raise GenerationCancelled("stopped while the endpoint was drawing")
        if on_step is not None:
            on_step(1, 1)
        seed = request.seed if request.seed is not None else 0
        return ImageResult(image=image, seed=seed, steps=1, seconds=time.perf_counter() - started)

    # -- answer ----------------------------------------------------------------------------------
    def _decode(self, response: Any) -> Any:
        from PIL import Image, UnidentifiedImageError

        data = list(getattr(response, "data", None) or [])
        if not data:
            raise GeneratorError("图片服务没有返回图片，可能是描述被过滤了，换个说法试试吧。")
        item = data[0]
        if getattr(item, "b64_json", None):
            try:
                raw = base64.b64decode(item.b64_json, validate=False)
            except ValueError as exc:
                raise GeneratorError("图片服务返回的数据看不懂（base64 损坏）。") from exc
        elif getattr(item, "url", None):
            raw = self._download(item.url)
        else:
            raise GeneratorError("图片服务的回答里既没有图片数据也没有链接。")
        try:
            image = Image.open(io.BytesIO(raw))
            image.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise GeneratorError("图片服务返回的不是一张能打开的图片。") from exc
        return image.convert("RGB")

    def _download(self, url: str) -> bytes:
        import httpx

        try:
            with httpx.stream("GET", url, timeout=self.config.api.timeout_s, follow_redirects=True) as answer:
                answer.raise_for_status()
                chunks, size = [], 0
                for chunk in answer.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise GeneratorError("图片服务给的图片太大了。")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise GeneratorError("从图片服务取图失败了，稍后再试吧。", admin_detail=f"下载图片失败: {exc!r}",
                                 problem="image-api:download") from exc
