"""What the six AMap intents (天气, 四种路线, 地点推荐) share: slot extraction by the LLM (by rules
without one), errors in plain Chinese, and the reply's formatting.

A missing slot is asked for with `ctx.ask(...)`; the dispatcher routes the answer back
(bot/pipeline/dispatch.py) and the handler finds the open question in `ctx.pending`: its slots are
merged with what the LLM reads from the answer, and the bare answer is taken as the asked slot when
the LLM returns nothing for it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loguru import logger

from bot.config import AmapConfig
from bot.llm import ChatMessage, LLMUnavailable
from bot.messages import Reply
from bot.ops.notices import ADMINS_TOLD, honest
from bot.pipeline.context import Answer, Question
from bot.time_text import duration_text
from intents.base import UserInputError
from intents.chat import fit_bubble
from nlu.rule_slots import rule_slots
from prompts import render
from services.amap import errors as amap

if TYPE_CHECKING:
    from bot.pipeline.context import Context, Pending

_EMPTY_VALUES = {"", "null", "none", "无", "未知", "不知道", "没有", "未提及", "n/a"}
_ANSWER_NOISE = re.compile(r"^(?:从|在|去|到|是|就)|(?:出发|吧|呀|啊|哦|呢|附近|那边|这边)$")
_PUNCTUATION = " \t\r\n，。！？,.!?~～、；;：:\"'“”‘’「」"
MAX_BARE_ANSWER = 20  # longer follow-ups are sentences, not a bare place name


# -- errors in plain Chinese ----------------------------------------------------------------------------
AMAP_REPLIES: dict[type[amap.AmapError], str] = {  # the first class the failure is an instance of
    amap.AmapNoKey: f"我还没接上高德地图，暂时查不了天气、路线和地点，{ADMINS_TOLD}。",
    amap.AmapKeyRejected: f"高德地图这会儿用不了，{ADMINS_TOLD}，稍后再问我吧🙏",
    amap.AmapQuotaExceeded: "今天高德地图的查询次数用完了，明天0点后会自动恢复，明天再问我吧🙏",
    amap.AmapBusy: "高德地图这会儿太忙了，过一分钟再问我试试～",
    amap.AmapNoRoute: ("没找到合适的路线，可能两地太远、不在国内，或者这种出行方式走不通。"
                       "换个方式或地点试试？"),
    amap.AmapUnavailable: "高德地图暂时连不上，稍后再问我试试吧🙏",
    amap.AmapError: "高德地图没能处理这个查询，换个说法再试试？",
}


def explain(exc: amap.AmapError) -> str:
    """The group's sentence for an AMap failure: plain words; the fix goes to the admins (`admin_fix`)."""
    return next(text for kind, text in AMAP_REPLIES.items() if isinstance(exc, kind))


def admin_fix(exc: amap.AmapError) -> str | None:
    """The exact fix for an AMap failure only the admin can repair (no key, key refused), else None."""
    if isinstance(exc, amap.AmapNoKey):
        return ("有人问天气/路线/地点，但没有配置高德地图：在高德开放平台（lbs.amap.com）申请"
                f"「Web服务」类型的 Key，填在管理台「密钥」页（保存后马上生效），"
                f"或设置环境变量 {amap.KEY_ENV}。")
    if isinstance(exc, amap.AmapKeyRejected):
        return (f"高德地图拒绝了 Key（infocode {exc.infocode}: {exc.info}）：请检查环境变量 {amap.KEY_ENV} "
                "是否填对、是不是「Web服务」类型、有没有开通这项服务。")
    return None


async def amap_failed(ctx: Context, exc: amap.AmapError) -> Reply:
    """The reply to an AMap failure, the admins told the fix once when it is theirs, the cause logged."""
    fix = admin_fix(exc)
    if fix is not None:  # other failures were logged once, with their cause, by the client
        logger.error("amap: {}", fix)
        return Reply(honest(explain(exc), await ctx.notify_admins(fix, key=f"amap:{type(exc).__name__}")))
    return Reply(explain(exc))


def not_found(name: str) -> str:
    return f"没找到「{name}」这个地方，换个更具体的说法试试？比如加上城市名。"


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
            logger.debug("slots {}: no JSON in the LLM answer {!r}", kind, answer[:200])
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


async def amap_slots(ctx: Context, fields: tuple[str, ...], **extra: object) -> dict[str, str]:
    """How each AMap handler starts: this message's slots (the slot prompt is the intent's follow-up
    kind), merged with the asker's open question of this kind (now answered). With no AMap key the asker
    is told (UserInputError), the LLM not asked."""
    if not ctx.amap.key:
        missing = amap.AmapNoKey("no key")
        raise UserInputError(explain(missing), admin_detail=admin_fix(missing), problem="amap:AmapNoKey")
    assert ctx.intent is not None and ctx.intent.follow_up is not None, "an AMap intent has a slot kind"
    kind = ctx.intent.follow_up
    pending = ctx.pending if ctx.pending is not None and ctx.pending.kind == kind else None
    return await extract_slots(ctx, kind, fields, pending, **extra)


def answered(reply: Reply, slots: dict[str, str]) -> Reply:
    """The reply with the slots it was based on, which the dispatcher remembers for a follow-up
    ("那开车呢"); a question back is returned as it is."""
    if isinstance(reply, Question):
        return reply
    return Answer(reply.text, reply.file, reply.mention_ids, slots=dict(slots))


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
    """A route's travel time, at least a minute (AMap's own figures are rough)."""
    return "" if seconds is None else duration_text(max(60, seconds))
