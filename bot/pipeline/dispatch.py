"""From a channel's message to the reply: the gates in order, then classify, then the intent's handler.

Every incoming message from any channel passes through `Dispatcher.on_message`; this file is where to
look when the bot answered something it should not have, or stayed silent. Failures all end in one
place (`handle`): what the asker can fix is told as is, anything else becomes a short apology.

Follow-up questions are the dispatcher's too (as nonebot2's `Matcher.got` is): a handler that lacks a
slot ("从哪里出发？") calls `ctx.ask(...)`, `FollowUps` remembers what it already had for that asker in
that chat for a few minutes, and the answer ("天安门") is routed back to the asking intent — unless the
classifier sees a clearly different request — with the open question in `ctx.pending`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from loguru import logger

from bot.config import AmapConfig, chat_settings
from bot.config.live import LiveConfig
from bot.llm import LLM, LLMUnavailable
from bot.messages import IncomingMessage, Reply
from bot.pipeline.context import Context
from bot.pipeline.conversation import History, HistoryEntry
from bot.pipeline.gates import Gate, ReplyFn, Turn
from intents import ROUTE_INTENTS, Intent
from intents.base import Handler, UserInputError
from nlu.follow_ups import FollowUp, PreviousTurn, resolve_follow_up

if TYPE_CHECKING:
    from bot.jobs import JobQueue
    from services.amap import AmapClient

LLM_DOWN_REPLY = "抱歉，我的大脑（语言模型）暂时连不上，稍后再@我试试吧🙏"
NO_LLM_REPLY = ("闲聊问答要用大模型，这里还没接上，我已经告诉管理员了。"
                "查天气、问路线、找地方、画图、做视频，照样可以@我～")
NO_LLM_FIX = ("有人想和小爱闲聊，但没有配置大模型：设置环境变量 OPENAI_API_KEY（本地模型用 OPENAI_BASE_URL，"
              "如 Ollama 的 http://localhost:11434/v1，再在配置里写 llm.model）后重启小爱。")
NotifyAdmins = Callable[..., Awaitable[int]]
APOLOGY_REPLY = "抱歉，这次出了点小问题，没能完成。你可以稍后再试一次～"
INTENT_OFF_REPLY = "本群没有开通「{label}」功能哦，需要的话请找管理员开通～"

Classify = Callable[[Context], Awaitable[Intent]]


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


class LastTurns:
    """Each asker's last answered request per chat, so "那开车呢" or "换成视频吧" can lean on it without an
    LLM (with one, the LLM reads the history instead). Forgotten after `ttl_s`."""

    def __init__(self, ttl_s: float = 600.0, clock: Callable[[], float] = time.time) -> None:
        self._turns: dict[str, tuple[float, PreviousTurn]] = {}
        self.ttl_s = ttl_s
        self._clock = clock

    @staticmethod
    def _key(msg: IncomingMessage) -> str:
        return f"{msg.chat.key}|{msg.sender_id}"

    def follow_up(self, ctx: Context) -> FollowUp | None:
        """The message as a follow-up of the asker's last turn — only without an LLM, and never over an
        open question (its answer goes back to the asking intent)."""
        msg = ctx.message
        if ctx.llm.configured or self._turns.get(self._key(msg)) is None:
            return None
        at, turn = self._turns[self._key(msg)]
        if self._clock() - at > self.ttl_s:
            del self._turns[self._key(msg)]
            return None
        return resolve_follow_up(msg.text, turn)

    def remember(self, ctx: Context, intent: Intent, follow_up: FollowUp | None) -> None:
        if intent is Intent.CHAT or ctx.llm.configured:  # with an LLM, the history carries the last turn
            return
        slots = dict(ctx.slots_used) or None
        turn = PreviousTurn.from_request(intent, ctx.message.text, slots)
        if follow_up is not None and follow_up.subject:  # "换成水墨风格", then "换成视频吧": the style stays
            turn = replace(turn, subject=follow_up.subject)
        self._turns[self._key(ctx.message)] = (self._clock(), turn)


@dataclass(kw_only=True, eq=False, repr=False)  # one object, compared by identity, never printed whole
class Dispatcher:
    """A message's way through: the gates in order, then classify and the intent's handler. Holds what
    a feature's Context is made of; the composition root (bot/runtime/app.py) fills it in."""

    config: LiveConfig
    gates: list[Gate]
    classify_llm: Classify
    classify_embedded: Classify
    handlers: Mapping[Intent, Handler]
    reply: ReplyFn
    history: History
    llm: Callable[[], LLM]
    jobs: JobQueue
    amap: Callable[[AmapConfig], AmapClient]
    followups: FollowUps
    notify_admins: NotifyAdmins
    turns: LastTurns = field(default_factory=LastTurns, init=False)

    async def on_message(self, msg: IncomingMessage) -> None:
        turn: Turn | None = Turn(msg, chat_settings(self.config.current, msg.chat, msg.room_topic))
        for gate in self.gates:
            turn = await gate(turn)
            if turn is None:
                return
        msg = turn.message
        logger.info("message {} from {} in {}", msg.id, msg.sender_id, msg.chat.key)
        logger.debug("message {} text: {!r}", msg.id, msg.text)
        started = time.monotonic()
        reply = await self.handle(self.context(turn))
        if reply is not None:
            await self.reply(msg, reply)
        logger.info("message {} answered in {:.0f} ms", msg.id, (time.monotonic() - started) * 1000)

    def context(self, turn: Turn) -> Context:
        msg, settings = turn.message, turn.settings
        config = settings.config

        async def say(reply: Reply) -> bool:
            return await self.reply(msg, reply)

        history = self.history.recent(msg.chat.key, config.history)
        return Context(
            message=msg, settings=settings, config=config, history=history,
            transcript=transcript(msg, history), llm=self.llm(), jobs=self.jobs,
            amap=self.amap(config.amap), followups=self.followups, say=say,
            notify_admins=self.notify_admins,
        )

    async def handle(self, ctx: Context) -> Reply | None:
        """Classify and run the handler; every failure becomes a short reply, never silence."""
        try:
            follow_up = self.turns.follow_up(ctx)
            if follow_up is not None:  # "那开车呢": the previous turn's request, spelled out in full
                intent, pending = follow_up.intent, None
                ctx = replace(ctx, message=replace(ctx.message, text=follow_up.request))
            else:
                intent, pending = self.followups.route(ctx.message, await self.classify(ctx))
            logger.info("message {} -> {}{}", ctx.message.id, intent.module,
                        " (answer)" if pending else " (follow-up)" if follow_up else "")
            if not ctx.settings.intent_enabled(intent.module):
                return Reply(INTENT_OFF_REPLY.format(label=intent.value))
            ctx = replace(ctx, pending=pending)
            reply = await self.handlers[intent](ctx)
            if self.followups.open_question(ctx.message) is None:  # answered, not asked back
                self.turns.remember(ctx, intent, follow_up)
            return reply
        except UserInputError as exc:
            if exc.admin_detail:
                await self.tell_admins(ctx, exc.admin_detail, exc.problem)
            return Reply(str(exc))
        except LLMUnavailable as exc:
            logger.warning("message {}: LLM unavailable: {}", ctx.message.id, exc)
            if ctx.llm.configured:
                return Reply(LLM_DOWN_REPLY)
            await self.tell_admins(ctx, NO_LLM_FIX, "llm:not-configured")
            return Reply(NO_LLM_REPLY)
        except Exception:  # noqa: BLE001 - the one place unexpected errors end up
            logger.exception("message {}: handler failed", ctx.message.id)
            return Reply(APOLOGY_REPLY)

    async def tell_admins(self, ctx: Context, detail: str, problem: str | None) -> None:
        """The other audience of a problem the group was told about in plain words."""
        logger.error("message {}: {}", ctx.message.id, detail)
        try:
            await ctx.notify_admins(detail, key=problem)
        except Exception:  # noqa: BLE001 - the asker's reply must still go out
            logger.exception("message {}: telling the admins failed", ctx.message.id)

    async def classify(self, ctx: Context) -> Intent:
        """The LLM when one is configured and answers; the embedded classifier otherwise.

        Read per message, so a reload that adds or removes the LLM, or switches
        `offline.classifier.enabled`, takes effect at once (disabled and no LLM: every message is chat)."""
        embedded = ctx.config.offline.classifier.enabled
        if not ctx.llm.configured:
            return await self.classify_embedded(ctx) if embedded else Intent.CHAT
        try:
            return await self.classify_llm(ctx)
        except LLMUnavailable as exc:
            if not embedded:
                raise
            logger.warning("message {}: LLM classify failed ({}); using the embedded classifier",
                           ctx.message.id, exc)
            return await self.classify_embedded(ctx)


def transcript(msg: IncomingMessage, history: list[HistoryEntry]) -> str:
    """The recent chat before `msg`, as `name: text` lines for prompts."""
    last = history[-1] if history else None
    if last is not None and not last.from_bot and (last.sender, last.text) == (msg.sender_name, msg.text):
        history = history[:-1]  # this message itself (a bare "@小爱" has no text, so it is not there)
    return History.render(history)
