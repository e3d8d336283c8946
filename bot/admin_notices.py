"""Private messages to the admins about faults only they can fix (a full disk), at most once per
`repeat_after_s` for the same kind of fault, so a flood of failing jobs is one message, not fifty."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from loguru import logger

from bot.channels.base import ChatRef, Reply

if TYPE_CHECKING:
    from bot.app import Application
    from generators.storage import StorageFull

NOTICE_CHARS = 600  # a WeChat bubble, not a traceback


class AdminNotices:
    def __init__(self, app: Application, repeat_after_s: float = 600.0) -> None:
        self.app = app
        self.repeat_after_s = repeat_after_s
        self._last_sent: dict[str, float] = {}

    async def tell(self, topic: str, text: str) -> bool:
        """Send `text` to every admin unless `topic` was told within `repeat_after_s`; True when sent."""
        now = time.monotonic()
        last = self._last_sent.get(topic)
        if last is not None and now - last < self.repeat_after_s:
            return False
        self._last_sent[topic] = now
        admins = self.app.config.bot.admins
        if not admins:
            logger.warning("no bot.admins to tell: {}", text)
            return False
        if len(text) > NOTICE_CHARS:
            text = text[: NOTICE_CHARS - 1] + "…"
        for admin_id in admins:
            await self.app.send(ChatRef(admin_id, is_room=False), Reply(text))
        return True

    async def storage_full(self, error: StorageFull) -> None:
        await self.tell(f"storage:{error.where}", error.admin_text())
