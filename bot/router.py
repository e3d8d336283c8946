"""Mention gate -> classify -> the intent's handler -> reply @asker, plus the single error route.

Every incoming message from any channel passes through `Router.on_message`; this file is where to look
when the bot answered something it should not have, or stayed silent.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from loguru import logger

from bot.channels.base import IncomingMessage, MessageKind, Reply
from bot.context import Context
from bot.llm import LLMUnavailable
from intents import REGISTRY, Intent
from intents.base import UserInputError
from intents.classify import classify

if TYPE_CHECKING:
    from bot.app import Application

LLM_DOWN_REPLY = "抱歉，我的大脑（语言模型）暂时连不上，稍后再@我试试吧🙏"
APOLOGY_REPLY = "抱歉，这次出了点小问题，没能完成。你可以稍后再试一次～"


class Router:
    def __init__(self, app: Application) -> None:
        self.app = app
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _first_time(self, message_id: str, limit: int) -> bool:
        """True once per message id: puppets replay events, and one question deserves one answer."""
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        while len(self._seen) > limit:
            self._seen.popitem(last=False)
        return True

    def _allowed(self, msg: IncomingMessage) -> bool:
        config = self.app.config
        if msg.chat.is_room:
            return config.groups.allows(msg.chat.chat_id, msg.room_topic)
        return config.bot.private_chat

    async def on_message(self, msg: IncomingMessage) -> None:
        config = self.app.config
        if not self._allowed(msg) or not self._first_time(msg.id, config.bot.dedup_size):
            return
        if msg.kind is not MessageKind.TEXT:
            # Photos and stickers fly around family groups all day: only answer when addressed.
            if msg.mentioned:
                await self.app.reply(msg, Reply(config.bot.non_text_reply))
            return
        self.app.history.add(msg.chat.key, msg.sender_name, msg.text, timestamp=msg.timestamp)
        if not msg.mentioned:
            return
        logger.info("message {} from {} in {}: {!r}", msg.id, msg.sender_name, msg.chat.key, msg.text)
        ctx = Context(
            message=msg,
            config=config,
            history=self.app.history.recent(msg.chat.key, config.history),
            llm=self.app.llm,
            app=self.app,
            say=lambda reply: self.app.reply(msg, reply),
        )
        reply = await self.handle(ctx)
        if reply is not None:
            await self.app.reply(msg, reply)

    async def handle(self, ctx: Context) -> Reply | None:
        """Classify and run the handler; every failure becomes a short reply, never silence."""
        try:
            intent = await self.app.classifier(ctx)
            logger.info("message {} -> {}", ctx.message.id, intent.module)
            return await REGISTRY[intent](ctx)
        except UserInputError as exc:
            return Reply(str(exc))
        except LLMUnavailable as exc:
            logger.warning("message {}: LLM unavailable: {}", ctx.message.id, exc)
            return Reply(LLM_DOWN_REPLY)
        except Exception:  # noqa: BLE001 - the one place unexpected errors end up
            logger.exception("message {}: handler failed", ctx.message.id)
            return Reply(APOLOGY_REPLY)


async def llm_classifier(ctx: Context) -> Intent:
    return await classify(ctx)
