"""One Context per handled message, built in one place (the router) and passed to the intent handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import AppConfig
from bot.history import History, HistoryEntry
from bot.llm import LLM
from bot.messages import IncomingMessage, Reply

if TYPE_CHECKING:
    from bot.app import Application


@dataclass(frozen=True)
class Context:
    message: IncomingMessage
    config: AppConfig  # a snapshot: read it here, never cache it past this message
    history: list[HistoryEntry]  # recent messages in this chat, oldest first, this one last when it has text
    llm: LLM
    app: Application
    say: Callable[[Reply], Awaitable[None]]  # send now (acks, progress); the handler's return comes last

    @property
    def transcript(self) -> str:
        """The recent chat before this message, as `name: text` lines for prompts."""
        entries = self.history
        last = entries[-1] if entries else None
        if last is not None and not last.from_bot and (last.sender, last.text) == (
                self.message.sender_name, self.message.text):
            entries = entries[:-1]  # this message itself (a bare "@小爱" has no text, so it is not there)
        return History.render(entries)
