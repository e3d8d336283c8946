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

from generators.rules import MAX_GUIDANCE, guidance_problem, seed_problem

StepCallback = Callable[[int, int], None]
"""on_step(i, n): step i (1-based) of n finished."""

ShouldStop = Callable[[], bool]
"""Polled every step; True aborts the run with GenerationCancelled."""


class GeneratorError(Exception):
    """A failure with a message fit for the asker (bad parameters, model missing, out of memory).

    `str()` is the short, plain sentence the group reads. A failure only the admin can fix also carries
    `admin_detail` (the exact fix: paths, settings, the library's own error) and `problem`, the key that
    tells the admins about it once rather than on every request."""

    def __init__(self, message: str, *, admin_detail: str | None = None, problem: str | None = None) -> None:
        super().__init__(message)
        self.admin_detail = admin_detail
        self.problem = problem or (message if admin_detail else None)


def check_guidance_and_seed(guidance: Any, seed: Any, *, guidance_required: bool = False) -> None:
    """The sampling numbers every generator takes, checked in the asker's words (None: the model's own
    default, where the model has one)."""
    if (guidance is not None or guidance_required) and guidance_problem(guidance):
        raise GeneratorError(f"引导强度 guidance 必须在 0 到 {MAX_GUIDANCE:g} 之间，收到 {guidance!r}。")
    if seed is not None and seed_problem(seed):
        raise GeneratorError(f"随机数必须是 0 到 2^63-1 之间的整数，收到 {seed!r}。")


def not_ready(what: str, detail: str, problem: str) -> GeneratorError:
    """A feature the admin has to set up or repair: the group hears it is being handled."""
    return GeneratorError(f"{what}功能还没准备好，我已经告诉管理员了。", admin_detail=detail, problem=problem)


def went_wrong(detail: str, problem: str) -> GeneratorError:
    """An internal failure: the group gets an apology, the admin and the log the cause."""
    return GeneratorError("出了点意外，可以稍后再试一次", admin_detail=detail, problem=problem)


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
            raise went_wrong(f"unknown {cls.what} request fields: {', '.join(sorted(unknown))} "
                             "(a job from another version?)", f"{cls.what}:request-fields")
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
