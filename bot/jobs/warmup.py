"""Getting the models ready before the first job, so it keeps its promised time: `LibraryWarmup` imports
torch / transformers / diffusers at start-up when a local model is there to use; `ModelPreload` loads a
kind's weights at start when its section says `load_at_start`. Both do it where the renders will run:
in the render process while it hosts them (bot/jobs/render_process.py; the bot itself then never imports
torch for them), else in this process. Neither holds up the message path or the stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from loguru import logger

from bot.jobs.kinds.base import GeneratorKind


class RenderHost(Protocol):
    """Where local renders may run instead of this process (`RenderProcessBackend`)."""

    def hosts_renders(self) -> bool: ...

    def handles(self, kind: str) -> bool: ...

    async def warm(self) -> float: ...

    async def load(self, kind: str) -> None: ...


class LibraryWarmup:
    """Service: import the heavy libraries once when some local model is found: in the render process
    while it hosts the renders, else here in a daemon thread.

    A daemon thread rather than `asyncio.to_thread`, so that stopping the bot never waits for an import
    to finish. Nothing is imported when no local weights are there (the bot may run with none at all)."""

    def __init__(self, kinds: Callable[[], Iterable[Any]], host: RenderHost | None = None) -> None:
        self._kinds = kinds
        self._host = host
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._host is not None and self._host.hosts_renders():
            if self._task is None:
                self._task = asyncio.create_task(self._warm_host(self._host), name="library-warmup")
        elif self._thread is None:
            self._thread = threading.Thread(target=self._run, name="library-warmup", daemon=True)
            self._thread.start()

    async def _warm_host(self, host: RenderHost) -> None:
        try:
            if not await asyncio.to_thread(self._wanted):
                logger.debug("warm-up: no local model found, the heavy libraries are imported on demand")
                return
            seconds = await host.warm()
            logger.info("warm-up: torch, transformers and diffusers imported in the render process in "
                        "{:.1f} s", seconds)
        except Exception as exc:  # noqa: BLE001 - the first job imports again and reports the error
            logger.warning("warm-up: importing the generation libraries in the render process failed: {}",
                           exc)

    def _wanted(self) -> bool:
        for kind in self._kinds():
            if getattr(kind, "backend", "local") != "local":
                continue
            try:
                kind.generator.locate()
            except Exception:  # noqa: BLE001 - no weights (or a bad path): the first job will say so
                continue
            return True
        return False

    def _run(self) -> None:
        try:
            if not self._wanted():
                logger.debug("warm-up: no local model found, the heavy libraries are imported on demand")
                return
            from generators.heavy_imports import import_heavy

            seconds = import_heavy()
            from bot.logs import route_stdlib_logging

            route_stdlib_logging()  # transformers and torch build their own stderr handlers
            logger.info("warm-up: torch, transformers and diffusers imported in {:.1f} s", seconds)
        except Exception as exc:  # noqa: BLE001 - the first job imports again and reports the error
            logger.warning("warm-up: importing the generation libraries failed: {}", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ModelPreload:
    """Service: loads a kind's local model in the background at start when its `load_at_start` is set
    (`video` and `image` alike; with it off, `LibraryWarmup` still does the imports), in the render
    process while that hosts the kind."""

    def __init__(self, kind: GeneratorKind, config: Callable[[], Any],
                 host: RenderHost | None = None) -> None:
        self._kind = kind
        self._config = config
        self._host = host
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._config().load_at_start and self._kind.backend == "local":
            self._task = asyncio.create_task(self._load())

    async def _load(self) -> None:
        try:
            if self._host is not None and self._host.handles(self._kind.name):
                await self._host.load(self._kind.name)
            else:
                await asyncio.to_thread(self._kind.generator.load)
        except Exception as exc:  # noqa: BLE001 - the first job will report it to the asker too
            logger.error("{}: preloading the model failed: {}", self._kind.name, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
