"""Stand-in intent handlers for routing tests: each records that its intent was reached and answers
"handled <module>", so a test sees which handler the router picked without running the real one."""

from __future__ import annotations

from typing import Any

import pytest

import intents
from bot.messages import Reply
from intents import Intent


def record_handlers(monkeypatch: pytest.MonkeyPatch) -> list[Intent]:
    """Replace every registered handler for this test; the list fills with the intents reached."""
    reached: list[Intent] = []

    def recorder(intent: Intent):
        async def handle(ctx: Any) -> Reply:
            reached.append(intent)
            return Reply(f"handled {intent.module}")
        return handle

    for intent in Intent:
        monkeypatch.setitem(intents.REGISTRY, intent, recorder(intent))
    return reached
