"""Stand-in intent handlers for routing tests: each records that its intent was reached and answers
"handled <name>", so a test sees which handler the router picked without running the real one."""

from __future__ import annotations

from typing import Any

import pytest

from bot.messages import Reply
from bot.plugin import IntentSpec
from tests.support.builtin_intents import Intent


def record_handlers(monkeypatch: pytest.MonkeyPatch) -> list[IntentSpec]:
    """Replace every built-in intent's handler for this test; the list fills with the intents reached."""
    reached: list[IntentSpec] = []

    def recorder(intent: IntentSpec):
        async def handle(ctx: Any) -> Reply:
            reached.append(intent)
            return Reply(f"handled {intent.name}")
        return handle

    for intent in Intent:
        monkeypatch.setattr(intent, "handler", recorder(intent))
        monkeypatch.setattr(intent, "answer_ahead", False)  # recording is an effect: only what was routed
    return reached
