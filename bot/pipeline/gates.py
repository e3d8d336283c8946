"""The gates every message passes, in order, before it is classified (python-telegram-bot's handler
groups, nonebot2's preprocessors). Each gate returns the message to go on with — possibly rewritten —
or None to stop: answered already, or deliberately silent. `Dispatcher` runs them in list order.

    Dedup -> self_echo -> RoomDirectory -> typed_mention -> AdminGate -> allow_list -> addressing -> NonText
          -> Record -> mention_only -> RateLimit
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from bot.config import ChatSettings
from bot.messages import IncomingMessage, MessageKind, Reply
from bot.pipeline.conversation import History, HistoryEntry
from bot.pipeline.photos import PhotoStore
from generators.photos import NOT_A_PHOTO, UNREADABLE, PhotoRefused

if TYPE_CHECKING:
    from bot.pipeline.context import Pending


@dataclass(frozen=True)
class Turn:
    """One message on its way through the gates, with this chat's settings (room overrides applied)."""

    message: IncomingMessage
    settings: ChatSettings
    earlier: tuple[HistoryEntry, ...] | None = None  # the chat before this message (the Record gate)


class Gate(Protocol):
    async def __call__(self, turn: Turn) -> Turn | None: ...


ReplyFn = Callable[[IncomingMessage, Reply], Awaitable[bool]]


class Dedup:
    """Once per message id: puppets replay events, and one question deserves one answer."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def __call__(self, turn: Turn) -> Turn | None:
        message_id = turn.message.id
        if message_id in self._seen:
            return None
        self._seen[message_id] = None
        while len(self._seen) > turn.settings.config.bot.dedup_size:
            self._seen.popitem(last=False)
        return turn


async def self_echo(turn: Turn) -> Turn | None:
    """Platforms echo the bot's own messages back."""
    return None if turn.message.from_self else turn


class RoomDirectory:
    """Room topic -> id as seen in messages: schedules name rooms by topic."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    async def __call__(self, turn: Turn) -> Turn | None:
        msg = turn.message
        if msg.room_topic and msg.chat.is_room:
            self.ids[msg.room_topic] = msg.chat.chat_id
        return turn


_SEPARATORS = "\u2005\u0020\u00a0"


def strip_mention(text: str, names: list[str]) -> tuple[bool, str]:
    """Find a typed/pasted `@<name>` (followed by U+2005, a space or the end) and remove it.

    Returns (found, text without it). Pasted or typed @-mentions from real WeChat clients carry no
    mention id, so the platform cannot tell: the configured names and the ones the channel saw decide."""
    found = False
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        pattern = re.compile(rf"@{re.escape(name)}(?:[{_SEPARATORS}]+|$)")
        text, count = pattern.subn(" ", text)
        found = found or count > 0
    return found, text.strip()


async def typed_mention(turn: Turn) -> Turn | None:
    """A typed `@小爱` counts as a mention in rooms (and is removed from the text everywhere)."""
    msg, bot = turn.message, turn.settings.config.bot
    found, text = strip_mention(msg.text, [bot.name, *bot.aliases, *msg.bot_names])
    if not found:
        return turn
    return replace(turn, message=replace(msg, text=text, mentioned=msg.mentioned or msg.chat.is_room))


class AdminGate:
    """Admins' "#..." commands run first: they work in rooms not (yet) allowed and in private chat."""

    def __init__(self, run_command: Callable[[IncomingMessage], Awaitable[bool]]) -> None:
        self._run = run_command

    async def __call__(self, turn: Turn) -> Turn | None:
        msg = turn.message
        if (msg.kind is MessageKind.TEXT and msg.text.lstrip()[:1] in "#＃"
                and msg.sender_id in turn.settings.config.bot.admins and await self._run(msg)):
            return None
        return turn


async def allow_list(turn: Turn) -> Turn | None:
    msg, config = turn.message, turn.settings.config
    if msg.chat.is_room:
        return turn if config.groups.allows(msg.chat.chat_id, msg.room_topic) else None
    return turn if config.bot.private_chat else None


_NAME_TAIL = re.compile(r"^[\s\u2005\u00a0,，:：、!！~～]+")


def strip_leading_name(text: str, names: list[str]) -> str | None:
    """The text after the bot's name when the message starts with it and a pause ("小爱，…", "小爱 …");
    None otherwise ("小爱真可爱" is about the bot, not to it)."""
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        if text.startswith(name) and (tail := _NAME_TAIL.match(text[len(name):])) is not None:
            return text[len(name) + tail.end():]
    return None


async def addressing(turn: Turn) -> Turn | None:
    """"小爱，明天下雨吗" counts as addressed: the bot's own name first (always), or a `groups.keywords`."""
    msg, bot = turn.message, turn.settings.config.bot
    if msg.mentioned:
        return turn
    text = turn.settings.strip_keyword(msg.text)
    if text is None:
        text = strip_leading_name(msg.text, [bot.name, *bot.aliases, *msg.bot_names])
    if text is not None:
        return replace(turn, message=replace(msg, text=text, mentioned=True))
    return turn


@dataclass
class NonText:
    """Photos and stickers fly around family groups all day: only answer when addressed."""

    reply: ReplyFn

    async def __call__(self, turn: Turn) -> Turn | None:
        if turn.message.kind is MessageKind.TEXT:
            return turn
        if turn.message.mentioned:
            await self.reply(turn.message, Reply(turn.settings.config.bot.non_text_reply))
        return None


@dataclass
class Record:
    """Every text line in an allowed chat goes into the history the prompts read, addressed or not."""

    history: History

    async def __call__(self, turn: Turn) -> Turn | None:
        msg = turn.message
        earlier = self.history.recent(msg.chat.key, turn.settings.config.history, now=msg.timestamp)
        self.history.add(msg.chat.key, msg.sender_name, msg.text, timestamp=msg.timestamp)
        return replace(turn, earlier=tuple(earlier))  # the prompts' transcript: nothing to strip later


async def mention_only(turn: Turn) -> Turn | None:
    return turn if turn.message.mentioned else None


USER_RATE_REPLY = "你发得有点快啦，我一分钟最多回你 {limit} 条，歇一会儿再@我吧～"
GROUP_RATE_REPLY = "大家问得太快啦，本群一分钟最多 {limit} 条，我缓一缓，稍后再@我吧～"
WINDOW_S = 60.0


class RateLimit:
    """Messages a minute per person (in one chat) and per group, before anything costly (the LLM).

    Told once, then quiet until the sender is under the limit again; a limit of 0 means "not offered
    here" (deliberately silent). Admins are exempt. Counts live in memory: a minute's window."""

    def __init__(self, reply: ReplyFn, clock: Callable[[], float] = time.time) -> None:
        self._reply = reply
        self.clock = clock
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._told: set[str] = set()

    async def __call__(self, turn: Turn) -> Turn | None:
        refusal = self.check(turn.message, turn.settings)
        if refusal is None:
            return turn
        if refusal:
            await self._reply(turn.message, Reply(refusal))
        return None

    def check(self, msg: IncomingMessage, settings: ChatSettings) -> str | None:
        """None: go ahead (and counted). Else the reply to give; "" = stay quiet (already told)."""
        if msg.sender_id in settings.config.bot.admins:
            return None
        now = self.clock()
        limits = settings.quotas
        checks = [(f"user:{msg.chat.key}:{msg.sender_id}", limits.user_messages_per_minute, USER_RATE_REPLY)]
        if msg.chat.is_room:
            checks.append((f"group:{msg.chat.key}", limits.group_messages_per_minute, GROUP_RATE_REPLY))
        for key, limit, reply in checks:
            if limit is None:
                continue
            if limit == 0:
                return ""
            window = self._recent[key]
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            if len(window) >= limit:
                if key in self._told:
                    return ""
                self._told.add(key)
                return reply.format(limit=limit)
        for key, limit, _reply in checks:
            if limit is not None:
                self._recent[key].append(now)
                self._told.discard(key)
        return None


# -- photos -------------------------------------------------------------------------------------------
# Every photo in an allowed chat is kept (`bot.pipeline.photos.PhotoStore`), silently; a photo that
# answers the bot's "把照片发给我吧" becomes the asker's request again, now with the photo. Something that
# is no photo (a PDF, a broken or huge file) is answered kindly only when the sender was asked for a
# photo or addressed the bot; otherwise it is dropped like any picture posted without an @. Which photo
# a request uses ("the asker's latest in this room") is the photo flow's to find (intents/photo_video.py).

PHOTO_HINT = "收到照片啦📷 想让它动起来，就跟我说「让这张照片动起来」。"
PHOTO_SLOT = "photo"  # what the open question asks for when the bot asked for a photo
REQUEST_SLOT = "request"  # the words of the request that is waiting for the photo


class OpenQuestions(Protocol):
    """The dispatcher's follow-ups, as far as the photo gate reads them."""

    def open_question(self, message: IncomingMessage) -> Pending | None: ...


@dataclass
class PhotoGate:
    """Keeps photos and hands them to the request that waits for one."""

    store: PhotoStore
    followups: OpenQuestions
    reply: ReplyFn

    def waiting(self, turn: Turn) -> Pending | None:
        pending = self.followups.open_question(turn.message)
        return pending if pending is not None and pending.asked == PHOTO_SLOT else None

    async def __call__(self, turn: Turn) -> Turn | None:
        msg = turn.message
        if msg.kind not in (MessageKind.PHOTO, MessageKind.FILE):
            return turn
        pending = self.waiting(turn)
        try:
            if msg.kind is MessageKind.FILE:
                raise PhotoRefused(NOT_A_PHOTO)
            if msg.attachment is None:  # the channel could not download it, even on the retry
                raise PhotoRefused(UNREADABLE)
            stored = await asyncio.to_thread(self.store.save, msg.chat, msg.sender_id, msg.attachment,
                                             msg.timestamp)
        except PhotoRefused as exc:
            logger.info("message {}: not kept as a photo: {}", msg.id, exc)
            if pending is not None or msg.mentioned:
                await self.reply(msg, Reply(str(exc)))
            return None
        logger.info("message {}: photo kept ({} bytes)", msg.id, len(msg.attachment or b""))
        if pending is None:  # kept for a later request; only a photo sent to the bot itself is answered
            if msg.mentioned:
                await self.reply(msg, Reply(PHOTO_HINT))
            return None
        request = pending.slots.get(REQUEST_SLOT, "")
        answered = replace(msg, kind=MessageKind.TEXT, text=request, mentioned=True, photo=stored.path,
                           attachment=None)
        return replace(turn, message=answered)
