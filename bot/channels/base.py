"""The one small interface every transport (Wechaty, the web playground, test peers) implements.

Features never see a transport object: they get an `IncomingMessage` and hand back `Reply`s, which the
channel turns into its own calls. This keeps WeChat specifics in `bot/channels/wechaty/` alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.messages import ChatRef, IncomingMessage, Reply

MessageHandler = Callable[[IncomingMessage], Awaitable[None]]


@dataclass(frozen=True)
class LoginStatus:
    """Where the transport's login stands, for the admin console: its state since when, the account
    logged in, and the login QR code while the puppet waits for a scan (None once logged in)."""

    state: str  # the channel's own state name (wechaty: connecting / connected / serving ...)
    since: float  # epoch seconds of the last state change
    reason: str = ""  # why it changed ("logged out", "gateway unreachable: ...")
    account: str | None = None  # "小爱 (wxid_...)" while logged in
    qr_code: str | None = None  # the payload to render as a QR image
    qr_status: str | None = None  # waiting / scanned / confirmed / timeout / cancel
    qr_at: float | None = None


@dataclass(frozen=True)
class RoomInfo:
    """A room the account is in."""

    room_id: str
    topic: str


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

    async def rooms(self) -> list[RoomInfo]:
        """The rooms the account is in ([] while not connected)."""
        ...

    def login_status(self) -> LoginStatus: ...

    async def stop(self) -> None: ...
