"""天气: not built yet; tells the asker plainly instead of guessing. Replaced by its own issue."""

from __future__ import annotations

from bot.channels.base import Reply
from bot.context import Context
from intents.base import not_enabled


async def handle(ctx: Context) -> Reply:
    return Reply(not_enabled("天气"))
