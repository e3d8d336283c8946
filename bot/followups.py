"""Questions the bot asked and is waiting for an answer to — owned by the dispatcher, not by a feature.

A handler that lacks a slot ("从哪里出发？") calls `ctx.ask(...)`: the dispatcher remembers the slots it
already has for that asker in that chat for a few minutes. The answer ("天安门") is classified like any
message; `route` sends it back to the asking intent unless the classifier sees a clearly different
request, and the handler finds the open question in `ctx.pending`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.messages import IncomingMessage
from intents import ROUTE_INTENTS, Intent


@dataclass(frozen=True)
class Pending:
    """A question the bot asked and the slots it already had when asking."""

    kind: str  # the slot prompt's name: "weather" | "route" | "places"
    intent: Intent
    slots: dict[str, str]
    asked: str  # the slot the question asks for
    expires_at: float


class FollowUps:
    """One open question per (chat, asker), forgotten after its time or once answered."""

    def __init__(self, clock=time.time) -> None:  # noqa: ANN001 - a float clock, replaceable in tests
        self._items: dict[str, Pending] = {}
        self._clock = clock

    @staticmethod
    def _key(msg: IncomingMessage) -> str:
        return f"{msg.chat.key}|{msg.sender_id}"

    def ask(self, msg: IncomingMessage, kind: str, intent: Intent, slots: dict[str, str], asked: str,
            ttl_s: float) -> None:
        now = self._clock()
        self._items = {k: v for k, v in self._items.items() if v.expires_at > now}
        self._items[self._key(msg)] = Pending(kind, intent, dict(slots), asked, now + ttl_s)

    def open_question(self, msg: IncomingMessage) -> Pending | None:
        pending = self._items.get(self._key(msg))
        if pending is not None and pending.expires_at <= self._clock():
            self._items.pop(self._key(msg), None)
            return None
        return pending

    def route(self, msg: IncomingMessage, intent: Intent) -> tuple[Intent, Pending | None]:
        """The intent to handle `msg` with, and the open question it answers (now closed), if any.

        A clearly new request ("画一只猫") wins and drops the question; chat or the same intent answers
        it; switching between route modes ("那坐地铁呢") keeps the places already given."""
        pending = self.open_question(msg)
        if pending is None:
            return intent, None
        self._items.pop(self._key(msg), None)
        if intent in (Intent.CHAT, pending.intent):
            return pending.intent, pending
        if pending.kind == "route" and intent in ROUTE_INTENTS:
            return intent, pending
        return intent, None
