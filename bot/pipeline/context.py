"""One Context per handled message, built by the dispatcher and passed to the intent's handler.

It carries exactly what features use — this chat's settings, the recent history, the LLM, the job
queue, the AMap client, the intent the message was routed to and the open question it answers.

A handler that lacks a slot returns `ctx.ask(...)`: a `Question`, a reply that also says what it waits
for. The dispatcher remembers it once the handler has returned, so nothing calls back into the
dispatcher while it waits on the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import AppConfig, ChatSettings
from bot.llm import LLM
from bot.messages import IncomingMessage, Reply
from bot.ops.notices import Told
from bot.pipeline.conversation import HistoryEntry

if TYPE_CHECKING:
    from bot.jobs import JobQueue
    from bot.plugin import IntentSpec
    from services.amap import AmapClient


@dataclass(frozen=True)
class Pending:
    """A question the bot asked and the slots it already had when asking."""

    kind: str  # the slot prompt's name: "weather" | "route" | "places" (the intent's follow-up kind)
    intent: IntentSpec
    slots: dict[str, str]
    asked: str  # the slot the question asks for
    expires_at: float


@dataclass(frozen=True)
class Question(Reply):
    """A reply that asks the asker for a missing slot; their answer comes back to `intent`."""

    kind: str = ""
    intent: IntentSpec | None = None
    slots: Mapping[str, str] = field(default_factory=dict)
    asked: str = ""


@dataclass(frozen=True)
class Answer(Reply):
    """A reply and the slots it was based on, remembered for a follow-up such as "那开车呢"."""

    slots: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    message: IncomingMessage
    settings: ChatSettings[AppConfig]  # this chat's settings (intents on/off, quotas, keywords)
    config: AppConfig  # the whole config with this chat's settings applied: read it here, never cache it
    history: list[HistoryEntry]  # recent messages in this chat, oldest first, this one last when it has text
    transcript: str  # the recent chat before this message, as `name: text` lines for prompts
    llm: LLM
    jobs: JobQueue
    amap: AmapClient
    say: Callable[[Reply], Awaitable[bool]]  # send now (acks, progress); the handler's return comes last
    # a private note with the exact fix to the admins, once per `key` (what the group hears stays plain)
    notify_admins: Callable[..., Awaitable[Told]]  # Told.YES once an admin has it
    intent: IntentSpec | None = None  # the intent the dispatcher routed this message to
    pending: Pending | None = None  # the bot's open question this message answers, set by the dispatcher

    def ask(self, slots: Mapping[str, str], asked: str, question: str) -> Question:
        """Ask the asker for the missing slot `asked`; their answer comes back to this intent with
        these slots (remembered for `amap.pending_minutes`)."""
        assert self.intent is not None and self.intent.follow_up is not None, "only a routed intent asks"
        return Question(question, kind=self.intent.follow_up, intent=self.intent, slots=dict(slots),
                        asked=asked)
