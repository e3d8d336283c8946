"""其它: a chat answer from the LLM, with the configured persona and the recent history."""

from __future__ import annotations

import re

from bot.llm import ChatMessage
from bot.messages import Reply
from bot.pipeline.context import Context
from bot.plugin import IntentSpec
from prompts import render

_SENTENCE_END = re.compile(r"[。！？!?\n]")


def fit_bubble(text: str, limit: int) -> str:
    """Cut to `limit` characters at the last sentence end that fits (never mid-sentence if avoidable)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 3:
        return head[: ends[-1]].strip()
    return head.rstrip() + "…"


async def handle(ctx: Context) -> Reply:
    """Render the prompt, one LLM call, a Reply — nothing else, so it may start before the classifier
    has decided and be cancelled (`answer_ahead`)."""
    chat = ctx.config.chat
    system, user = render(
        "chat",
        persona=chat.persona,
        max_chars=chat.max_reply_chars,
        sender=ctx.message.sender_name,
        history=ctx.transcript,
        question=ctx.message.text or "（只@了你，没说别的）",
    )
    answer = await ctx.llm.complete(
        [ChatMessage("system", system), ChatMessage("user", user)], max_tokens=chat.max_tokens
    )
    return Reply(fit_bubble(answer, chat.max_reply_chars))


INTENT = IntentSpec(name="chat", label="其它", handler=handle, fallback=True, answer_ahead=True,
                    describe="闲聊、问答、以及以上都不是的请求")
