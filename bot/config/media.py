"""The `video:` and `image:` sections: the generators' own settings (generators/settings.py) plus what
only the job path reads: the backend, the queue, when to load, and whether to show the prompt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from bot.config.sections import Section
from generators.settings import ImageSettings, VideoSettings


class QueueSettings(Section):
    """How a kind's jobs wait: per-person pending limit, the ETA estimate, how long files stay."""

    max_pending_per_user: int | None = Field(default=2, ge=1)  # queued + running per person; null = any
    seconds_per_job: float = Field(default=120, gt=0)  # unused: estimates come from measured durations
    media_max_age_hours: float = Field(default=72, gt=0)  # finished files are deleted after this


def _queue(**defaults: Any) -> Any:
    """A `queue` field whose keys left out of the file take this kind's defaults, not the class's."""

    def fill(value: Any) -> Any:
        return {**defaults, **value} if isinstance(value, Mapping) else value

    return Annotated[QueueSettings, BeforeValidator(fill)]


_VIDEO_QUEUE = {"max_pending_per_user": 2, "seconds_per_job": 120}
_IMAGE_QUEUE = {"max_pending_per_user": 3, "seconds_per_job": 20}


class VideoConfig(VideoSettings):
    """Video generation: CogVideoX in this process (`local`), on a `serve-video` host (`remote`), a hosted
    API (`api`: 智谱 or 通义万相), or `auto`:
    local with weights and a GPU, else the API when its key is set."""

    backend: Literal["auto", "local", "remote", "api"] = "auto"
    load_at_start: bool = False  # load the weights when the bot starts instead of at the first video
    queue: _queue(**_VIDEO_QUEUE) = QueueSettings(**_VIDEO_QUEUE)  # type: ignore[valid-type]
    show_prompt: bool = False  # everyone sees the seed and English text (else admins and "#详情")

    @model_validator(mode="after")
    def _remote_needs_url(self) -> VideoConfig:
        if self.backend == "remote" and not self.remote.url:
            raise ValueError("video.backend 是 remote 时，还要写 video.remote.url（serve-video 的地址）")
        if self.backend in ("api", "auto"):
            for photo in (False, True):
                if self.api.price_yuan(photo) is None:
                    raise ValueError(f"video.api 的模型 {self.api.model_for(photo)} 没有价格：请写在 "
                                     "video.api.prices_yuan（每个视频）或 prices_yuan_per_second（每秒）里")
        return self


class ImageConfig(ImageSettings):
    """Image generation: FLUX in this process (`local`), or an OpenAI-compatible images API (`api`)."""

    backend: Literal["local", "api"] = "local"
    load_at_start: bool = False  # load the weights when the bot starts instead of at the first picture
    queue: _queue(**_IMAGE_QUEUE) = QueueSettings(**_IMAGE_QUEUE)  # type: ignore[valid-type]
    show_prompt: bool = False  # everyone sees the seed and English text (else admins and "#详情")
