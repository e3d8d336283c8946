"""Which of the eight intents (or chat) the latest message asks for, judged by the LLM.

The answer is parsed defensively: the exact label, else the one label contained in the answer, else chat.
A places label for a question that asks the way to one place ("去颐和园怎么走") is read as a route question,
so the missing origin is asked for instead of searching for places named like the question.
"""

from __future__ import annotations

import re

from bot.llm import LLM, ChatMessage
from bot.pipeline.context import Context
from intents import Intent
from nlu.embedded import load_examples, named_route_mode
from nlu.rule_slots import asks_the_way
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
    return way_not_places(parse_label(answer), question)


def way_not_places(intent: Intent, question: str) -> Intent:
    """A route intent (the travel mode the question names, else public transport) for a places label
    on a question that asks the way ("去颐和园怎么走"); any other label as it is."""
    if intent is not Intent.PLACES or not asks_the_way(question):
        return intent
    return named_route_mode(question.lower(), load_examples().route_modes) or Intent.TRANSIT
