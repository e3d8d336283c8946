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
    """CogVideoX video generation: in this process (`local`) or on a `serve-video` host (`remote`)."""

    backend: Literal["local", "remote"] = "local"
    load_at_start: bool = False  # load the weights when the bot starts instead of at the first video
    queue: _queue(**_VIDEO_QUEUE) = QueueSettings(**_VIDEO_QUEUE)  # type: ignore[valid-type]
    show_prompt: bool = False  # everyone sees the seed and English text (else admins and "#详情")

    @model_validator(mode="after")
    def _remote_needs_url(self) -> VideoConfig:
        if self.backend == "remote" and not self.remote.url:
            raise ValueError("video.backend 是 remote 时，还要写 video.remote.url（serve-video 的地址）")
        return self


class ImageConfig(ImageSettings):
    """Image generation: FLUX in this process (`local`), or an OpenAI-compatible images API (`api`)."""

    backend: Literal["local", "api"] = "local"
    load_at_start: bool = False  # load the weights when the bot starts instead of at the first picture
    queue: _queue(**_IMAGE_QUEUE) = QueueSettings(**_IMAGE_QUEUE)  # type: ignore[valid-type]
    show_prompt: bool = False  # everyone sees the seed and English text (else admins and "#详情")
