"""One Context per handled message, built by the dispatcher and passed to the intent's handler.

It carries exactly what features use — this chat's settings, the recent history, the LLM, the job
queue, the AMap client, and the open question this message answers — with no optional holes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import AppConfig, ChatSettings
from bot.llm import LLM
from bot.messages import IncomingMessage, Reply
from bot.pipeline.conversation import HistoryEntry

if TYPE_CHECKING:
    from bot.jobs import JobQueue
    from bot.pipeline.dispatch import FollowUps, Pending
    from intents import Intent
    from services.amap import AmapClient


@dataclass(frozen=True)
class Context:
    message: IncomingMessage
    settings: ChatSettings  # this chat's settings (intents on/off, quotas, keywords)
    config: AppConfig  # the whole config with this chat's settings applied: read it here, never cache it
    history: list[HistoryEntry]  # recent messages in this chat, oldest first, this one last when it has text
    transcript: str  # the recent chat before this message, as `name: text` lines for prompts
    llm: LLM
    jobs: JobQueue
    amap: AmapClient
    followups: FollowUps
    say: Callable[[Reply], Awaitable[bool]]  # send now (acks, progress); the handler's return comes last
    # a private note with the exact fix to the admins, once per `key` (what the group hears stays plain)
    notify_admins: Callable[..., Awaitable[int]]
    pending: Pending | None = None  # the bot's open question this message answers, set by the dispatcher
    slots_used: dict[str, str] = field(default_factory=dict)  # what an AMap handler answered with

    def ask(self, kind: str, intent: Intent, slots: dict[str, str], asked: str, question: str) -> Reply:
        """Ask the asker for a missing slot; their answer comes back to `intent` with these slots."""
        self.followups.ask(self.message, kind, intent, slots, asked, self.config.amap.pending_minutes * 60)
        return Reply(question)
