"""Private notes to the admins (`bot.admins`), through the chat channel: a bad config edit, WeChat
back after an outage, a fault only they can fix (a full disk, a missing key or model).

`key` deduplicates: the same problem is told at most once per `repeat_after_s` (or until `forget`),
so a flood of failing jobs is one message, not fifty.

A group is told "我已经告诉管理员了" only when it is true: `tell` says whether a notice reached an admin
(`Told`), and `honest` words the group's sentence from that ("管理员还没设置，…" when there are none)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING

from loguru import logger

from bot.config import AppConfig
from bot.messages import ChatRef, Reply

if TYPE_CHECKING:
    from generators.storage import StorageFull

MAX_CHARS = 600  # a WeChat bubble an admin still reads on a phone
ADMINS_TOLD = "我已经告诉管理员了"  # the claim, in every group sentence that makes it


class Told(Enum):
    """Whether the admins have the notice: YES (now, or the same problem within `repeat_after_s`)."""

    YES = "told"
    NO_ADMINS = "no admins"
    NOT_REACHED = "not reached"

    def __bool__(self) -> bool:
        return self is Told.YES


_INSTEAD_OF_CLAIM = {
    Told.NO_ADMINS: "管理员还没设置，请转告部署小爱的人",
    Told.NOT_REACHED: "没能通知到管理员，请转告部署小爱的人",
}


def honest(text: str, told: Told) -> str:
    """`text` with its "我已经告诉管理员了" kept only when the admins were told, else what is true."""
    return text if told is Told.YES else text.replace(ADMINS_TOLD, _INSTEAD_OF_CLAIM[told])


class AdminNotices:
    def __init__(self, config: Callable[[], AppConfig], send: Callable[[ChatRef, Reply], Awaitable[bool]],
                 *, repeat_after_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._send = send
        self.repeat_after_s = repeat_after_s
        self._clock = clock
        self._told: dict[str, float] = {}

    async def tell(self, text: str, *, key: str | None = None) -> Told:
        """Send `text` to every admin; YES when one got it (or got the same `key` recently)."""
        if key is not None:
            now, last = self._clock(), self._told.get(key)
            if last is not None and now - last < self.repeat_after_s:
                return Told.YES
            self._told[key] = now
        if len(text) > MAX_CHARS:
            text = text[: MAX_CHARS - 1] + "…"
        admins = self._config().bot.admins
        sent = 0
        for admin_id in admins:
            sent += bool(await self._send(ChatRef(admin_id, is_room=False), Reply(text)))
        if sent:
            return Told.YES
        if key is not None:
            self._told.pop(key, None)  # not told: the next occurrence tries again
        why = "with no bot.admins to tell" if not admins else "not delivered"
        logger.warning("admin notice {}: {}", why, text)
        return Told.NO_ADMINS if not admins else Told.NOT_REACHED

    def forget(self, key: str) -> None:
        self._told.pop(key, None)

    async def storage_full(self, error: StorageFull) -> None:
        await self.tell(error.admin_text(), key=f"storage:{error.where}")
