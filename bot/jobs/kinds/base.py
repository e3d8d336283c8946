"""What the `video` and `image` job kinds share: a generator built lazily from the current config
section (rebuilt when the section changes, resident across jobs), the parameter check, and the token
counting the prompt rewriter uses. Blocking methods run in worker threads, never on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from generators.base import GeneratorError


class GeneratorKind:
    """Base of a job kind backed by one generator. Subclasses implement `build` and `request`."""

    name: str
    default_max_prompt_tokens: int | None = None  # when the generator cannot tell
    # section keys only the queue and the handler read: editing them must not reload the weights
    job_only_fields: frozenset[str] = frozenset(
        {"max_pending_per_user", "seconds_per_job", "media_max_age_hours", "show_prompt", "load_at_start"})

    def __init__(self, config: Callable[[], Any]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._built_for: Any = None
        self._generator: Any = None

    def build(self, config: Any) -> Any:
        """A generator for this config section (cheap: no weights are loaded here)."""
        raise NotImplementedError

    def request(self, params: Mapping[str, Any], seed: int | None) -> Any:
        raise NotImplementedError

    def _generator_settings(self, config: Any) -> Any:
        return config.model_dump(exclude=set(self.job_only_fields))

    @property
    def generator(self) -> Any:
        """The current generator, resident across jobs; rebuilt (weights reloaded on the next job) only
        when a setting the generator reads changes, not for queue-only keys."""
        config = self._config()
        settings = self._generator_settings(config)
        with self._lock:
            if self._generator is None or settings != self._built_for:
                self._generator = self.build(config)
                self._built_for = settings
            return self._generator

    # -- JobKind ---------------------------------------------------------------------------------
    def check(self, params: Mapping[str, Any]) -> None:
        self.generator.check_inputs(self.request(params, params.get("seed")))

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
