"""A puppet message as the neutral `IncomingMessage`, with one gRPC call for a message in a known room.

`Message.ready()` fetches the message's payload (one call) and the talker's and the room's payloads the
first time each is seen (python-wechaty keeps them per session). Everything else comes from that payload
and from `RoomLookups`: python-wechaty's `mention_self()`, `mention_text()` and `room.alias()` would ask the
gateway for the bot's and each mentioned member's room alias on every message.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bot.channels.wechaty.lookups import RoomLookups
from bot.channels.wechaty.photos import photo_bytes
from bot.messages import ChatRef, IncomingMessage, MessageKind

# isort: off
from bot.channels.wechaty import compat  # noqa: F401  (must precede the wechaty imports below)
from wechaty_puppet import MessageType  # noqa: E402
# isort: on

KINDS = {MessageType.MESSAGE_TYPE_TEXT: MessageKind.TEXT, MessageType.MESSAGE_TYPE_IMAGE: MessageKind.PHOTO,
         MessageType.MESSAGE_TYPE_ATTACHMENT: MessageKind.FILE}


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
    topic = room.payload.topic  # what `room.topic()` answers for a loaded room
    puppet_self = _puppet_self_id(session)
    mention_ids = list(payload.mention_ids or ())
    by_id = bool(puppet_self) and puppet_self in mention_ids
    if puppet_self:
        alias = await member_alias(session, rooms, room.room_id, puppet_self)
        if alias:
            names = (*names, alias)
    if by_id and kind is MessageKind.TEXT:
        text = await without_mentions(session, rooms, room.room_id, text, mention_ids)
    return IncomingMessage(chat=chat, text=text.strip(), mentioned=by_id, room_topic=topic, bot_names=names,
                           **common)


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


def _puppet_self_id(session: Any) -> str | None:
    """The account the puppet is logged in as now (what python-wechaty's `mention_self()` compares)."""
    return getattr(session.puppet, "login_user_id", None)
