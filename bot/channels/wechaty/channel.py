"""WeChat through python-wechaty (puppet-service transport): the message path, in and out.

The connection and the login state machine are `supervisor.py`'s; this file is what one message crosses.
Every gRPC call costs the event loop about a millisecond of CPU (a pure-Python HTTP/2 stack), so a mention
makes two: the message's payload in and the reply out.

* In: `Message.ready()` fetches the payload, and the talker's and the room's payloads the first time each is
  seen (python-wechaty keeps them per session). The bot's and the mentioned members' room aliases come from
  `RoomLookups`: python-wechaty's `mention_self()`, `mention_text()` and `room.alias()` ask the gateway for
  each on every message.
* Out: through the puppet itself, as `Room.say`/`Contact.say` send, without their reload of the sent
  message. The platform echoes what the bot sent: `SentIds` knows those ids, so an echo costs no call.

Only this package imports wechaty.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

# isort: off
from bot.channels.wechaty import compat  # noqa: F401  (must precede the wechaty imports below)
from bot.channels.login_state import state_text
from bot.channels.wechaty.photos import photo_bytes
from bot.channels.wechaty.supervisor import Session, SessionSupervisor, State, fresh_object_pools
from bot.channels.wechaty.supervisor import split_endpoint  # noqa: F401  (the CLI imports it from here)
from bot.config import WechatyConfig
from bot.messages import ChatRef, IncomingMessage, MessageKind, Reply

from wechaty import Message  # noqa: E402  (after the compat fix)
from wechaty.config import AT_SEPARATOR  # noqa: E402
from wechaty_puppet import EventMessagePayload, FileBox, MessageType  # noqa: E402
# isort: on

KINDS = {MessageType.MESSAGE_TYPE_TEXT: MessageKind.TEXT, MessageType.MESSAGE_TYPE_IMAGE: MessageKind.PHOTO,
         MessageType.MESSAGE_TYPE_ATTACHMENT: MessageKind.FILE}
ROOM_EVENTS = ("room-join", "room-leave", "room-topic")  # a room's members or name changed
LOOKUPS_KEPT = 4096  # (room, member) aliases: a family's rooms hold a few hundred members in all
LOOKUP_TTL_S = 600.0  # WeChat sends no event when a member renames themselves in a room
SENT_IDS_KEPT = 1024  # far more than can be in flight between a send and its echo
ECHO_WAIT_S = 0.25  # a text send answers within milliseconds; past this the payload is fetched after all


class ChannelUnavailable(Exception):
    """Raised by `send` while the transport is not connected; the caller may retry later."""


class WechatyChannel(SessionSupervisor):
    """The WeChat transport: puppet events in as `IncomingMessage`s, `Reply`s out as puppet calls."""

    name = "wechaty"

    def __init__(self, endpoint: str, token: str | None, config: WechatyConfig) -> None:
        super().__init__(endpoint, token, config)
        self._tasks: set[asyncio.Task] = set()
        self.room_lookups = RoomLookups()  # member aliases per room, for the account logged in now
        self._sent = SentIds()  # what the bot sent: its echoes need no payload

    # -- events -------------------------------------------------------------------------------
    def _bridge_events(self, session: Session) -> None:
        """The puppet's login, logout, scan, message, room and error events to the channel, every time."""
        puppet = session.puppet

        def spawned(handler):  # noqa: ANN001, ANN202 - each event handled in its own task, errors ours
            return lambda payload: self._spawn(self._guarded(handler(session, payload)))

        puppet.on("login", spawned(self._on_login))
        puppet.on("logout", spawned(self._on_logout))
        puppet.on("message", spawned(self._on_puppet_message))
        puppet.on("scan", lambda payload: self._on_scan(payload.qrcode or "", payload.status))
        puppet.on("error", self._on_puppet_error)
        for event in ROOM_EVENTS:
            puppet.on(event, lambda payload: self._on_room_changed(session, payload.room_id))

    def _on_room_changed(self, session: Session, room_id: str | None) -> None:
        """A member joined or left, or the room was renamed: its payload and aliases are read again."""
        if session is not self._session or not room_id:
            return
        session.Room._pool.pop(room_id, None)
        self.room_lookups.forget_room(room_id)

    def _account_changed(self, session: Session | None) -> None:
        """Another account (or the same, later) may see other rooms and other aliases."""
        self.room_lookups.clear()
        self._sent.clear()
        if session is not None:
            fresh_object_pools(session)

    def _spawn(self, coro) -> None:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro) -> None:  # noqa: ANN001
        try:
            await coro
        except Exception:  # noqa: BLE001 - one bad event must not go unseen or end the stream
            logger.exception("wechaty: handling a puppet event failed")

    async def _on_puppet_message(self, session: Session, payload: EventMessagePayload) -> None:
        if await self._sent.is_echo(payload.message_id):
            return  # the echo of our own reply: the self-echo gate would drop it after a payload call
        msg = session.Message.load(payload.message_id)
        await msg.ready()
        await self._on_wechaty_message(session, msg)

    async def _on_wechaty_message(self, session: Session, msg: Message) -> None:
        try:
            incoming = await to_incoming(session, msg, self_id=self._self_id, self_name=self._self_name,
                                         rooms=self.room_lookups)
        except Exception:  # noqa: BLE001 - a message we cannot read must not hurt the stream
            logger.exception("wechaty: could not read message {}", getattr(msg, "message_id", "?"))
            return
        if self._on_message is None:
            return
        try:
            await self._on_message(incoming)
        except Exception:  # noqa: BLE001 - a bug on one message must not go unseen or hurt the next
            logger.exception("wechaty: handling message {} failed", incoming.id)

    # -- sending ------------------------------------------------------------------------------
    async def send(self, chat: ChatRef, reply: Reply) -> None:
        """Say `reply` in `chat` through the puppet: what `Room.say`/`Contact.say` send, without their reload
        of the sent message (`msg.say` even raises after a good send)."""
        session = self._session
        if session is None or self._state is not State.SERVING:
            raise ChannelUnavailable(f"WeChat is not serving: {state_text(self.login_status())}")
        puppet = session.puppet
        if reply.text:
            text, mention_ids = reply.text, None
            if chat.is_room and reply.mention_ids:
                mention_ids = list(reply.mention_ids)
                names = [f"@{await contact_name(session, contact_id)}" for contact_id in mention_ids]
                text = f"{AT_SEPARATOR.join(names)} {text}"  # as Room.say writes a mention
            await self._sent.send(puppet.message_send_text(chat.chat_id, text, mention_ids))
        if reply.file is not None:
            box = FileBox.from_file(str(reply.file), name=reply.file.name)
            await self._sent.send(puppet.message_send_file(chat.chat_id, box), awaited_by_echoes=False)


# -- a puppet message as the neutral IncomingMessage -------------------------------------------------
async def to_incoming(session: Any, msg: Any, *, self_id: str | None, self_name: str | None,
                      rooms: RoomLookups) -> IncomingMessage:
    """`msg` (ready) as the channel hands it on; `self_id` is the account logged in (its messages: echoes)."""
    talker, room, payload = msg.talker(), msg.room(), msg.payload
    text = payload.text or ""
    kind = KINDS.get(msg.type(), MessageKind.OTHER)
    common: dict[str, Any] = {"id": msg.message_id, "sender_id": talker.contact_id,
                              "sender_name": talker.name, "kind": kind, "timestamp": time.time(),
                              "from_self": talker.contact_id == self_id}
    if kind is MessageKind.PHOTO and not common["from_self"]:
        common["attachment"] = await photo_bytes(msg, session.puppet)
    names = (self_name or "",)
    if room is None:  # a private chat is addressed to the bot
        return IncomingMessage(chat=ChatRef(talker.contact_id, is_room=False), text=text.strip(),
                               mentioned=True, bot_names=names, **common)
    chat = ChatRef(room.room_id, is_room=True)
    if common["from_self"]:
        return IncomingMessage(chat=chat, text=text, mentioned=False, **common)
    await room.ready()  # the room's payload, asked again only after a room event dropped it
    puppet_self = getattr(session.puppet, "login_user_id", None)  # what `mention_self()` compares
    mention_ids = list(payload.mention_ids or ())
    by_id = bool(puppet_self) and puppet_self in mention_ids
    if puppet_self:
        alias = await member_alias(session, rooms, room.room_id, puppet_self)
        if alias:
            names = (*names, alias)
    if by_id and kind is MessageKind.TEXT:
        text = await without_mentions(session, rooms, room.room_id, text, mention_ids)
    return IncomingMessage(chat=chat, text=text.strip(), mentioned=by_id, room_topic=room.payload.topic,
                           bot_names=names, **common)


async def member_alias(session: Any, rooms: RoomLookups, room_id: str, contact_id: str) -> str:
    """The member's alias in the room ("" when none), asked once per room (see `RoomLookups`)."""

    async def load() -> str:
        member = await session.puppet.room_member_payload(room_id=room_id, contact_id=contact_id)
        return (member.room_alias or "") if member is not None else ""

    return await rooms.get(room_id, contact_id, load)


async def contact_name(session: Any, contact_id: str) -> str:
    """The contact's WeChat name (python-wechaty keeps each contact's payload for the session)."""
    contact = session.Contact.load(contact_id)
    await contact.ready()
    return contact.name


async def without_mentions(session: Any, rooms: RoomLookups, room_id: str, text: str,
                           mention_ids: list[str]) -> str:
    """The text without its `@Name` mentions, as python-wechaty's `mention_text()` removes them: each
    mentioned member under their room alias, else their name, followed by U+2005, a space or the end."""
    for contact_id in reversed(mention_ids):
        alias = await member_alias(session, rooms, room_id, contact_id)
        name = alias or await contact_name(session, contact_id)
        text = re.sub(f"@{re.escape(name)}(\u2005|\u0020|$)", "", text)
    return text


# -- what the channel remembers between messages -----------------------------------------------------
class RoomLookups:
    """(room id, member id) -> the member's alias in the room, as the gateway gave it once.

    Bounded, each entry kept `ttl_s` at most, dropped for a room on its room events and all of them on login
    and logout. Concurrent lookups of one key share one call: a burst of mentions in a new room asks once."""

    def __init__(self, size: int = LOOKUPS_KEPT, ttl_s: float = LOOKUP_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, asyncio.Future[str]]] = OrderedDict()

    async def get(self, room_id: str, key: str, load: Callable[[], Awaitable[str]]) -> str:
        """The cached value, else `load()`'s (one call for all who ask meanwhile); "" when it fails."""
        entry_key = (room_id, key)
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] > self._clock():
            self._entries.move_to_end(entry_key)
            return await asyncio.shield(entry[1])  # one asker's cancellation must not cancel the others'
        future: asyncio.Future[str] = asyncio.get_running_loop().create_task(self._load(entry_key, load))
        self._entries[entry_key] = (self._clock() + self.ttl_s, future)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return await asyncio.shield(future)

    async def _load(self, entry_key: tuple[str, str], load: Callable[[], Awaitable[str]]) -> str:
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


class SentIds:
    """The ids of the latest messages the bot sent, oldest forgotten first, and the sends in flight.

    The echo's event often comes before the send's answer (the gateway emits it first, on the same
    connection), so a message that arrives while texts are being sent waits for those sends first,
    `wait_s` at most."""

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
