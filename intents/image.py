"""图片生成: rewrite the chat into an English FLUX prompt that keeps what was asked for, queue the
picture on the shared GPU queue, ack at once; the worker (`bot/jobs.py` + `bot/image.py`) posts the
picture with @asker.

The rewriter reuses the video rewriter's answer checks (`clean_prompt`, `fit_tokens`) and adds one of
its own: key nouns the asker used (柴犬, 旗袍, 长城... from `prompts/image_glossary.yaml`) must survive
in English. A small model once turned 柴犬 into "a dog"; such an answer is sent back once with the
correction, then reported to the asker instead of drawing the wrong thing.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from loguru import logger
from ruamel.yaml import YAML

from bot.channels.base import Reply
from bot.context import Context
from bot.jobs import JobRequest, Limits, QueueLimitReached, Receipt
from bot.llm import ChatMessage, LLMUnavailable
from generators.base import GeneratorError, ModelNotFound
from intents.base import UserInputError, not_enabled
from intents.video import (
    _REASONS_ZH,
    RewriteRejected,
    clean_prompt,
    estimate_tokens,
    fit_tokens,
    requested_overrides,
)
from prompts import PROMPTS_DIR, render

KIND = "image"
MIN_WORDS, MAX_WORDS = 25, 90
TOKEN_MARGIN = 6
PROBE_PROMPT = "A Shiba Inu sitting in the snow."  # stands in for the prompt in early checks
GLOSSARY_PATH = PROMPTS_DIR / "image_glossary.yaml"

NO_LLM_REPLY = "画图要先把你的描述改写成英文提示词，可我的语言模型现在连不上，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能把你的描述写成合格的英文画图提示词（{reason}），换个说法再试一次吧～"
LOST_SUBJECT_REPLY = ("抱歉，我写的英文提示词两次都把「{words}」弄丢了，怕画出来不是你要的。"
                      "换个说法再试一次吧～")
MODEL_MISSING_REPLY = ("画图的模型还没有装好，暂时画不了图。请管理员下载 FLUX.1-schnell "
                       "或在配置里设置 image.model_path（详情见日志）。")
ACK_FIRST = "收到，马上画～预计 {eta} 秒。"
ACK_QUEUED = "收到，排队第 {position} 位，预计 {eta} 秒。"
CAPTION = "你要的图画好啦🎨"
SEED_NOTE = "（种子 {seed}）"
PROMPT_LINE = "\n英文提示词：{prompt}"

_IMAGE_LABEL = re.compile(r"^\s*(\*\*)?(english\s+)?(image\s+|flux\s+|picture\s+)prompt\s*(\*\*)?\s*[:：]\s*",
                          re.IGNORECASE)
_PORTRAIT = re.compile(r"竖版|竖图|竖屏|竖的|竖着|手机壁纸|竖幅")
_SQUARE = re.compile(r"正方形|方形|方图|方的|头像")
_LANDSCAPE = re.compile(r"横版|横图|横屏|横的|横幅|电脑壁纸")


# -- key nouns the prompt must keep ------------------------------------------------------------------


@cache
def glossary() -> dict[str, tuple[str, ...]]:
    """Chinese key noun -> accepted English terms (the first is the one to suggest)."""
    data = YAML(typ="safe").load(GLOSSARY_PATH.read_text(encoding="utf-8")) or {}
    return {str(word): tuple(str(term) for term in terms) for word, terms in data.items() if terms}


def key_terms(request: str, table: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, ...]]:
    """The glossary words in `request`; a word inside a longer match (熊猫 in 小熊猫) does not count."""
    table = glossary() if table is None else table
    found: dict[str, tuple[str, ...]] = {}
    covered: list[tuple[int, int]] = []
    for word in sorted(table, key=len, reverse=True):
        for match in re.finditer(re.escape(word), request):
            start, end = match.span()
            if not any(a <= start and end <= b for a, b in covered):
                found[word] = table[word]
                covered.append((start, end))
    return found


def mentions(prompt: str, term: str) -> bool:
    """Whether `term` starts a word in `prompt`, case-insensitive ("snow" also finds "snowy")."""
    return re.search(rf"(?<![A-Za-z]){re.escape(term)}", prompt, re.IGNORECASE) is not None


def missing_terms(prompt: str, terms: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The Chinese words none of whose English terms appears in `prompt`."""
    return [word for word, english in terms.items() if not any(mentions(prompt, e) for e in english)]


def must_keep_block(terms: Mapping[str, tuple[str, ...]]) -> str:
    if not terms:
        return ""
    lines = "\n".join(f"- {word} -> {english[0]}" for word, english in terms.items())
    return f"\nThe request names these; the prompt MUST name each of them with this English term:\n{lines}\n"


class LostSubject(RewriteRejected):
    """The answer dropped (or generalised) a key noun the asker used."""

    def __init__(self, words: list[str], terms: Mapping[str, tuple[str, ...]]) -> None:
        self.words = words
        wanted = "; ".join(f"{w} must be written as '{terms[w][0]}'" for w in words)
        super().__init__(f"the answer lost what the family asked for ({wanted}), "
                         "do not replace it with a more general word")


# -- the rewriter ------------------------------------------------------------------------------------


def check_answer(answer: str, terms: Mapping[str, tuple[str, ...]], limit: int | None,
                 count: Callable[[str], int]) -> str:
    """The usable English prompt in `answer`, or RewriteRejected / LostSubject saying why not."""
    prompt = clean_prompt(_IMAGE_LABEL.sub("", answer.strip().strip("`").strip()))
    if limit is not None:
        prompt = fit_tokens(prompt, limit, count)
    lost = missing_terms(prompt, terms)
    if lost:
        raise LostSubject(lost, terms)
    return prompt


async def rewrite_prompt(ctx: Context, limit: int | None = None,
                         count: Callable[[str], int] = estimate_tokens) -> str:
    """Ask the LLM for the English FLUX prompt; one retry with the reason fed back; UserInputError after."""
    request = ctx.message.text or "（只@了你）"
    terms = key_terms(request)
    feedback = ""
    failure: RewriteRejected | None = None
    for _attempt in range(2):
        system, user = render(
            "image_rewrite", history=ctx.transcript, sender=ctx.message.sender_name, request=request,
            feedback=feedback, min_words=MIN_WORDS, max_words=MAX_WORDS, must_keep=must_keep_block(terms),
        )
        try:
            answer = await ctx.llm.complete(
                [ChatMessage("system", system), ChatMessage("user", user)], max_tokens=300, temperature=0.7)
        except LLMUnavailable as exc:
            raise UserInputError(NO_LLM_REPLY) from exc
        try:
            return await asyncio.to_thread(check_answer, answer, terms, limit, count)
        except RewriteRejected as exc:
            failure = exc
            logger.info("image: rewriter answer rejected ({}): {!r}", exc, answer[:200])
            feedback = (f"\nYour previous answer was rejected: {exc}. Previous answer: {answer[:300]!r}\n"
                        "Answer again with the English prompt alone.")
    if isinstance(failure, LostSubject):
        raise UserInputError(LOST_SUBJECT_REPLY.format(words="、".join(failure.words)))
    reason = _REASONS_ZH.get(str(failure), "格式不对")
    raise UserInputError(REWRITE_FAILED_REPLY.format(reason=reason))


# -- parameters the asker can give ---------------------------------------------------------------------


def requested_image_overrides(text: str, height: int, width: int) -> dict[str, int]:
    """Seed and steps ("种子 42", "8步") and an orientation (竖版 / 正方形 / 横版) from the request."""
    overrides = {k: v for k, v in requested_overrides(text).items() if k in ("seed", "steps")}
    long_side, short_side = max(height, width), min(height, width)
    if _PORTRAIT.search(text):
        overrides |= {"height": long_side, "width": short_side}
    elif _SQUARE.search(text):
        overrides |= {"height": long_side, "width": long_side}
    elif _LANDSCAPE.search(text):
        overrides |= {"height": short_side, "width": long_side}
    return overrides


def limits_for(ctx: Context, *, daily: bool) -> Limits:
    """The pending limit from `image`; with `daily`, also the day quotas (only where no `app.quotas`
    counts them already). Admins are exempt from day quotas."""
    msg, config = ctx.message, ctx.config
    limits = Limits(max_pending_per_user=config.image.max_pending_per_user,
                    seconds_per_job=config.image.seconds_per_job)
    if not daily or msg.sender_id in config.bot.admins:
        return limits
    quotas = config.for_chat(msg.chat, msg.room_topic).quotas
    return replace(limits, daily_quota_per_chat=quotas.group_images_per_day,
                   daily_quota_per_user=quotas.user_images_per_day)


async def handle(ctx: Context) -> Reply | None:
    jobs = getattr(ctx.app, "jobs", None)
    if jobs is None or KIND not in jobs.kinds:
        return Reply(not_enabled("图片生成"))
    config = ctx.config.image
    kind: Any = jobs.kinds[KIND]
    msg = ctx.message

    from generators.flux import ImageRequest

    # 1. parameters: config defaults + what the asker said, checked before the LLM is even asked
    overrides = requested_image_overrides(msg.text, config.height, config.width)
    seed = overrides.pop("seed", None)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    try:
        probe = ImageRequest.from_config(PROBE_PROMPT, config, seed=seed, **overrides)
        await jobs.check(KIND, probe.to_dict())
    except ModelNotFound as exc:
        logger.error("image: {}", exc)
        raise UserInputError(MODEL_MISSING_REPLY) from exc
    except GeneratorError as exc:
        raise UserInputError(str(exc)) from exc

    # 2. the daily quotas (bot/quotas.py counts; given back if the job is not accepted after all)
    quotas = getattr(ctx.app, "quotas", None)
    if quotas is not None:
        quotas.check_and_count(KIND, msg)
    accepted = False
    try:
        # 3. the English prompt, within the local model's T5 limit (exact count when the tokenizer is local)
        limit = await asyncio.to_thread(kind.max_prompt_tokens)
        exact = limit is not None and await asyncio.to_thread(kind.count_tokens, PROBE_PROMPT) is not None

        def count(text: str) -> int:
            return (kind.count_tokens(text) if exact else None) or estimate_tokens(text) + TOKEN_MARGIN

        prompt = await rewrite_prompt(ctx, limit, count)
        params = ImageRequest.from_config(prompt, config, **overrides).to_dict()
        params.pop("seed", None)
        caption = CAPTION + (SEED_NOTE.format(seed=seed) if config.backend == "local" else "")
        caption += PROMPT_LINE.format(prompt=prompt) if config.show_prompt else ""
        request = JobRequest(
            kind=KIND, params=params, seed=seed, asker_id=msg.sender_id, asker_name=msg.sender_name,
            chat=msg.chat, message_id=msg.id, caption=caption,
        )

        # 4. queue it on the shared GPU queue: the ack goes out before the job can start
        async def acknowledge(receipt: Receipt) -> None:
            template = ACK_FIRST if receipt.position <= 1 else ACK_QUEUED
            await ctx.say(Reply(template.format(position=receipt.position, eta=max(1, int(receipt.eta_s)))))

        receipt = await jobs.submit(request, limits_for(ctx, daily=quotas is None), on_accepted=acknowledge)
        accepted = not receipt.duplicate
    except ModelNotFound as exc:
        logger.error("image: {}", exc)
        raise UserInputError(MODEL_MISSING_REPLY) from exc
    except (GeneratorError, QueueLimitReached) as exc:
        raise UserInputError(str(exc)) from exc
    finally:
        if quotas is not None and not accepted:
            quotas.refund(KIND, msg)
    return None
