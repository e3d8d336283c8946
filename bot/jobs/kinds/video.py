"""The `video` job kind: stored parameters -> an MP4 file, rendered with `CogVideoXGenerator` and
encoded with `encode_mp4` wherever the kind is hosted (the bot's `LocalBackend`, the `serve-video`
host). With `video.backend: remote` the queue hands video jobs to `RemoteBackend` instead, and this kind
only answers the prompt rewriter's token questions. Blocking methods (`check`, `run`, `count_tokens`)
are called from worker threads, never the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from bot.config import VideoConfig
from bot.jobs.kinds.base import GeneratorKind
from bot.jobs.types import JobRequest, ShouldStop, StepCallback

TOKEN_ENV = "XIAOAI_VIDEO_TOKEN"
DEFAULT_MAX_PROMPT_TOKENS = 226  # CogVideoX's text length (max_text_seq_length)


def video_token(env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token shared by the bot and `xiaoai serve-video` (never in config.yaml)."""
    env = os.environ if env is None else env
    return env.get(TOKEN_ENV) or None


class PhotoModel(GeneratorKind):
    """The image-to-video generator of the `video` kind, built from `video.photo` (and the shared speed
    switches) the same lazy, resident way as the text-to-video one."""

    name = "video"

    def __init__(self, config: Callable[[], VideoConfig], ranks: Any = None) -> None:
        super().__init__(config)
        self.ranks = ranks

    def view(self, config: VideoConfig) -> Any:
        from generators.cogvideox import photo_view

        return photo_view(config)

    def built_from(self, config: VideoConfig) -> tuple[Any, ...]:
        return (config.photo.model, config.speed, config.parallel)

    def build(self, config: VideoConfig) -> Any:
        from generators.cogvideox import CogVideoXPhotoGenerator

        return CogVideoXPhotoGenerator(self.view(config), ranks=self.ranks)


class VideoKind(GeneratorKind):
    """Runs one video job with CogVideoXGenerator, or CogVideoXPhotoGenerator when the job carries a
    photo (`image`); one of the two models is resident at a time."""

    name = "video"
    default_max_prompt_tokens = DEFAULT_MAX_PROMPT_TOKENS

    def __init__(self, config: Callable[[], VideoConfig], ranks: Any = None, *,
                 backend: Callable[[], str] | None = None) -> None:
        super().__init__(config)
        self.ranks = ranks  # a multi-GPU worker's compute group (generators.parallel.RankContext)
        self._backend = backend  # what `video.backend: auto` resolved to (bot.jobs.video_choice)
        self.photo = PhotoModel(config, ranks)

    def generator_for(self, request: Any) -> Any:
        """The photo model for a request with a photo, else the text model."""
        return self.photo.generator if request.image else self.generator

    def make_room(self, request: Any) -> None:
        """Unload the model this request does not use: two 5B pipelines rarely fit one GPU together."""
        other = self.generator if request.image else self.photo.generator
        if other.loaded:
            logger.info("video: unloading {} to make room", type(other).__name__)
            other.unload()

    def check(self, request: Any) -> None:
        self.generator_for(request).check_inputs(request)

    @property
    def backend(self) -> str:
        configured = self._config().backend
        if self._backend is not None:
            return self._backend()
        return "local" if configured == "auto" else configured

    def built_from(self, config: VideoConfig) -> tuple[Any, ...]:
        # a remote host renders with its own: the kind only checks
        return (config.model, config.speed, config.parallel)

    def build(self, config: VideoConfig) -> Any:
        from generators.cogvideox import CogVideoXGenerator

        return CogVideoXGenerator(config, ranks=self.ranks)

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        from generators.cogvideox import VideoRequest

        return VideoRequest.from_dict({**params, "seed": seed})

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        video = self.request(request.params, request.seed)
        self.make_room(video)
        output = self.generator_for(video).generate(video, on_step, should_stop)
        path = output_stem.with_suffix(".mp4")
        from generators.mp4 import encode_mp4, scaled_bitrate

        encode = self._config().encode
        kbps = scaled_bitrate(encode.bitrate_kbps, *output.frames.shape[1:3])
        return encode_mp4(output.frames, path, output.fps, kbps, int(encode.max_mp4_mb * 1e6),
                          preset=encode.x264_preset)

    # -- for the prompt rewriter: a remote host's or an API's model is not here to ask -------------------
    def count_tokens(self, prompt: str) -> int | None:
        return super().count_tokens(prompt) if self.backend == "local" else None

    def max_prompt_tokens(self) -> int | None:
        return super().max_prompt_tokens() if self.backend == "local" else self.default_max_prompt_tokens
