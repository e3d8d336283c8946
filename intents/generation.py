"""The flow the two generation intents (视频生成, 图片生成) share, top to bottom:

1. parameters from config + what the asker said, checked once by the queue before the LLM is even
   asked (`JobQueue.check` gives back a `CheckedRequest`; the rewriter's prompt replaces the stand-in);
2. the admission rules (pending limit, daily quotas) asked of the queue, which counts nothing until
   `submit` writes the job (the same rules again, in one transaction);
3. the English prompt from the recent chat (LLM rewriter, checked, one retry with the reason fed back),
   fitted to the model's token limit without cutting mid-sentence; with no LLM configured at all, the
   asker's own words, flagged as such;
4. the checked request as a job on the shared GPU queue (`bot.jobs`), not checked again, acknowledged
   before it can start.

`intents/video.py` and `intents/image.py` subclass `GenerationIntent` with what differs (request type,
prompt file, replies, extra checks).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from typing import Any, ClassVar

from loguru import logger

from bot.jobs import CheckedRequest, Limits, QueueLimitReached, Receipt, limits_for
from bot.llm import ChatMessage, LLMUnavailable, with_image
from bot.messages import Reply
from bot.pipeline.context import Context
from generators.base import GeneratorError, ModelNotFound
from intents.base import UserInputError, not_enabled
from prompts import render

TOKEN_MARGIN = 6  # stay a little under the model's limit when only an estimate is available
OWN_WORDS_NOTE = "\n（这次直接照你的原话来做，效果可能差一点）"
DETAILS_WORDS = ("#详情", "＃详情")  # in a request: show the seed and the English text behind the result
ADMIN_DETAILS = "\n详情：种子 {seed}；英文描述：{prompt}"  # for admins, on "#详情", or with show_prompt: true

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_LABEL = re.compile(
    r"^\s*(\*\*)?(english\s+)?(video\s+|image\s+|flux\s+|picture\s+)?prompt\s*(\*\*)?\s*[:：]\s*",
    re.IGNORECASE,
)
_CHATTY = re.compile(
    r"^(sure|certainly|of course|okay|ok|absolutely|here('s| is| are)|i (can|will|would|'ll|'d|cannot|can't)"
    r"|as an ai|sorry)\b|let me know|hope (this|you)|feel free|\bi('m| am) (sorry|happy|glad)\b"
    r"|^(\s*[-*•]|\s*\d+[.)])\s",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_PIECE = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")
_SEED = re.compile(r"(?:种子|seed)\s*(?:是|为|=|:|：)?\s*(\d{1,19})", re.IGNORECASE)
_FRAMES = re.compile(r"(\d{1,4})\s*帧")
_STEPS = re.compile(r"(\d{1,4})\s*步")


class RewriteRejected(ValueError):
    """The LLM's answer is not a usable prompt. `str()` is fed back to the LLM on the retry; `zh` is the
    reason shown to the asker if the retry fails too."""

    def __init__(self, reason: str, zh: str = "格式不对") -> None:
        super().__init__(reason)
        self.zh = zh

    def reply(self, failed_template: str) -> str:
        return failed_template.format(reason=self.zh)


class NoRewriter(UserInputError):
    """No LLM is configured at all, so there is nobody to write the English prompt."""


# -- checking and fitting an answer -----------------------------------------------------------------


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
        raise RewriteRejected("the answer talks to the user instead of being the prompt alone",
                              "回答里夹了闲聊")
    text = " ".join(text.split())
    if not text:
        raise RewriteRejected("the answer is empty", "回答是空的")
    if _CJK.search(text):
        raise RewriteRejected("the answer contains Chinese; the prompt must be English only", "回答里有中文")
    if len(re.findall(r"[A-Za-z]+", text)) < 5:
        raise RewriteRejected("the answer is too short to be a prompt", "回答太短")
    return text


def fit_tokens(prompt: str, limit: int, count: Callable[[str], int]) -> str:
    """Keep whole sentences while the prompt fits `limit` tokens; never cut inside a sentence."""
    if count(prompt) <= limit:
        return prompt
    kept: list[str] = []
    for sentence in (s for s in _SENTENCE.split(prompt) if s):
        if count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if not kept:
        raise RewriteRejected(f"the first sentence alone is over {limit} tokens; write shorter sentences",
                              "句子太长")
    return " ".join(kept)


def requested_overrides(text: str) -> dict[str, int]:
    """Numbers the asker gave explicitly: "种子 42", "17帧", "20步"."""
    overrides: dict[str, int] = {}
    for key, pattern in (("seed", _SEED), ("num_frames", _FRAMES), ("steps", _STEPS)):
        match = pattern.search(text)
        if match:
            overrides[key] = int(match.group(1))
    return overrides


async def rewrite(ctx: Context, *, prompt_name: str, check: Callable[[str], str],
                  failed_reply: str, no_llm_reply: str, max_tokens: int = 400, image: str | None = None,
                  **variables: object) -> str:
    """Ask the LLM (prompt `prompts/<prompt_name>.md`) for the English prompt and `check` the answer;
    one retry with the reason fed back; `image` (base64 JPEG) goes along as an image_url part. Raises
    NoRewriter when no LLM is configured, UserInputError with `no_llm_reply` when it is down, and with
    `failed_reply` when both answers were rejected."""
    if not ctx.llm.configured:
        raise NoRewriter(no_llm_reply)
    feedback = ""
    failure = RewriteRejected("no answer yet")
    for _attempt in range(2):
        system, user = render(prompt_name, history=ctx.transcript, sender=ctx.message.sender_name,
                              request=ctx.message.text or "（只@了你）", feedback=feedback, **variables)
        try:
            content = with_image(user, image) if image else user
            answer = await ctx.llm.complete(
                [ChatMessage("system", system), ChatMessage("user", content)], max_tokens=max_tokens,
                temperature=0.7)
        except LLMUnavailable as exc:
            raise UserInputError(no_llm_reply) from exc
        try:
            return await asyncio.to_thread(check, answer)
        except RewriteRejected as exc:
            failure = exc
            logger.debug("{}: rewriter answer rejected ({}): {!r}", prompt_name, exc, answer[:200])
            feedback = (f"\nYour previous answer was rejected: {exc}. Previous answer: {answer[:300]!r}\n"
                        "Answer again with the English prompt alone.")
    raise UserInputError(failure.reply(failed_reply))


# -- the shared handler -------------------------------------------------------------------------------


class GenerationIntent:
    """One generation intent: subclasses fill in the class attributes and the hooks below."""

    kind: ClassVar[str]  # the job kind on the queue, and the config section (`video` / `image`)
    probe_prompt: ClassVar[str]  # stands in for the prompt in the early parameter check
    model_missing_reply: ClassVar[str | None] = None  # None: show the generator's own message
    # the rewriter: prompts/<rewriter>.md, the length it asks for, and the replies when it cannot help
    rewriter: ClassVar[str]
    words: ClassVar[tuple[int, int]]  # (min, max) English words
    no_llm_reply: ClassVar[str]
    failed_reply: ClassVar[str]  # "{reason}": why both answers were rejected
    rewrite_max_tokens: ClassVar[int] = 400
    default_prompt_tokens: ClassVar[int | None] = None  # the limit when the model does not say one

    # hooks ------------------------------------------------------------------------------------------
    def section(self, ctx: Context) -> Any:
        return getattr(ctx.config, self.kind)

    def overrides(self, text: str, section: Any) -> dict[str, int]:
        return requested_overrides(text)

    async def prepare(self, ctx: Context, section: Any) -> dict[str, Any] | Reply:
        """Request fields this message brings besides its words (a photo), or a Reply asking for what
        is missing; default: none."""
        return {}

    def request(self, prompt: str, section: Any, **overrides: Any) -> Any:
        """The generator's request object (VideoRequest / ImageRequest), built from config."""
        raise NotImplementedError

    def check_answer(self, answer: str, request: str, limit: int | None, count: Callable[[str], int]) -> str:
        """The usable English prompt in the rewriter's `answer` to `request`, or RewriteRejected."""
        prompt = clean_prompt(answer)
        return fit_tokens(prompt, limit, count) if limit is not None else prompt

    def rewrite_variables(self, request: str) -> dict[str, object]:
        """Extra variables for the rewriter's prompt file."""
        return {}

    async def rewrite_prompt(self, ctx: Context, limit: int | None = None,
                             count: Callable[[str], int] = estimate_tokens) -> str:
        """The English prompt for ctx's request, at most `limit` tokens by `count`."""
        request = ctx.message.text or ""
        limit = limit or self.default_prompt_tokens
        def check(answer: str) -> str:
            return self.check_answer(answer, request, limit, count)

        low, high = self.words
        return await rewrite(ctx, prompt_name=self.rewriter, check=check, failed_reply=self.failed_reply,
                             no_llm_reply=self.no_llm_reply, max_tokens=self.rewrite_max_tokens,
                             min_words=low, max_words=high, **self.rewrite_variables(request))

    def ack(self, receipt: Receipt, shown: str) -> str:
        raise NotImplementedError

    def caption(self, seed: int, shown: str, section: Any) -> str:
        raise NotImplementedError

    # the flow ----------------------------------------------------------------------------------------
    async def handle(self, ctx: Context) -> Reply | None:
        jobs = ctx.jobs
        if self.kind not in jobs.kinds:
            return Reply(not_enabled(ctx.intent.label if ctx.intent else self.kind))
        section = self.section(ctx)
        msg = ctx.message
        checked = await self.checked_request(ctx, section)
        if isinstance(checked, Reply):
            return checked
        # 2. the pending limit and the daily quotas, before the LLM is asked
        limits = self.limits(ctx)
        try:
            await jobs.admit(self.kind, msg.sender_id, msg.chat, limits)
            prompt, note = await self.english_prompt(ctx, jobs.kinds[self.kind])
            await self.enqueue(ctx, checked.with_prompt(prompt), section, limits, note)
        except (GeneratorError, QueueLimitReached) as exc:
            raise self._user_error(exc) from exc
        except RewriteRejected as exc:  # the asker's own words did not fit the model's token limit
            raise UserInputError(f"描述太长了（{exc.zh}），说短一点再试试吧～") from exc
        return None

    async def checked_request(self, ctx: Context, section: Any) -> CheckedRequest | Reply:
        """1. The request from config defaults + what the asker said, checked by the queue before the LLM
        is even asked (a stand-in prompt until the rewriter's); a Reply when the message lacks something."""
        extra = await self.prepare(ctx, section)
        if isinstance(extra, Reply):
            return extra
        overrides: dict[str, Any] = {**self.overrides(ctx.message.text, section), **extra}
        seed = overrides.pop("seed", None)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        try:
            return await ctx.jobs.check(self.kind, self.request(self.probe_prompt, section, seed=seed,
                                                                **overrides))
        except GeneratorError as exc:
            raise self._user_error(exc) from exc

    async def english_prompt(self, ctx: Context, kind: Any) -> tuple[str, str]:
        """3. The English prompt within the kind's token limit (an exact count when its tokenizer is
        local), and the note for the asker when it is their own words (no LLM configured)."""
        limit = await asyncio.to_thread(kind.max_prompt_tokens)
        exact = (limit is not None
                 and await asyncio.to_thread(kind.count_tokens, self.probe_prompt) is not None)

        def count(text: str) -> int:
            return (kind.count_tokens(text) if exact else None) or estimate_tokens(text) + TOKEN_MARGIN

        try:
            return await self.rewrite_prompt(ctx, limit, count), ""
        except NoRewriter:
            own = " ".join(ctx.message.text.split())
            if not own:
                raise
            return (fit_tokens(own, limit, count) if limit is not None else own), OWN_WORDS_NOTE

    async def enqueue(self, ctx: Context, checked: CheckedRequest, section: Any, limits: Limits,
                      note: str) -> None:
        """4. The job on the queue as checked; the ack goes out before it can start (and so before its
        result)."""
        msg = ctx.message
        seed, prompt = checked.request.seed, checked.request.prompt
        shown = (ADMIN_DETAILS.format(seed=seed, prompt=prompt) if self.wants_details(ctx, section) else "")
        shown += note
        job = checked.job(asker_id=msg.sender_id, asker_name=msg.sender_name, chat=msg.chat,
                          message_id=msg.id, caption=self.caption(seed, shown, section))

        async def acknowledge(receipt: Receipt) -> None:
            await ctx.say(Reply(self.ack(receipt, shown)))

        await ctx.jobs.submit(job, limits, on_accepted=acknowledge)

    @staticmethod
    def wants_details(ctx: Context, section: Any) -> bool:
        """The seed and English text are for admins, for whoever asks with "#详情", or for everyone when
        the config's show_prompt is on; the group sees the picture or video alone."""
        msg = ctx.message
        return (section.show_prompt or msg.sender_id in ctx.config.bot.admins
                or any(word in msg.text for word in DETAILS_WORDS))

    def _user_error(self, exc: Exception) -> UserInputError:
        """The asker's plain sentence; a fix only the admin can make travels along for them."""
        if not isinstance(exc, GeneratorError):
            return UserInputError(str(exc))
        text = str(exc)
        if isinstance(exc, ModelNotFound) and self.model_missing_reply:
            text = self.model_missing_reply
        return UserInputError(text, admin_detail=exc.admin_detail, problem=exc.problem)

    def limits(self, ctx: Context) -> Limits:
        """The pending limit from the kind's section and the day quotas of this chat (room overrides
        applied); admins are exempt from the day quotas."""
        msg, config = ctx.message, ctx.config
        is_admin = msg.sender_id in config.bot.admins
        return limits_for(self.section(ctx).queue, ctx.settings.quotas, self.kind, is_admin=is_admin)
