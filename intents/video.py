"""视频生成: rewrite the chat into an English CogVideoX prompt, check it, queue the render, ack at once.

The worker (`bot/jobs.py` + `bot/video.py`) posts the MP4 with @asker later. Everything the asker can
fix (bad frame count, quota reached, a prompt the LLM could not write) comes back as a short reply.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import replace

from bot.channels.base import Reply
from bot.context import Context
from bot.jobs import JobRequest, Limits, QueueLimitReached, Receipt
from bot.llm import ChatMessage, LLMUnavailable
from generators.base import GeneratorError
from intents.base import UserInputError, not_enabled
from prompts import render

KIND = "video"
MIN_WORDS, MAX_WORDS = 40, 110
TOKEN_MARGIN = 6  # stay a little under the model's limit when only an estimate is available
PROBE_PROMPT = "A panda playing a guitar in a bamboo forest."  # stands in for the prompt in early checks

NO_LLM_REPLY = "做视频要先把你的描述改写成英文提示词，可我的语言模型现在连不上，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能把你的描述写成合格的英文视频提示词（{reason}），换个说法再试一次吧～"
ACK = "收到，排队第 {position} 位，预计 {eta} 秒。"
PROMPT_LINE = "\n英文提示词：{prompt}"
CAPTION = "你要的视频做好啦🎬（种子 {seed}）"

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_LABEL = re.compile(r"^\s*(\*\*)?(english\s+)?(video\s+)?prompt\s*(\*\*)?\s*[:：]\s*", re.IGNORECASE)
_CHATTY = re.compile(
    r"^(sure|certainly|of course|okay|ok|absolutely|here('s| is| are)|i (can|will|would|'ll|'d|cannot|can't)"
    r"|as an ai|sorry)\b|let me know|hope (this|you)|feel free|\bi('m| am) (sorry|happy|glad)\b"
    r"|^(\s*[-*•]|\s*\d+[.)])\s",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PIECE = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")
_SEED = re.compile(r"(?:种子|seed)\s*(?:是|为|=|:|：)?\s*(\d{1,19})", re.IGNORECASE)
_FRAMES = re.compile(r"(\d{1,4})\s*帧")
_STEPS = re.compile(r"(\d{1,4})\s*步")


class RewriteRejected(ValueError):
    """The LLM's answer is not a usable prompt; the message says why (fed back on the retry)."""


def estimate_tokens(text: str) -> int:
    """A conservative T5 token count: a word costs one token per 4 letters (rounded up), each digit and
    punctuation mark one, plus the end token. Real counts for plain English are lower."""
    total = 1
    for piece in _PIECE.findall(text):
        total += -(-len(piece) // 4) if piece[0].isalpha() else 1
    return total


def clean_prompt(answer: str) -> str:
    """Strip wrappers (quotes, code fences, a "Prompt:" label), join lines, then validate.

    Raises RewriteRejected for empty, non-English or chatty answers."""
    text = answer.strip().strip("`").strip()
    text = _LABEL.sub("", text)
    text = text.strip().strip("\"'“”‘’`").strip()
    if _CHATTY.search(text):
        raise RewriteRejected("the answer talks to the user instead of being the prompt alone")
    text = " ".join(text.split())
    if not text:
        raise RewriteRejected("the answer is empty")
    if _CJK.search(text):
        raise RewriteRejected("the answer contains Chinese; the prompt must be English only")
    if len(re.findall(r"[A-Za-z]+", text)) < 5:
        raise RewriteRejected("the answer is too short to describe a video")
    return text


def fit_tokens(prompt: str, limit: int, count: Callable[[str], int]) -> str:
    """Keep whole sentences while the prompt fits `limit` tokens; never cut inside a sentence."""
    if count(prompt) <= limit:
        return prompt
    kept: list[str] = []
    for sentence in _SENTENCE.split(prompt):
        if count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if not kept:
        raise RewriteRejected(f"the first sentence alone is over {limit} tokens; write shorter sentences")
    return " ".join(kept)


async def rewrite_prompt(ctx: Context, limit: int, count: Callable[[str], int]) -> str:
    """Ask the LLM for the English prompt; one retry with the reason fed back; UserInputError after."""
    feedback = ""
    reason = ""
    for _attempt in range(2):
        system, user = render(
            "video_rewrite", history=ctx.transcript, sender=ctx.message.sender_name,
            request=ctx.message.text or "（只@了你）", feedback=feedback,
            min_words=MIN_WORDS, max_words=MAX_WORDS,
        )
        try:
            answer = await ctx.llm.complete(
                [ChatMessage("system", system), ChatMessage("user", user)], max_tokens=400, temperature=0.7)
        except LLMUnavailable as exc:
            raise UserInputError(NO_LLM_REPLY) from exc
        try:
            return await asyncio.to_thread(fit_tokens, clean_prompt(answer), limit, count)
        except RewriteRejected as exc:
            reason = str(exc)
            feedback = (f"\nYour previous answer was rejected: {reason}. Previous answer: {answer[:300]!r}\n"
                        "Answer again with the English prompt alone.")
    raise UserInputError(REWRITE_FAILED_REPLY.format(reason=_REASONS_ZH.get(reason, "格式不对")))


_REASONS_ZH = {
    "the answer is empty": "回答是空的",
    "the answer contains Chinese; the prompt must be English only": "回答里有中文",
    "the answer talks to the user instead of being the prompt alone": "回答里夹了闲聊",
    "the answer is too short to describe a video": "回答太短",
}


def requested_overrides(text: str) -> dict[str, int]:
    """Numbers the asker gave explicitly: "种子 42", "17帧", "20步"."""
    overrides: dict[str, int] = {}
    for key, pattern in (("seed", _SEED), ("num_frames", _FRAMES), ("steps", _STEPS)):
        match = pattern.search(text)
        if match:
            overrides[key] = int(match.group(1))
    return overrides


async def handle(ctx: Context) -> Reply | None:
    jobs = getattr(ctx.app, "jobs", None)
    if jobs is None or KIND not in jobs.kinds:
        return Reply(not_enabled("视频生成"))
    config = ctx.config.video
    kind = jobs.kinds[KIND]
    msg = ctx.message

    from generators.cogvideox import VideoRequest

    # 1. parameters: config defaults + what the asker said, checked before the LLM is even asked
    overrides = requested_overrides(msg.text)
    seed = overrides.pop("seed", None)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    try:
        probe = VideoRequest.from_config(PROBE_PROMPT, config, seed=seed, **overrides)
        await jobs.check(KIND, probe.to_dict())
    except GeneratorError as exc:
        raise UserInputError(str(exc)) from exc

    # 2. the daily quotas (bot/quotas.py counts; given back if the job is not accepted after all)
    quotas = getattr(ctx.app, "quotas", None)
    if quotas is not None:
        quotas.check_and_count(KIND, msg)
    accepted = False
    try:
        # 3. the English prompt, within the model's token limit (exact count when the tokenizer is local)
        limit = await asyncio.to_thread(kind.max_prompt_tokens)
        exact = await asyncio.to_thread(kind.count_tokens, PROBE_PROMPT) is not None

        def count(text: str) -> int:
            return (kind.count_tokens(text) if exact else None) or estimate_tokens(text) + TOKEN_MARGIN

        prompt = await rewrite_prompt(ctx, limit, count)
        shown = PROMPT_LINE.format(prompt=prompt) if config.show_prompt else ""
        params = VideoRequest.from_config(prompt, config, **overrides).to_dict()
        params.pop("seed", None)
        request = JobRequest(
            kind=KIND, params=params, seed=seed, asker_id=msg.sender_id, asker_name=msg.sender_name,
            chat=msg.chat, message_id=msg.id, caption=CAPTION.format(seed=seed) + shown,
        )

        # 4. queue it: the ack goes out before the render can start (and so before its result)
        async def acknowledge(receipt: Receipt) -> None:
            await ctx.say(Reply(ACK.format(position=receipt.position, eta=int(receipt.eta_s)) + shown))

        receipt = await jobs.submit(request, limits_for(ctx, daily=quotas is None), on_accepted=acknowledge)
        accepted = not receipt.duplicate
    except (GeneratorError, QueueLimitReached) as exc:
        raise UserInputError(str(exc)) from exc
    finally:
        if quotas is not None and not accepted:
            quotas.refund(KIND, msg)
    return None


def limits_for(ctx: Context, *, daily: bool) -> Limits:
    """The pending limit from `video`; with `daily`, also the day quotas from `quotas` (room overrides
    applied) — only where no `app.quotas` counts them already. Admins are exempt from day quotas."""
    msg, config = ctx.message, ctx.config
    limits = Limits(max_pending_per_user=config.video.max_pending_per_user,
                    seconds_per_job=config.video.seconds_per_job)
    if not daily or msg.sender_id in config.bot.admins:
        return limits
    quotas = config.for_chat(msg.chat, msg.room_topic).quotas
    return replace(limits, daily_quota_per_chat=quotas.group_videos_per_day,
                   daily_quota_per_user=quotas.user_videos_per_day)
