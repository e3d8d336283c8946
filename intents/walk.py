"""步行规划: the shared route flow in intents/routes.py, in 步行 mode."""

from __future__ import annotations

from bot.messages import Reply
from bot.pipeline.context import Context
from intents.routes import WALK, handle_route


async def handle(ctx: Context) -> Reply:
    return await handle_route(ctx, WALK)
