"""Progress in the terminal for long work (renders, model loading), readable in a log file too.

`StepProgress` draws a live bar (tqdm) when the log goes to a terminal, and otherwise writes one plain
line every ~10 % with the step and an ETA, so a file never gets carriage returns or escape codes.
`LibraryWarmup` is a service that imports torch / transformers / diffusers in a background thread at
start-up when a local model is there to use, so the first picture or video keeps its promised time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from loguru import logger


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


class StepProgress:
    """Step i of N for one piece of work. `update` may be called from any thread; `close` once at the end.

    `tty=None` decides by the stream (stderr, where the log goes)."""

    def __init__(self, label: str, *, tty: bool | None = None, stream: TextIO | None = None,
                 every: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self._stream = stream
        self._tty = is_terminal(stream) if tty is None else tty
        self._every = every
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._reported = 0  # last tenth (or `every` fraction) reported in plain mode
        self.lines: list[str] = []  # the plain lines written, for the admin status and tests

    def update(self, step: int, total: int) -> None:
        if total <= 0:
            return
        step = min(max(step, 0), total)
        with self._lock:
            if self._tty:
                self._draw(step, total)
                return
            slot = int(step / total / self._every)
            if slot <= self._reported or step >= total:
                return  # the "done" line says the rest
            self._reported = slot
            elapsed = self._clock() - self._started
            eta = elapsed / step * (total - step) if step else 0.0
            line = f"{self.label}: step {step}/{total} ({100 * step // total} %), eta {_eta(eta)}"
            self.lines.append(line)
            logger.info(line)

    def _draw(self, step: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.label, file=self._stream or sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=0.2, unit="step")
        self._bar.total = total
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


class LibraryWarmup:
    """Service: import the heavy libraries once, in a daemon thread, when some local model is found.

    A daemon thread rather than `asyncio.to_thread`, so that stopping the bot never waits for an import
    to finish. Nothing is imported when no local weights are there (the bot may run with none at all)."""

    def __init__(self, kinds: Callable[[], Iterable[Any]]) -> None:
        self._kinds = kinds
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.seconds: float | None = None

    async def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="library-warmup", daemon=True)
            self._thread.start()

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

            self.seconds = import_heavy()
            from bot.logs import route_stdlib_logging

            route_stdlib_logging()  # transformers and torch build their own stderr handlers
            logger.info("warm-up: torch, transformers and diffusers imported in {:.1f} s", self.seconds)
        except Exception as exc:  # noqa: BLE001 - the first job imports again and reports the error
            logger.warning("warm-up: importing the generation libraries failed: {}", exc)
        finally:
            self.done.set()

    async def stop(self) -> None:
        return None
