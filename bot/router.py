"""Mention gate -> classify -> the intent's handler -> reply @asker, plus the single error route.

Every incoming message from any channel passes through `Router.on_message`; this file is where to look
when the bot answered something it should not have, or stayed silent.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from loguru import logger

from bot.admin import handle_admin_command
from bot.channels.base import IncomingMessage, MessageKind, Reply
from bot.context import Context
from bot.llm import LLMUnavailable
from intents import REGISTRY, Intent
from intents.base import UserInputError
from intents.classify import classify

if TYPE_CHECKING:
    from bot.app import Application

LLM_DOWN_REPLY = "抱歉，我的大脑（语言模型）暂时连不上，稍后再@我试试吧🙏"
NO_LLM_REPLY = ("闲聊问答和提示词润色要用大模型，这里还没配置（管理员设置 OPENAI_API_KEY 就行）。"
                "查天气、问路线、找地方、画图、做视频，照样可以@我～")
APOLOGY_REPLY = "抱歉，这次出了点小问题，没能完成。你可以稍后再试一次～"
INTENT_OFF_REPLY = "本群没有开通「{label}」功能哦，需要的话请找管理员开通～"


class Router:
    def __init__(self, app: Application) -> None:
        self.app = app
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.room_ids: dict[str, str] = {}  # room topic -> room id, as seen in messages

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
        if not self._first_time(msg.id, config.bot.dedup_size):
            return
        if msg.room_topic:
            self.room_ids[msg.room_topic] = msg.chat.chat_id  # schedules may name a room by its topic
        # Admin commands come first: they work in rooms not (yet) allowed and in private chat.
        if await handle_admin_command(self.app, msg) or not self._allowed(msg):
            return
        settings = config.for_chat(msg.chat, msg.room_topic)
        config = settings.config  # this room's persona etc. over the global defaults
        if not msg.mentioned and (text := settings.strip_keyword(msg.text)) is not None:
            msg = replace(msg, text=text, mentioned=True)  # "小爱，明天下雨吗" where keywords are on
        if msg.kind is not MessageKind.TEXT:
            # Photos and stickers fly around family groups all day: only answer when addressed.
            if msg.mentioned:
                await self.app.reply(msg, Reply(config.bot.non_text_reply))
            return
        self.app.history.add(msg.chat.key, msg.sender_name, msg.text, timestamp=msg.timestamp)
        if not msg.mentioned:
            return
        quotas = self.app.quotas
        if quotas is not None and (refusal := quotas.check_message(msg, settings)) is not None:
            if refusal:
                await self.app.reply(msg, Reply(refusal))
            return
        started = time.monotonic()
        logger.info("message {} from {} in {}", msg.id, msg.sender_id, msg.chat.key)
        logger.debug("message {} text: {!r}", msg.id, msg.text)  # what people say stays out of INFO
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
        logger.info("message {} answered in {:.2f} s", msg.id, time.monotonic() - started)

    async def handle(self, ctx: Context) -> Reply | None:
        """Classify and run the handler; every failure becomes a short reply, never silence."""
        try:
            intent = await self.app.classifier(ctx)
            logger.info("message {} -> {}", ctx.message.id, intent.module)
            settings = ctx.config.for_chat(ctx.message.chat, ctx.message.room_topic)
            if not settings.intent_enabled(intent.module):
                return Reply(INTENT_OFF_REPLY.format(label=intent.value))
            return await REGISTRY[intent](ctx)
        except UserInputError as exc:
            return Reply(str(exc))
        except LLMUnavailable as exc:
            logger.warning("message {}: LLM unavailable: {}", ctx.message.id, exc)
            return Reply(LLM_DOWN_REPLY if ctx.llm.configured else NO_LLM_REPLY)
        except Exception:  # noqa: BLE001 - the one place unexpected errors end up
            logger.exception("message {}: handler failed", ctx.message.id)
            return Reply(APOLOGY_REPLY)


async def llm_classifier(ctx: Context) -> Intent:
    return await classify(ctx)
