"""What the six AMap intents (天气, 四种路线, 地点推荐) share: slot extraction by the LLM, the short
question back when a slot is missing, the follow-up that completes it, and errors in plain Chinese.

Follow-ups: when a handler asks "从哪里出发？" it remembers the slots it already has for that asker in
that chat (`PendingQuestions`, a few minutes). The answer ("天安门") is classified again like every
message; `follow_up_classifier` sends it back to the asking intent unless the classifier sees a clearly
different request. The handler then merges the stored slots with what the LLM reads from the answer
(the prompt also gets the recent history), and takes the bare answer as the asked slot when the LLM
returns nothing for it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from loguru import logger

from bot.channels.base import IncomingMessage, Reply
from bot.config import AmapConfig
from bot.llm import ChatMessage, LLMUnavailable
from intents import Intent
from intents.chat import fit_bubble
from intents.rule_slots import rule_slots
from prompts import render
from services.amap import (
    KEY_ENV,
    AmapBusy,
    AmapClient,
    AmapError,
    AmapKeyRejected,
    AmapNoKey,
    AmapNoRoute,
    AmapQuotaExceeded,
    AmapUnavailable,
    key_from_env,
)

if TYPE_CHECKING:
    from bot.app import Application
    from bot.context import Context

ROUTE_INTENTS = frozenset({Intent.WALK, Intent.CYCLE, Intent.DRIVE, Intent.TRANSIT})
_EMPTY_VALUES = {"", "null", "none", "无", "未知", "不知道", "没有", "未提及", "n/a"}
_ANSWER_NOISE = re.compile(r"^(?:从|在|去|到|是|就)|(?:出发|吧|呀|啊|哦|呢|附近|那边|这边)$")
_PUNCTUATION = " \t\r\n，。！？,.!?~～、；;：:\"'“”‘’「」"
MAX_BARE_ANSWER = 20  # longer follow-ups are sentences, not a bare place name


# -- errors in plain Chinese ----------------------------------------------------------------------------
def explain(exc: AmapError) -> str:
    """The user-facing sentence for an AMap failure; admins get the how-to for a missing key."""
    if isinstance(exc, AmapNoKey):
        return ("我还没接上高德地图，暂时查不了天气、路线和地点。"
                "请管理员在高德开放平台申请「Web服务」类型的 Key，"
                f"设置环境变量 {KEY_ENV}=你的Key 后重启小爱。")
    if isinstance(exc, AmapKeyRejected):
        return (f"高德地图的 Key 用不了（{exc.info or exc.infocode}），请管理员检查环境变量 {KEY_ENV}："
                "是否填对、是不是「Web服务」类型、有没有开通这项服务。")
    if isinstance(exc, AmapQuotaExceeded):
        return "今天高德地图的查询次数用完了，明天0点后会自动恢复，明天再问我吧🙏"
    if isinstance(exc, AmapBusy):
        return "高德地图这会儿太忙了，过一分钟再问我试试～"
    if isinstance(exc, AmapNoRoute):
        return "没找到合适的路线，可能两地太远、不在国内，或者这种出行方式走不通。换个方式或地点试试？"
    if isinstance(exc, AmapUnavailable):
        return "高德地图暂时连不上，稍后再问我试试吧🙏"
    return f"高德地图没能处理这个查询（{exc.info or '未知错误'}），换个说法再试试？"


def not_found(name: str) -> str:
    return f"没找到「{name}」这个地方，换个更具体的说法试试？比如加上城市名。"


# -- pending questions ----------------------------------------------------------------------------------
@dataclass
class Pending:
    """A question the bot asked and the slots it already had when asking."""

    kind: str  # the slot prompt's name: "weather" | "route" | "places"
    intent: Intent
    slots: dict[str, str]
    asked: str  # the slot the question asks for
    expires_at: float


class PendingQuestions:
    """One open question per (chat, asker), forgotten after `ttl` seconds or once answered."""

    def __init__(self) -> None:
        self._items: dict[str, Pending] = {}

    @staticmethod
    def _key(msg: IncomingMessage) -> str:
        return f"{msg.chat.key}|{msg.sender_id}"

    def put(self, msg: IncomingMessage, pending: Pending) -> None:
        now = time.time()
        self._items = {k: v for k, v in self._items.items() if v.expires_at > now}
        self._items[self._key(msg)] = pending

    def peek(self, msg: IncomingMessage, now: float | None = None) -> Pending | None:
        pending = self._items.get(self._key(msg))
        if pending is not None and pending.expires_at <= (time.time() if now is None else now):
            self._items.pop(self._key(msg), None)
            return None
        return pending

    def pop(self, msg: IncomingMessage) -> Pending | None:
        pending = self.peek(msg)
        self._items.pop(self._key(msg), None)
        return pending

    def drop(self, msg: IncomingMessage) -> None:
        self._items.pop(self._key(msg), None)


# -- the feature's lifecycle object -----------------------------------------------------------------------
@dataclass
class AmapFeature:
    """Registered as app.services["amap"]: one shared HTTP connection pool and the open questions."""

    pending: PendingQuestions = field(default_factory=PendingQuestions)
    key_source: Callable[[], str | None] = key_from_env
    _http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if key_from_env() is None:
            logger.warning("amap: {} is not set; weather, routes and places will say how to set it", KEY_ENV)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def client(self, config: AmapConfig) -> AmapClient:
        """A client for this message's config; the key is read now, so a restart is all a new key needs."""
        if self._http is None:
            self._http = httpx.AsyncClient()
        return AmapClient(config, self.key_source(), self._http)


def feature(app: Application) -> AmapFeature:
    """The app's AmapFeature, registered on first use when build_app did not (bare test apps)."""
    existing = app.services.get("amap")
    if isinstance(existing, AmapFeature):
        return existing
    created = AmapFeature()
    app.services["amap"] = created
    return created


Classifier = Callable[["Context"], Awaitable[Intent]]


def follow_up_classifier(classify: Classifier, app: Application) -> Classifier:
    """Wrap the classifier: an answer to the bot's open question goes back to the intent that asked.

    The classifier still runs, so a clearly new request ("画一只猫") wins and drops the open question;
    an answer it sees as chat, or as the same intent, completes the question. Switching between route
    modes ("那坐地铁呢") keeps the places already given.
    """

    async def classifier(ctx: Context) -> Intent:
        intent = await classify(ctx)
        pending_questions = feature(app).pending
        pending = pending_questions.peek(ctx.message)
        if pending is None:
            return intent
        if intent in (Intent.CHAT, pending.intent):
            return pending.intent
        if pending.kind == "route" and intent in ROUTE_INTENTS:
            return intent
        pending_questions.drop(ctx.message)
        return intent

    return classifier


def take_pending(ctx: Context, kind: str) -> Pending | None:
    """The open question of this asker for this kind of slots, removed (answered now)."""
    pending_questions = feature(ctx.app).pending
    pending = pending_questions.peek(ctx.message)
    if pending is None or pending.kind != kind:
        return None
    return pending_questions.pop(ctx.message)


def ask(ctx: Context, kind: str, intent: Intent, slots: Mapping[str, str], asked: str,
        question: str) -> Reply:
    """Remember what we have and ask for the rest."""
    ttl = ctx.config.amap.pending_minutes * 60
    feature(ctx.app).pending.put(ctx.message, Pending(kind, intent, dict(slots), asked, time.time() + ttl))
    return Reply(question)


# -- slot extraction ------------------------------------------------------------------------------------
def parse_json_object(answer: str) -> dict[str, object]:
    """The first JSON object in an LLM answer (code fences and chatter around it are fine), else {}.

    Falls back to `"key": "value"` pairs when the object itself is malformed.
    """
    start, end = answer.find("{"), answer.rfind("}")
    if start != -1 and end > start:
        try:
            value = json.loads(answer[start:end + 1])
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
    return {k: v for k, v in re.findall(r'"(\w+)"\s*:\s*"([^"]*)"', answer)}


def clean_value(value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return ""
    text = str(value).strip().strip(_PUNCTUATION)
    return "" if text.lower() in _EMPTY_VALUES else text[:40]


def bare_answer(text: str) -> str:
    """A short follow-up taken as the asked slot itself: "从天安门出发。" -> "天安门"."""
    text = text.strip().strip(_PUNCTUATION)
    if not text or len(text) > MAX_BARE_ANSWER:
        return ""
    return _ANSWER_NOISE.sub("", text).strip(_PUNCTUATION)


def local_now(config: AmapConfig) -> datetime:
    try:
        return datetime.now(ZoneInfo(config.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return datetime.now(ZoneInfo("Asia/Shanghai"))


async def extract_slots(ctx: Context, kind: str, fields: tuple[str, ...], pending: Pending | None,
                        **extra: object) -> dict[str, str]:
    """Ask the LLM (prompts/<kind>.md) for the slots as JSON, merged over the open question's slots.

    Without a usable LLM the wording alone is read (`rule_slots`), so the answer still comes.
    """
    now = local_now(ctx.config.amap)
    known = json.dumps(pending.slots, ensure_ascii=False) if pending else "（无）"
    system, user = render(
        kind,
        today=now.strftime("%Y-%m-%d"),
        weekday="一二三四五六日"[now.weekday()],
        history=ctx.transcript,
        sender=ctx.message.sender_name,
        question=ctx.message.text,
        known=known,
        **extra,
    )
    try:
        answer = await ctx.llm.complete(
            [ChatMessage("system", system), ChatMessage("user", user)], max_tokens=200, temperature=0)
        parsed = parse_json_object(answer)
        if not parsed:
            logger.info("slots {}: no JSON in the LLM answer {!r}", kind, answer[:200])
    except LLMUnavailable as exc:
        logger.info("slots {}: LLM unavailable ({}), reading the wording", kind, exc)
        parsed = dict(rule_slots(kind, ctx.message.text))
    slots = {name: clean_value(parsed.get(name)) for name in fields}
    if pending is not None:
        for name in fields:
            if not slots[name] and pending.slots.get(name):
                slots[name] = pending.slots[name]
        if pending.asked in slots and not slots[pending.asked]:
            slots[pending.asked] = bare_answer(ctx.message.text)
    return slots


async def client_and_slots(ctx: Context, kind: str, fields: tuple[str, ...], **extra: object
                           ) -> tuple[AmapClient, dict[str, str]] | Reply:
    """How each AMap handler starts: the client for this message and its slots (merged with the asker's
    open question of this kind, now answered) — or, with no AMap key, the reply that says how to set one
    (the LLM is not asked then)."""
    client = feature(ctx.app).client(ctx.config.amap)
    if not client.key:
        return Reply(explain(AmapNoKey("no key")))
    pending = take_pending(ctx, kind)
    return client, await extract_slots(ctx, kind, fields, pending, **extra)


# -- the reply ------------------------------------------------------------------------------------------
async def finish(ctx: Context, text: str) -> Reply:
    """The templated answer, optionally reworded by the LLM (amap.polish); the template wins on failure."""
    if ctx.config.amap.polish:
        system, user = render("amap_polish", answer=text, question=ctx.message.text,
                              sender=ctx.message.sender_name)
        try:
            polished = await ctx.llm.complete([ChatMessage("system", system), ChatMessage("user", user)],
                                              max_tokens=400)
            text = fit_bubble(polished, max(len(text) + 60, 200))
        except LLMUnavailable as exc:
            logger.warning("amap polish skipped: {}", exc)
    return Reply(text)


def format_distance(meters: int | None) -> str:
    if meters is None:
        return ""
    if meters < 1000:
        return f"{meters}米"
    return f"{meters / 1000:.1f}公里".replace(".0公里", "公里")


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes}分钟"
    hours, rest = divmod(minutes, 60)
    return f"{hours}小时{rest}分钟" if rest else f"{hours}小时"
