"""From a channel's message to the reply: the gates in order, then classify, then the intent's handler.

Every incoming message from any channel passes through `Dispatcher.on_message`; this file is where to
look when the bot answered something it should not have, or stayed silent. Failures all end in one
place (`handle`): what the asker can fix is told as is, anything else becomes a short apology.

The intents come from the registry (`bot.plugin`): the classifiers answer with one of its specs and
the spec's handler runs. Follow-up questions are the dispatcher's too (as nonebot2's `Matcher.got` is): a
handler that lacks a slot ("从哪里出发？") returns `ctx.ask(...)`, a `Question`; once the handler has
returned, `FollowUps` remembers what it already had for that asker in that chat for a few minutes, and
the answer ("天安门") is routed back to the asking intent — unless the classifier sees a clearly
different request — with the open question in `ctx.pending`.

With an LLM, a mention worded like chat has its chat answer started beside the classifier
(`bot.pipeline.ahead`): the classifier still decides, and the early answer is the reply only when it says
chat.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from loguru import logger

from bot.config import AmapConfig, chat_settings
from bot.config.live import LiveConfig
from bot.llm import LLM, LLMUnavailable
from bot.messages import IncomingMessage, Reply
from bot.ops.notices import Told, honest
from bot.pipeline.ahead import Ahead, AnswerAhead
from bot.pipeline.context import Answer, Context, Pending, Question
from bot.pipeline.conversation import History, HistoryEntry
from bot.pipeline.gates import Gate, ReplyFn, Turn
from intents.base import UserInputError
from nlu.follow_ups import FollowUp, PreviousTurn, resolve_follow_up

if TYPE_CHECKING:
    from bot.jobs import JobQueue
    from bot.plugin import IntentRegistry, IntentSpec
    from services.amap import AmapClient

LLM_DOWN_REPLY = "抱歉，我这会儿脑子转不过来，稍后再@我试试吧🙏"
NO_LLM_REPLY = ("我现在还不会陪你聊天，不过这些我都能帮你：查天气、问路线、找地方、画图、做视频。"
                "比如@我说「明天北京下雨吗」「画一只在雪地里的柴犬」～")
NO_LLM_FIX = ("有人想和小爱闲聊，但没有配置语言模型：在管理台「密钥」页填语言模型的密钥（本地模型填服务地址，"
              "如 Ollama 的 http://localhost:11434/v1，再在「设置」里写模型名），保存后马上生效，不用重启。"
              "也可以设置环境变量 OPENAI_API_KEY / OPENAI_BASE_URL。")
NotifyAdmins = Callable[..., Awaitable[Told]]
APOLOGY_REPLY = "抱歉，这次出了点小问题，没能完成。你可以稍后再试一次～"
INTENT_OFF_REPLY = "本群没有开通「{label}」功能哦，需要的话请找管理员开通～"

Classify = Callable[[Context], Awaitable["IntentSpec"]]


class FollowUps:
    """One open question per (chat, asker), forgotten after its time or once answered."""

    def __init__(self, clock=time.time) -> None:  # noqa: ANN001 - a float clock, replaceable in tests
        self._items: dict[str, Pending] = {}
        self._clock = clock

    @staticmethod
    def _key(msg: IncomingMessage) -> str:
        return f"{msg.chat.key}|{msg.sender_id}"

    def ask(self, msg: IncomingMessage, question: Question, ttl_s: float) -> None:
        assert question.intent is not None
        now = self._clock()
        self._items = {k: v for k, v in self._items.items() if v.expires_at > now}
        self._items[self._key(msg)] = Pending(question.kind, question.intent, dict(question.slots),
                                              question.asked, now + ttl_s)

    def open_question(self, msg: IncomingMessage) -> Pending | None:
        pending = self._items.get(self._key(msg))
        if pending is not None and pending.expires_at <= self._clock():
            self._items.pop(self._key(msg), None)
            return None
        return pending

    def route(self, msg: IncomingMessage, intent: IntentSpec) -> tuple[IntentSpec, Pending | None]:
        """The intent to handle `msg` with, and the open question it answers (now closed), if any.

        A clearly new request ("画一只猫") wins and drops the question; chat or the same intent answers
        it; switching between route modes ("那坐地铁呢") keeps the places already given."""
        pending = self.open_question(msg)
        if pending is None:
            return intent, None
        self._items.pop(self._key(msg), None)
        if intent.fallback or intent is pending.intent:
            return pending.intent, pending
        if pending.kind == "route" and intent.follow_up == "route":
            return intent, pending
        return intent, None


class LastTurns:
    """Each asker's last answered request per chat, so "那开车呢" or "换成视频吧" can lean on it without an
    LLM (with one, the LLM reads the history instead). Forgotten after `ttl_s`."""

    def __init__(self, intents: IntentRegistry, ttl_s: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.intents = intents
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
        return resolve_follow_up(msg.text, turn, self.intents)

    def remember(self, ctx: Context, intent: IntentSpec, follow_up: FollowUp | None,
                 reply: Reply | None) -> None:
        if intent.fallback or ctx.llm.configured:  # with an LLM, the history carries the last turn
            return
        slots = dict(reply.slots) if isinstance(reply, Answer) and reply.slots else None
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
    intents: IntentRegistry
    reply: ReplyFn
    history: History
    llm: Callable[[], LLM]
    jobs: JobQueue
    amap: Callable[[AmapConfig], AmapClient]
    followups: FollowUps
    notify_admins: NotifyAdmins
    turns: LastTurns = field(init=False)
    ahead: AnswerAhead = field(init=False)

    def __post_init__(self) -> None:
        self.turns = LastTurns(self.intents)
        self.ahead = AnswerAhead(self.intents)

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
        earlier = list(turn.earlier) if turn.earlier is not None else history
        return Context(
            message=msg, settings=settings, config=config, history=history,
            transcript=transcript(msg, earlier, config.history.max_messages), llm=self.llm(), jobs=self.jobs,
            amap=self.amap(config.amap), say=say, notify_admins=self.notify_admins,
        )

    async def handle(self, ctx: Context) -> Reply | None:
        """Classify and run the handler; every failure becomes a short reply, never silence."""
        ahead: Ahead | None = None  # chat's answer, started beside the classifier when likely chat
        try:
            follow_up = self.turns.follow_up(ctx)
            if follow_up is not None:  # "那开车呢": the previous turn's request, spelled out in full
                intent, pending = follow_up.intent, None
                ctx = replace(ctx, message=replace(ctx.message, text=follow_up.request))
            else:
                ahead = self.ahead.begin(ctx, self.followups.open_question(ctx.message))
                intent, pending = self.followups.route(ctx.message, await self.classify(ctx))
            logger.info("message {} -> {}{}", ctx.message.id, intent.name,
                        " (answer)" if pending else " (follow-up)" if follow_up else "")
            if not ctx.settings.intent_enabled(intent.name):
                return Reply(INTENT_OFF_REPLY.format(label=intent.label))
            ctx = replace(ctx, intent=intent, pending=pending)
            try:
                if ahead is not None and intent is self.intents.fallback and pending is None:
                    reply = await ahead.answer()  # chat after all: the answer started ahead
                else:
                    reply = await intent.handler(ctx)
            except Exception:  # failed: a follow-up ("那上海呢") still means the same request again
                self.turns.remember(ctx, intent, follow_up, None)
                raise
            if isinstance(reply, Question):  # asked back: the answer comes to this intent
                self.followups.ask(ctx.message, reply, ctx.config.amap.pending_minutes * 60)
            else:
                self.turns.remember(ctx, intent, follow_up, reply)
            return reply
        except UserInputError as exc:
            if not exc.admin_detail:
                return Reply(str(exc))
            return Reply(honest(str(exc), await self.tell_admins(ctx, exc.admin_detail, exc.problem)))
        except LLMUnavailable as exc:
            logger.warning("message {}: LLM unavailable: {}", ctx.message.id, exc)
            if ctx.llm.configured:
                return Reply(LLM_DOWN_REPLY)
            return Reply(honest(NO_LLM_REPLY, await self.tell_admins(ctx, NO_LLM_FIX, "llm:not-configured")))
        except Exception:  # noqa: BLE001 - the one place unexpected errors end up
            logger.exception("message {}: handler failed", ctx.message.id)
            return Reply(APOLOGY_REPLY)
        finally:
            if ahead is not None:  # not chat after all, or the classifier failed: never sent, never logged
                ahead.drop()

    async def tell_admins(self, ctx: Context, detail: str, problem: str | None) -> Told:
        """The other audience of a problem the group is told about in plain words."""
        logger.error("message {}: {}", ctx.message.id, detail)
        try:
            return await ctx.notify_admins(detail, key=problem)
        except Exception:  # noqa: BLE001 - the asker's reply must still go out
            logger.exception("message {}: telling the admins failed", ctx.message.id)
            return Told.NOT_REACHED

    async def classify(self, ctx: Context) -> IntentSpec:
        """The LLM when one is configured and answers; the embedded classifier otherwise.

        Read per message, so a reload that adds or removes the LLM, or switches
        `offline.classifier.enabled`, takes effect at once (disabled and no LLM: every message is chat)."""
        embedded = ctx.config.offline.classifier.enabled
        if not ctx.llm.configured:
            return await self.classify_embedded(ctx) if embedded else self.intents.fallback
        try:
            return await self.classify_llm(ctx)
        except LLMUnavailable as exc:
            if not embedded:
                raise
            logger.warning("message {}: LLM classify failed ({}); using the embedded classifier",
                           ctx.message.id, exc)
            return await self.classify_embedded(ctx)


def transcript(msg: IncomingMessage, earlier: list[HistoryEntry], max_messages: int) -> str:
    """The recent chat before `msg`, as `name: text` lines for prompts: the history as it was before this
    message, one line shorter when this message itself takes a place in the window."""
    keep = max_messages - 1 if msg.text else max_messages
    return History.render(earlier[-keep:] if keep > 0 else [])
