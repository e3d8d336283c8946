"""The `video` job kind: stored parameters -> an MP4 file, with the configured backend.

`local` renders in this process with `CogVideoXGenerator` and encodes with `encode_mp4`; `remote` asks
the `xiaoai serve-video` service (`generators/remote.py`), which runs this same kind with `local`. The
kind is what a worker hosts (`bot/jobs.py`): the bot's `LocalBackend` today, other workers later.
Blocking methods (`check`, `run`, `count_tokens`) are called from worker threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from bot.config import VideoConfig
from bot.jobs import JobRequest, ShouldStop, StepCallback
from generators.base import GeneratorError, MediaOutput

TOKEN_ENV = "XIAOAI_VIDEO_TOKEN"
DEFAULT_MAX_PROMPT_TOKENS = 226  # CogVideoX's text length (max_text_seq_length)


def video_token(env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token shared by the bot and `xiaoai serve-video` (never in config.yaml)."""
    env = os.environ if env is None else env
    return env.get(TOKEN_ENV) or None


class VideoKind:
    """Runs one video job. The generator is built lazily and rebuilt when the `video` config changes."""

    name = "video"

    def __init__(self, config: Callable[[], VideoConfig], *, force_local: bool = False,
                 token: Callable[[], str | None] = video_token) -> None:
        self._config = config
        self._force_local = force_local
        self._token = token
        self._lock = threading.Lock()
        self._built_for: VideoConfig | None = None
        self._generator: Any = None

    @property
    def backend(self) -> str:
        return "local" if self._force_local else self._config().backend

    @property
    def generator(self) -> Any:
        """The current generator (CogVideoXGenerator or RemoteVideoGenerator), resident across jobs.

        Building it is cheap (no weights); `generator.load()` is the expensive part."""
        config = self._config()
        with self._lock:
            if self._generator is None or config != self._built_for:
                if self.backend == "remote":
                    from generators.remote import RemoteVideoGenerator

                    self._generator = RemoteVideoGenerator(config, self._token())
                else:
                    from generators.cogvideox import CogVideoXGenerator

                    self._generator = CogVideoXGenerator(config)
                self._built_for = config
            return self._generator

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        from generators.cogvideox import VideoRequest

        return VideoRequest.from_dict({**params, "seed": seed})

    # -- JobKind ---------------------------------------------------------------------------------
    def check(self, params: Mapping[str, Any]) -> None:
        self.generator.check_inputs(self.request(params, params.get("seed")))

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        generator = self.generator
        output = generator.generate(self.request(request.params, request.seed), on_step, should_stop)
        path = output_stem.with_suffix(".mp4")
        if isinstance(output, MediaOutput):  # the remote service sent a finished file
            shutil.move(output.path, path)  # may cross file systems (a temp dir)
            return path
        from generators.mp4 import encode_mp4

        config = self._config()
        return encode_mp4(output.frames, path, output.fps, config.bitrate_kbps, int(config.max_mp4_mb * 1e6))

    # -- for the prompt rewriter -----------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int | None:
        """Exact text-encoder tokens when the local model's tokenizer is at hand, else None (estimate)."""
        generator = self.generator
        counter = getattr(generator, "prompt_tokens", None)
        if counter is None:
            return None
        try:
            return int(counter(prompt))
        except (GeneratorError, OSError, ValueError):
            return None

    def max_prompt_tokens(self) -> int:
        generator = self.generator
        try:
            return int(generator.limits.max_prompt_tokens)
        except (AttributeError, GeneratorError, OSError, ValueError):
            return DEFAULT_MAX_PROMPT_TOKENS


class ModelPreload:
    """Service: loads a kind's local model in the background at start when its `load_at_start` is set
    (used for both `video` and `image`)."""

    def __init__(self, kind: Any, config: Callable[[], Any]) -> None:
        self._kind = kind
        self._config = config
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._config().load_at_start and self._kind.backend == "local":
            self._task = asyncio.create_task(self._load())

    async def _load(self) -> None:
        try:
            await asyncio.to_thread(self._kind.generator.load)
        except Exception as exc:  # noqa: BLE001 - the first job will report it to the asker too
            logger.error("{}: preloading the model failed: {}", self._kind.name, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
