"""The contract every in-process generator (CogVideoX video, FLUX image) follows.

A request is plain serialisable data, so a job can be stored in SQLite or sent to a remote worker
unchanged. `generate` is blocking GPU/CPU work: callers run it in a
worker thread, never on the event loop. Only `generators/` imports torch or diffusers, and only inside
functions, so the bot starts fast and runs without them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any, ClassVar, Generic, Self, TypeVar

StepCallback = Callable[[int, int], None]
"""on_step(i, n): step i (1-based) of n finished."""

ShouldStop = Callable[[], bool]
"""Polled every step; True aborts the run with GenerationCancelled."""


class GeneratorError(Exception):
    """A failure with a message fit for the asker (bad parameters, model missing, out of memory)."""


class ModelNotFound(GeneratorError):
    """No weights where config or the model caches say; the message says where it looked."""


class GenerationCancelled(Exception):
    """The run was stopped through `should_stop`."""


class RequestData:
    """Mixin for the frozen request dataclasses: plain dicts for SQLite and HTTP, unknown fields refused
    (a stored job or a remote call from another version must not be silently misread)."""

    what: ClassVar[str]  # "video" / "image", for the error message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_config(cls, prompt: str, config: Any, **overrides: Any) -> Self:
        """A request whose fields take the defaults in `config` (the section's `sampling` settings: every
        field but the prompt that they also have), overridden by the given fields."""
        values = {f.name: getattr(config, f.name) for f in fields(cls)  # type: ignore[arg-type]
                  if f.name != "prompt" and hasattr(config, f.name)}
        if not values:  # e.g. the whole section instead of its `sampling`: never fall back silently
            raise TypeError(f"{type(config).__name__} holds none of the {cls.what} request's fields")
        return cls(**({"prompt": prompt} | values | overrides))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        unknown = set(data) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise GeneratorError(f"unknown {cls.what} request fields: {', '.join(sorted(unknown))}")
        return cls(**data)


RequestT = TypeVar("RequestT")
OutputT = TypeVar("OutputT")


class Generator(ABC, Generic[RequestT, OutputT]):
    """Lazy-loading, resident model. `check_inputs` is cheap and runs before any queueing."""

    @abstractmethod
    def check_inputs(self, request: RequestT) -> None:
        """Raise GeneratorError naming the exact rule a parameter breaks."""

    @abstractmethod
    def load(self) -> None:
        """Load weights (idempotent). Raises ModelNotFound with a clear message."""

    @property
    @abstractmethod
    def loaded(self) -> bool: ...

    @abstractmethod
    def generate(self, request: RequestT, on_step: StepCallback | None = None,
                 should_stop: ShouldStop | None = None) -> OutputT:
        """Blocking: run the model. Loads on first use."""
