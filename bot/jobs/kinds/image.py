"""The `image` job kind: stored parameters -> a JPEG/PNG file, with the configured backend.

`local` draws in this process with `FluxGenerator`; `api` asks an OpenAI-compatible images endpoint
(`ImageApiGenerator`). Image jobs go through the SAME `JobQueue` as videos (one GPU runs one job at a
time); the queue lets short image jobs go ahead of waiting videos within a bound (`run_order`).
Blocking methods (`check`, `run`, `count_tokens`) are called from worker threads, never the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.config import ImageConfig
from bot.jobs.kinds.base import GeneratorKind
from bot.jobs.types import JobRequest, ShouldStop, StepCallback

KEY_ENV = "XIAOAI_IMAGE_API_KEY"
FALLBACK_KEY_ENV = "OPENAI_API_KEY"
PRIORITY = 1  # above video's 0: a picture takes seconds, a video minutes (bounded, see JobQueue)


def image_api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The images endpoint's key: XIAOAI_IMAGE_API_KEY, else OPENAI_API_KEY (never in config.yaml)."""
    env = os.environ if env is None else env
    return env.get(KEY_ENV) or env.get(FALLBACK_KEY_ENV) or None


class ImageKind(GeneratorKind):
    """Runs one image job with FluxGenerator (local) or ImageApiGenerator (api)."""

    name = "image"

    def __init__(self, config: Callable[[], ImageConfig], *,
                 api_key: Callable[[], str | None] = image_api_key,
                 api_base_url: Callable[[], str | None] = lambda: None) -> None:
        super().__init__(config)
        self._api_key = api_key
        self._api_base_url = api_base_url

    @property
    def backend(self) -> str:
        return self._config().backend

    def built_from(self, config: ImageConfig) -> tuple[Any, ...]:
        return ("api", config.api) if config.backend == "api" else ("local", config.model)

    def build(self, config: ImageConfig) -> Any:
        if config.backend == "api":
            from generators.image_api import ImageApiGenerator

            return ImageApiGenerator(config, self._api_key(), self._api_base_url())
        from generators.flux import FluxGenerator

        return FluxGenerator(config)

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        from generators.flux import ImageRequest

        return ImageRequest.from_dict({**params, "seed": seed})

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        from generators.flux import save_image

        result = self.generator.generate(self.request(request.params, request.seed), on_step, should_stop)
        encode = self._config().encode
        return save_image(result.image, output_stem, encode.format, encode.jpeg_quality)

    def max_prompt_tokens(self) -> int | None:
        """The local model's T5 limit; None for the API (its limits are in characters and generous)."""
        return super().max_prompt_tokens() if self.backend == "local" else None
