"""The last lines of the bot's log for the console's log page: a loguru sink into a ring buffer, every
line passed through the log's redaction before it is kept (so no secret is ever held or shown)."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from loguru import logger

from bot.logs import FORMAT, level_name, redactor

KEEP_LINES = 2000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class LogLine:
    seq: int
    level: str
    level_no: int
    text: str


class LogTail:
    """A process-wide ring buffer of log lines; `install` adds its sink once per logging setup."""

    def __init__(self, keep: int = KEEP_LINES) -> None:
        self._lines: deque[LogLine] = deque(maxlen=keep)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._sink_id: int | None = None

    def _write(self, message: Any) -> None:
        record = message.record
        text = redactor().redact(str(message).rstrip("\n"))
        with self._lock:
            self._lines.append(LogLine(next(self._seq), record["level"].name, record["level"].no, text))

    def install(self) -> None:
        """Add the sink unless it is still there (a later `setup_logging` removes every sink)."""
        if self._sink_id is not None:
            try:
                logger.remove(self._sink_id)
            except ValueError:
                pass
        self._sink_id = logger.add(self._write, level=level_name(), format=FORMAT, colorize=False,
                                   backtrace=False, diagnose=False)

    def lines(self, *, after: int = 0, level: str = "INFO", limit: int = 500) -> list[LogLine]:
        """The lines after `after` at `level` or above, the newest `limit` of them."""
        floor = logger.level(level if level in LEVELS else "INFO").no
        with self._lock:
            found = [line for line in self._lines if line.seq > after and line.level_no >= floor]
        return found[-limit:]


TAIL = LogTail()
