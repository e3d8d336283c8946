"""The one small interface every transport (Wechaty, the web playground, test peers) implements.

Features never see a transport object: they get an `IncomingMessage` and hand back `Reply`s, which the
channel turns into its own calls. This keeps WeChat specifics in `bot/channels/wechaty.py` alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.messages import ChatRef, IncomingMessage, Reply

MessageHandler = Callable[[IncomingMessage], Awaitable[None]]


class Channel(Protocol):
    """A transport. `run` serves until `stop`; it must survive its own disconnects."""

    name: str

    @property
    def connected(self) -> bool: ...

    async def run(self, on_message: MessageHandler) -> None: ...

    async def send(self, chat: ChatRef, reply: Reply) -> None: ...

    async def find_room(self, topic: str) -> str | None:
        """The id of the room whose topic is exactly `topic`, or None (schedules name rooms by topic)."""
        ...

    async def stop(self) -> None: ...


_SEPARATORS = "\u2005\u0020\u00a0"


def strip_mention(text: str, names: list[str]) -> tuple[bool, str]:
    """Find a typed/pasted `@<name>` (followed by U+2005, a space or the end) and remove it.

    Returns (found, text without it). Used for messages that carry no mention id, which is how pasted
    or typed @-mentions arrive from real WeChat clients.
    """
    found = False
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        pattern = re.compile(rf"@{re.escape(name)}(?:[{_SEPARATORS}]+|$)")
        text, count = pattern.subn(" ", text)
        found = found or count > 0
    return found, text.strip()
