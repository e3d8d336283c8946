"""What the `video` and `image` job kinds share: a generator built lazily from the current config
section (rebuilt only when what it was built from changes, resident across jobs), the parameter check,
and the token counting the prompt rewriter uses. Blocking methods run in worker threads, never on the
event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from generators.base import GeneratorError

_SIZE_PARAMS = ("steps", "num_frames", "height", "width", "size")  # what makes one job longer than another


class GeneratorKind:
    """Base of a job kind backed by one generator. Subclasses implement `build` and `request`."""

    name: str
    default_max_prompt_tokens: int | None = None  # when the generator cannot tell

    def __init__(self, config: Callable[[], Any]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._built_for: Any = None
        self._generator: Any = None

    def build(self, config: Any) -> Any:
        """A generator for this config section (cheap: no weights are loaded here)."""
        raise NotImplementedError

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        """The generator's request from plain params (a stored job); unknown fields are refused."""
        raise NotImplementedError

    def section(self) -> Any:
        """The kind's current config section (what a render process is sent with each job)."""
        return self._config()

    def view(self, config: Any) -> Any:
        """The settings the generator reads, from the kind's section (default: the section itself)."""
        return config

    def built_from(self, config: Any) -> tuple[Any, ...]:
        """The sub-sections a built generator holds on to (its weights, its client); a change in any of
        them builds a new one. Everything else it reads (sampling limits, encoding) is read live."""
        raise NotImplementedError

    @property
    def generator(self) -> Any:
        """The current generator, resident across jobs; rebuilt (weights reloaded on the next job) only
        when `built_from` changes. Otherwise it is handed the current section, so edited sampling
        limits apply to the next check without a reload."""
        config = self._config()
        built_from = self.built_from(config)
        with self._lock:
            if self._generator is None or built_from != self._built_for:
                self._generator = self.build(config)
                self._built_for = built_from
            else:
                self._generator.config = self.view(config)
            return self._generator

    # -- JobKind ---------------------------------------------------------------------------------
    def profile(self, params: Mapping[str, Any]) -> str:
        """What a job's run time depends on: where it runs, the model and speed preset, its size."""
        config = self._config()
        model = getattr(config, "model", None)
        speed = getattr(config, "speed", None)
        preset = getattr(speed, "preset", "")
        parts = [getattr(config, "backend", "local"), getattr(model, "variant", ""),
                 str(getattr(model, "path", "")), preset]
        cache = getattr(speed, "cache", "none")
        if hasattr(speed, "cache_full_every") and (preset == "fast" or cache != "none"):
            # a cache's schedule changes the time (preset fast's own cache changed): other runs don't count
            parts.append(f"cache={cache}/{speed.cache_full_every}")
        if getattr(config, "backend", "local") == "api":
            parts[1:3] = [config.api.model, config.api.size]
        parts += [f"{key}={params[key]}" for key in sorted(params) if key in _SIZE_PARAMS]
        return "|".join(str(part) for part in parts)

    def check(self, request: Any) -> None:
        self.generator.check_inputs(request)

    # -- for the prompt rewriter -----------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int | None:
        """Exact text-encoder tokens when a local model's tokenizer is at hand, else None (estimate)."""
        counter = getattr(self.generator, "prompt_tokens", None)
        if counter is None:
            return None
        try:
            return int(counter(prompt))
        except (GeneratorError, OSError, ValueError):
            return None

    def max_prompt_tokens(self) -> int | None:
        try:
            return int(self.generator.limits.max_prompt_tokens)
        except (AttributeError, GeneratorError, OSError, ValueError):
            return self.default_max_prompt_tokens
