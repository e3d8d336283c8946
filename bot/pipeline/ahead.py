"""Chat answered ahead of the LLM classifier: a mention that is very likely chat starts its chat answer while
the classifier still reads it, so the reply waits for one LLM call instead of two.

"Very likely chat" is read from the wording alone, with no model (embedding a message costs ~10 ms of
CPU; this check ~0.1 ms): no request intent's cue in prompts/intent_examples.yaml matches the plain text,
or chat's own cue does — the cues as the embedded classifier applies them (`nlu.embedded.with_cues`). The
classifier stays authoritative: the dispatcher takes the early answer only when it says chat, and cancels
it otherwise, so a request worded like chat costs one cancelled chat call (the shares on the held-out
sets are in BENCHMARKS.md). Only an intent declared `answer_ahead` — its handler has no effect before it
returns — is started early, and never for a message whose route the classifier alone does not decide
(an open question's answer, a photo) or where chat is off. Nor while a video renders on this process's
CPU (`jobs.render_process: inline`; the default renders in a child process, which never pauses it): the
render thread holds the GIL between its ops, and a second call in flight per mention made the
flood's p99 worse there, not better (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from bot.messages import Reply
from generators.cpu_share import cpu_render_running
from nlu.embedded import EXAMPLES_PATH, load_cues, plain_text

if TYPE_CHECKING:
    from bot.pipeline.context import Context, Pending
    from bot.plugin import IntentRegistry, IntentSpec


@dataclass(eq=False)
class Ahead:
    """A chat answer started before the classifier decided: taken when it says chat, else dropped."""

    task: asyncio.Task[Reply | None]
    taken: bool = False

    async def answer(self) -> Reply | None:
        """The early answer, or its exception, as the handler would have given them."""
        self.taken = True
        return await self.task

    def drop(self) -> None:
        """Cancel it unless it was taken; its outcome is read, so nothing is logged for it."""
        if self.taken:
            return
        self.task.cancel()
        self.task.add_done_callback(_read_outcome)


def _read_outcome(task: asyncio.Task) -> None:
    """`cancel()` silences a task that had already failed; this reads one that fails on its cancellation
    (a client turning it into its own error), so nothing reports "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


class AnswerAhead:
    """Decides whether a message's chat answer may start before the classifier, and starts it. A service:
    the cues are read at start, in a thread, not by the first message of a burst."""

    def __init__(self, intents: IntentRegistry, examples_path: Path = EXAMPLES_PATH) -> None:
        self.intents = intents
        self.examples_path = examples_path
        self._cues: dict[IntentSpec, re.Pattern[str]] | None = None  # read once (~30-60 ms of CPU)
        self._unreadable = False  # the cues could not be read: nothing is answered ahead

    async def start(self) -> None:
        await asyncio.to_thread(self.cues)

    async def stop(self) -> None:
        return None

    def cues(self) -> dict[IntentSpec, re.Pattern[str]] | None:
        """The request cues, read once; None when the file cannot be read (a warning, never a failed start:
        without cues every message would look like chat, so none is answered ahead)."""
        if self._cues is None and not self._unreadable:
            try:
                self._cues = load_cues(self.intents, self.examples_path)
            except (OSError, ValueError) as exc:
                self._unreadable = True
                logger.warning("chat is not answered ahead: the request cues could not be read: {}", exc)
        return self._cues

    def likely_chat(self, text: str) -> bool:
        """No request intent's cue matches `text` (made plain), or chat's does; empty text is not."""
        text, cues = plain_text(text), self.cues()
        if not text or cues is None:
            return False
        matched = {intent for intent, cue in cues.items() if cue.search(text)}
        return not matched or self.intents.fallback in matched

    def begin(self, ctx: Context, open_question: Pending | None) -> Ahead | None:
        """The chat answer, started now, when this message may have it early; else None."""
        chat, msg = self.intents.fallback, ctx.message
        if (not chat.answer_ahead or not ctx.config.chat.answer_ahead or not ctx.llm.configured
                or open_question is not None or msg.photo is not None
                or not ctx.settings.intent_enabled(chat.name) or not self.likely_chat(msg.text)
                or cpu_render_running()):
            return None
        logger.debug("message {}: chat answer started ahead of the classifier", msg.id)
        return Ahead(asyncio.create_task(chat.handler(replace(ctx, intent=chat))))
