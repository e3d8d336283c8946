"""Which of the eight intents (or chat) the latest message asks for, judged by the LLM.

The answer is parsed defensively: the exact label, else the one label contained in the answer, else chat.
"""

from __future__ import annotations

import re

from bot.context import Context
from bot.llm import ChatMessage
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
    system, user = render(
        "classify",
        history=ctx.transcript,
        sender=ctx.message.sender_name,
        question=ctx.message.text,
    )
    answer = await ctx.llm.complete(
        [ChatMessage("system", system), ChatMessage("user", user)],
        timeout_s=ctx.config.llm.classify_timeout_s,
        max_tokens=16,
        temperature=0,
    )
    return parse_label(answer)
