"""What the WeChat channel remembers between messages, so that a mention costs one gRPC call in and one out.

python-wechaty asks the gateway for the bot's room alias and for every mentioned member's alias on each
message (a RoomMemberPayload call each, through a pure-Python gRPC stack that costs about a millisecond of
the event loop's CPU a call), and `Room.say` reloads the message it has just sent. So:

* `RoomLookups` keeps the members' room aliases per room: bounded,
  each entry for `ttl_s` at most (WeChat sends no event when a member renames themselves in a room),
  dropped for a room on its room-join, room-leave and room-topic events, and all of them on login and
  logout (another account sees other rooms and other aliases). Concurrent lookups of one key share one
  call, so a burst of mentions in a new room asks once.
* `SentIds` remembers the ids of the messages the bot sent: the platform echoes them back, and an echo
  of one of them needs no payload to be recognised as the bot's own. The echo's event often comes before
  the send's answer (the gateway emits it first, on the same connection), so a message that arrives while
  texts are being sent waits for those sends first, `ECHO_WAIT_S` at most.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from loguru import logger

LOOKUPS_KEPT = 4096  # (room, member) entries: a family's rooms hold a few hundred members in all
LOOKUP_TTL_S = 600.0
SENT_IDS_KEPT = 1024  # far more than can be in flight between a send and its echo
ECHO_WAIT_S = 0.25  # a text send answers within milliseconds; past this the payload is fetched after all


class RoomLookups:
    """(room id, member id) -> the member's alias in the room, as the gateway gave it once."""

    def __init__(self, size: int = LOOKUPS_KEPT, ttl_s: float = LOOKUP_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, asyncio.Future[str]]] = OrderedDict()
        self.loads = 0  # how many times the gateway was asked (the tests count them)

    async def get(self, room_id: str, key: str, load: Callable[[], Awaitable[str]]) -> str:
        """The cached value, else `load()`'s (one call for all who ask meanwhile); "" when it fails."""
        entry_key = (room_id, key)
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] > self._clock():
            self._entries.move_to_end(entry_key)
            return await _shared(entry[1])
        future: asyncio.Future[str] = asyncio.get_running_loop().create_task(self._load(entry_key, load))
        self._entries[entry_key] = (self._clock() + self.ttl_s, future)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return await _shared(future)

    async def _load(self, entry_key: tuple[str, str], load: Callable[[], Awaitable[str]]) -> str:
        self.loads += 1
        try:
            return await load() or ""
        except Exception as exc:  # noqa: BLE001 - not every puppet answers it; ask again next time
            logger.debug("wechaty: looking up {} failed: {}: {}", entry_key, type(exc).__name__, exc)
            entry = self._entries.get(entry_key)
            if entry is not None and entry[1] is asyncio.current_task():
                del self._entries[entry_key]
            return ""

    def forget_room(self, room_id: str) -> None:
        """The room's members or name changed: ask again."""
        for entry_key in [k for k in self._entries if k[0] == room_id]:
            del self._entries[entry_key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def _shared(future: asyncio.Future[str]) -> str:
    """Await a lookup that others may await too: one caller's cancellation must not cancel theirs."""
    return await asyncio.shield(future)


class SentIds:
    """The ids of the latest messages the bot sent, oldest forgotten first, and the sends in flight."""

    def __init__(self, size: int = SENT_IDS_KEPT, wait_s: float = ECHO_WAIT_S) -> None:
        self.size = size
        self.wait_s = wait_s
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._sending: set[asyncio.Future[None]] = set()

    async def send(self, call: Awaitable[str | None], *, awaited_by_echoes: bool = True) -> None:
        """Run the send `call` and remember the id it answers. A file's send may take seconds: messages do
        not wait for it (`awaited_by_echoes=False`), its echo costs a payload call."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if awaited_by_echoes:
            self._sending.add(done)
        try:
            self.add(await call)
        finally:
            self._sending.discard(done)
            done.set_result(None)

    async def is_echo(self, message_id: str) -> bool:
        """Whether `message_id` is one the bot sent, once the text sends in flight now have answered."""
        pending = set(self._sending)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while message_id not in self._ids and pending and (left := deadline - loop.time()) > 0:
            done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
        return message_id in self._ids

    def add(self, message_id: str | None) -> None:
        if not message_id:
            return
        self._ids[message_id] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def clear(self) -> None:
        self._ids.clear()  # the sends in flight stay awaited: they end on their own
