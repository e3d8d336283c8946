"""Progress in the terminal for long work (renders, model loading), readable in a log file too.

`StepProgress` draws a live bar (tqdm) when the log goes to a terminal, and otherwise writes one plain
line every ~10 % with the step and an ETA, so a file never gets carriage returns or escape codes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
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
