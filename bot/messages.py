"""The transport-neutral message model: what channels produce and features consume.

Channels (`bot/channels/`) turn their platform's events into `IncomingMessage`s and `Reply`s into their
own calls; features only ever see these types, so no feature imports a transport.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class MessageKind(StrEnum):
    TEXT = "text"
    PHOTO = "photo"  # a picture; its bytes in `attachment` (None: the download failed)
    FILE = "file"  # any other file sent as an attachment (not downloaded)
    OTHER = "other"  # voice, stickers, links...: anything we don't read


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
    text: str  # a mention the platform marked (a mention id) already removed
    mentioned: bool  # the platform says it is addressed to the bot (mention id, private chat)
    kind: MessageKind = MessageKind.TEXT
    room_topic: str | None = None
    timestamp: float = field(default_factory=time.time)
    from_self: bool = False  # the bot's own message echoed back by the platform
    bot_names: tuple[str, ...] = ()  # names the bot goes by in this chat (account name, room alias)
    attachment: bytes | None = field(default=None, repr=False)  # a PHOTO message's file, as received
    photo: Path | None = None  # the asker's photo a request refers to (set by the photo gate)


@dataclass(frozen=True)
class Reply:
    """What the bot says back: text, a file, or both (text first). Mentions are contact ids."""

    text: str = ""
    file: Path | None = None
    mention_ids: tuple[str, ...] = ()
