"""Which registered intent the latest message asks for, judged by the LLM.

The prompt's label list is written from the registry (each intent's label and one-line description),
so a plugin's intent is offered to the LLM like a built-in one. The answer is parsed defensively: the
exact label (or name), else the one label contained in the answer, else the fallback (chat). A places
label for a question that asks the way to one place ("去颐和园怎么走") is read as a route question, so the
missing origin is asked for instead of searching for places named like the question.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.llm import LLM, ChatMessage
from nlu.embedded import load_examples, named_route_mode
from nlu.rule_slots import asks_the_way
from prompts import render

if TYPE_CHECKING:
    from bot.pipeline.context import Context
    from bot.plugin import IntentRegistry, IntentSpec

_NOISE = re.compile(r"[\s\"'“”‘’「」『』【】\[\]<>《》.。,，:：!！?？`*#-]+")


def parse_label(answer: str, intents: IntentRegistry) -> IntentSpec:
    """Map a raw LLM answer to an intent; anything unclear is the fallback."""
    cleaned = _NOISE.sub("", answer)
    for intent in intents.specs:
        if cleaned == intent.label or cleaned.lower() == intent.name:
            return intent
    found = {intent for intent in intents.specs if intent.label in answer}
    if len(found) == 1:
        return found.pop()
    return intents.fallback


def prompt(intents: IntentRegistry, question: str, sender: str, history: str) -> tuple[str, str]:
    """The classifier prompt (system, user) with the label list of these intents."""
    labels = "\n".join(f"- {intent.label}：{intent.describe}" for intent in intents.specs)
    return render("classify", labels=labels, fallback=intents.fallback.label, example=intents.specs[0].label,
                  history=history, sender=sender, question=question)


class LLMClassifier:
    """`await classifier(ctx)` -> the intent, for the dispatcher; raises LLMUnavailable when the LLM
    cannot answer (the dispatcher then asks the embedded classifier)."""

    def __init__(self, intents: IntentRegistry) -> None:
        self.intents = intents

    async def __call__(self, ctx: Context) -> IntentSpec:
        return await classify_text(ctx.llm, self.intents, ctx.message.text, ctx.message.sender_name,
                                   ctx.transcript, timeout_s=ctx.config.llm.classify_timeout_s)


async def classify_text(llm: LLM, intents: IntentRegistry, question: str, sender: str, history: str, *,
                        timeout_s: float) -> IntentSpec:
    """The same, for a bare text (`xiaoai eval-intents` has no chat around it)."""
    system, user = prompt(intents, question, sender, history)
    answer = await llm.complete(
        [ChatMessage("system", system), ChatMessage("user", user)],
        timeout_s=timeout_s,
        max_tokens=16,
        temperature=0,
    )
    return way_not_places(parse_label(answer, intents), question, intents)


def way_not_places(intent: IntentSpec, question: str, intents: IntentRegistry) -> IntentSpec:
    """A route intent (the travel mode the question names, else the first one, as the embedded classifier
    picks) for a places label on a question that asks the way ("去颐和园怎么走"); any other as it is."""
    if intent.follow_up != "places" or not asks_the_way(question):
        return intent
    routes = intents.with_follow_up("route")
    if not routes:
        return intent
    return named_route_mode(question.lower(), load_examples(intents).route_modes) or routes[0]
