"""Recent chat history per chat: the last N messages within M minutes, in memory.

The classifier, the chat answer and the prompt rewriters all read the same window, so "that one, but
as a video" works after a few messages about a panda.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

from bot.config import HistoryConfig


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
