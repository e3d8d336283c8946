"""What was said in each chat, and the one way to say more.

`History` keeps the last N messages within M minutes per chat, in memory: the classifier, the chat
answer and the prompt rewriters all read the same window, so "that one, but as a video" works after a
few messages about a panda. `Sender` is the path every reply, job result, alert and schedule takes to
the channel; it records the bot's own lines in that history, and reports a failed send as False instead
of raising, so callers decide whether to retry (the job outbox does).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

from loguru import logger

from bot.channels.base import Channel
from bot.config import HistoryConfig
from bot.config.live import LiveConfig
from bot.messages import ChatRef, IncomingMessage, Reply


@dataclass(frozen=True)
class HistoryEntry:
    sender: str  # display name; the bot's own lines use the bot's name
    text: str
    from_bot: bool
    timestamp: float


class History:
    def __init__(self) -> None:
        self._chats: dict[str, deque[HistoryEntry]] = defaultdict(lambda: deque(maxlen=200))

    def add(self, chat_key: str, sender: str, text: str, *, from_bot: bool = False,
            timestamp: float | None = None) -> None:
        if text:
            self._chats[chat_key].append(
                HistoryEntry(sender, text, from_bot, time.time() if timestamp is None else timestamp)
            )

    def recent(self, chat_key: str, config: HistoryConfig, now: float | None = None) -> list[HistoryEntry]:
        now = time.time() if now is None else now
        cutoff = now - config.max_age_minutes * 60
        entries = [e for e in self._chats.get(chat_key, ()) if e.timestamp >= cutoff]
        return entries[-config.max_messages:]

    def prune(self, before: float) -> int:
        """Forget messages older than `before` (the nightly cleanup); returns how many were dropped."""
        dropped = 0
        for key in list(self._chats):
            entries = self._chats[key]
            while entries and entries[0].timestamp < before:
                entries.popleft()
                dropped += 1
            if not entries:
                del self._chats[key]
        return dropped

    @staticmethod
    def render(entries: list[HistoryEntry]) -> str:
        """Plain transcript lines for prompts: `name: text`."""
        return "\n".join(f"{e.sender}: {e.text}" for e in entries) or "（没有更早的消息）"


class Sender:
    def __init__(self, channel: Channel, history: History, config: LiveConfig) -> None:
        self._channel = channel
        self._history = history
        self._config = config

    @property
    def connected(self) -> bool:
        return self._channel.connected

    async def send(self, chat: ChatRef, reply: Reply) -> bool:
        """Send and record the bot's line in the history; False (logged) when the channel failed."""
        try:
            await self._channel.send(chat, reply)
        except Exception as exc:  # noqa: BLE001 - callers decide whether to retry
            logger.warning("send to {} failed: {}", chat.key, exc)
            return False
        if reply.text:
            self._history.add(chat.key, self._config.current.bot.name, reply.text, from_bot=True)
        return True

    async def reply(self, msg: IncomingMessage, reply: Reply) -> bool:
        """Answer `msg` in its chat, @-mentioning the asker in rooms."""
        if msg.chat.is_room and not reply.mention_ids:
            reply = Reply(reply.text, reply.file, (msg.sender_id,))
        return await self.send(msg.chat, reply)
