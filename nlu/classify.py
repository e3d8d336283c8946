"""Which of the eight intents (or chat) the latest message asks for, judged by the LLM.

The answer is parsed defensively: the exact label, else the one label contained in the answer, else chat.
"""

from __future__ import annotations

import re

from bot.llm import LLM, ChatMessage
from bot.pipeline.context import Context
from intents import Intent
from prompts import render

_NOISE = re.compile(r"[\s\"'“”‘’「」『』【】\[\]<>《》.。,，:：!！?？`*#-]+")


def parse_label(answer: str) -> Intent:
    """Map a raw LLM answer to an Intent; anything unclear is chat."""
    cleaned = _NOISE.sub("", answer)
    for intent in Intent:
        if cleaned == intent.value or cleaned.lower() == intent.module:
            return intent
    found = {intent for intent in Intent if intent.value in answer}
    if len(found) == 1:
        return found.pop()
    return Intent.CHAT


async def classify(ctx: Context) -> Intent:
    """Ask the LLM for the label of ctx.message; raises LLMUnavailable when it cannot answer."""
    return await classify_text(ctx.llm, ctx.message.text, ctx.message.sender_name, ctx.transcript,
                               timeout_s=ctx.config.llm.classify_timeout_s)


async def classify_text(llm: LLM, question: str, sender: str, history: str, *, timeout_s: float) -> Intent:
    """The same, for a bare text (`xiaoai eval-intents` has no chat around it)."""
    system, user = render("classify", history=history, sender=sender, question=question)
    answer = await llm.complete(
        [ChatMessage("system", system), ChatMessage("user", user)],
        timeout_s=timeout_s,
        max_tokens=16,
        temperature=0,
    )
    return parse_label(answer)
