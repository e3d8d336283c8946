"""Private notes to the admins (`bot.admins`), through the chat channel: a bad config edit, WeChat
back after an outage, a problem a group member hit that only an admin can fix.

`key` deduplicates: the same problem is told once until `forget(key)` (e.g. once it is fixed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loguru import logger

from bot.config import AppConfig
from bot.messages import ChatRef, Reply

MAX_CHARS = 600  # a WeChat bubble an admin still reads on a phone


class AdminNotices:
    def __init__(self, config: Callable[[], AppConfig],
                 send: Callable[[ChatRef, Reply], Awaitable[bool]]) -> None:
        self._config = config
        self._send = send
        self._told: set[str] = set()

    async def tell(self, text: str, *, key: str | None = None) -> int:
        """Send `text` to every admin; returns how many got it (0 when already told about `key`)."""
        if key is not None:
            if key in self._told:
                return 0
            self._told.add(key)
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
        self._told.discard(key)
