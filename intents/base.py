"""What every intent handler is, and the one exception type whose message the user sees."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.context import Context
    from bot.messages import Reply

Handler = Callable[["Context"], Awaitable["Reply | None"]]
"""`async def handle(ctx) -> Reply | None`: None means "already answered" (or deliberate silence)."""


class UserInputError(Exception):
    """A problem the asker can fix (a missing place, a bad frame count). Its message is shown as is."""


def not_enabled(feature: str) -> str:
    return f"「{feature}」功能还没有开通，管理员正在准备中，先陪你聊聊别的吧～"
