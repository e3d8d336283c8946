"""The `image` job kind: stored parameters -> a JPEG/PNG file, with the configured backend.

`local` draws in this process with `FluxGenerator`; `api` asks an OpenAI-compatible images endpoint
(`ImageApiGenerator`). Image jobs go through the SAME `JobQueue` as videos (one GPU runs one job at a
time); the queue lets short image jobs go ahead of waiting videos within a bound (see bot/jobs.py).
Blocking methods (`check`, `run`, `count_tokens`) are called from worker threads, never the event loop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.config import ImageConfig
from bot.jobs import JobRequest, ShouldStop, StepCallback
from generators.base import GeneratorError

KEY_ENV = "XIAOAI_IMAGE_API_KEY"
FALLBACK_KEY_ENV = "OPENAI_API_KEY"
PRIORITY = 1  # above video's 0: a picture takes seconds, a video minutes (bounded, see JobQueue)


def image_api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The images endpoint's key: XIAOAI_IMAGE_API_KEY, else OPENAI_API_KEY (never in config.yaml)."""
    env = os.environ if env is None else env
    return env.get(KEY_ENV) or env.get(FALLBACK_KEY_ENV) or None


class ImageKind:
    """Runs one image job. The generator is built lazily and rebuilt when the `image` config changes."""

    name = "image"

    def __init__(self, config: Callable[[], ImageConfig], *,
                 api_key: Callable[[], str | None] = image_api_key,
                 api_base_url: Callable[[], str | None] = lambda: None) -> None:
        self._config = config
        self._api_key = api_key
        self._api_base_url = api_base_url
        self._lock = threading.Lock()
        self._built_for: ImageConfig | None = None
        self._generator: Any = None

    @property
    def backend(self) -> str:
        return self._config().backend

    @property
    def generator(self) -> Any:
        """The current generator (FluxGenerator or ImageApiGenerator), resident across jobs."""
        config = self._config()
        with self._lock:
            if self._generator is None or config != self._built_for:
                if config.backend == "api":
                    from generators.image_api import ImageApiGenerator

                    self._generator = ImageApiGenerator(config, self._api_key(), self._api_base_url())
                else:
                    from generators.flux import FluxGenerator

                    self._generator = FluxGenerator(config)
                self._built_for = config
            return self._generator

    @staticmethod
    def request(params: Mapping[str, Any], seed: int | None) -> Any:
        from generators.flux import ImageRequest

        return ImageRequest.from_dict({**params, "seed": seed})

    # -- JobKind ---------------------------------------------------------------------------------
    def check(self, params: Mapping[str, Any]) -> None:
        self.generator.check_inputs(self.request(params, params.get("seed")))

    def run(self, request: JobRequest, output_stem: Path, on_step: StepCallback,
            should_stop: ShouldStop) -> Path:
        from generators.flux import save_image

        result = self.generator.generate(self.request(request.params, request.seed), on_step, should_stop)
        config = self._config()
        return save_image(result.image, output_stem, config.format, config.jpeg_quality)

    # -- for the prompt rewriter -----------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int | None:
        """Exact T5 tokens when the local model's tokenizer is at hand, else None."""
        counter = getattr(self.generator, "prompt_tokens", None)
        if counter is None:
            return None
        try:
            return int(counter(prompt))
        except (GeneratorError, OSError, ValueError):
            return None

    def max_prompt_tokens(self) -> int | None:
        """The local model's T5 limit; None for the API (its limits are in characters and generous)."""
        if self.backend != "local":
            return None
        try:
            return int(self.generator.limits.max_prompt_tokens)
        except (AttributeError, GeneratorError, OSError, ValueError):
            return None
