"""Private notes to the admins (`bot.admins`), through the chat channel: a bad config edit, WeChat
back after an outage, a fault only they can fix (a full disk, a missing key or model).

`key` deduplicates: the same problem is told at most once per `repeat_after_s` (or until `forget`),
so a flood of failing jobs is one message, not fifty."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from loguru import logger

from bot.config import AppConfig
from bot.messages import ChatRef, Reply

if TYPE_CHECKING:
    from generators.storage import StorageFull

MAX_CHARS = 600  # a WeChat bubble an admin still reads on a phone


class AdminNotices:
    def __init__(self, config: Callable[[], AppConfig], send: Callable[[ChatRef, Reply], Awaitable[bool]],
                 *, repeat_after_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._send = send
        self.repeat_after_s = repeat_after_s
        self._clock = clock
        self._told: dict[str, float] = {}

    async def tell(self, text: str, *, key: str | None = None) -> int:
        """Send `text` to every admin; returns how many got it (0 when `key` was told recently)."""
        if key is not None:
            now, last = self._clock(), self._told.get(key)
            if last is not None and now - last < self.repeat_after_s:
                return 0
            self._told[key] = now
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS - 1] + "…"
        admins = self._config().bot.admins
        if not admins:
            logger.warning("admin notice with no bot.admins to tell: {}", text)
            return 0
        sent = 0
        for admin_id in admins:
            sent += bool(await self._send(ChatRef(admin_id, is_room=False), Reply(text)))
        return sent

    def forget(self, key: str) -> None:
        self._told.pop(key, None)

    async def storage_full(self, error: StorageFull) -> None:
        await self.tell(error.admin_text(), key=f"storage:{error.where}")
