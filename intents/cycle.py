"""骑行规划: the shared route flow in intents/routes.py, in 骑行 mode."""

from __future__ import annotations

from bot.context import Context
from bot.messages import Reply
from intents.routes import CYCLE, handle_route


async def handle(ctx: Context) -> Reply:
    return await handle_route(ctx, CYCLE)
