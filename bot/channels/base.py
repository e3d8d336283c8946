"""The one small interface every transport (Wechaty, the web playground, test peers) implements.

Features never see a transport object: they get an `IncomingMessage` and hand back `Reply`s, which the
channel turns into its own calls. This keeps WeChat specifics in `bot/channels/wechaty.py` alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class MessageKind(StrEnum):
    TEXT = "text"
    OTHER = "other"  # pictures, voice, stickers, files...: anything we don't read


@dataclass(frozen=True)
class ChatRef:
    """Where a reply goes: a room (group) or a private chat with one contact. Serialisable."""

    chat_id: str
    is_room: bool

    @property
    def key(self) -> str:
        return f"{'room' if self.is_room else 'dm'}:{self.chat_id}"


@dataclass(frozen=True)
class IncomingMessage:
    """A platform-neutral chat message as a channel saw it."""

    id: str
    chat: ChatRef
    sender_id: str
    sender_name: str
    text: str  # the bot's own @-mention removed
    mentioned: bool  # addressed to the bot: mention id, typed @name, or any private message
    kind: MessageKind = MessageKind.TEXT
    room_topic: str | None = None
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Reply:
    """What the bot says back: text, a file, or both (text first). Mentions are contact ids."""

    text: str = ""
    file: Path | None = None
    mention_ids: tuple[str, ...] = ()


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
