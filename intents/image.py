"""图片生成: rewrite the chat into an English FLUX prompt that keeps what was asked for, queue the
picture on the shared GPU queue, ack at once; the worker (`bot/jobs/` + `bot/jobs/kinds/image.py`) posts the
picture with @asker.

The shared flow is `intents/generation.py`; the image rewriter adds one check of its own: key nouns
the asker used (柴犬, 旗袍, 长城... from `prompts/image_glossary.yaml`) must survive in English. A small
model once turned 柴犬 into "a dog"; such an answer is sent back once with the correction, then reported
to the asker instead of drawing the wrong thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from ruamel.yaml import YAML

from bot.jobs import Receipt
from bot.ops.notices import ADMINS_TOLD
from bot.plugin import IntentSpec
from bot.time_text import eta_text
from intents.generation import GenerationIntent, RewriteRejected, requested_overrides
from prompts import PROMPTS_DIR

MIN_WORDS, MAX_WORDS = 25, 90
GLOSSARY_PATH = PROMPTS_DIR / "image_glossary.yaml"

NO_LLM_REPLY = "画图前我要先把你的描述整理一下，可我这会儿忙不过来，稍后再@我试试吧🙏"
REWRITE_FAILED_REPLY = "抱歉，我没能理解好你想要的画面，换个说法再试一次吧～"
LOST_SUBJECT_REPLY = ("抱歉，我两次都没能把「{words}」放进画里，怕画出来不是你要的。"
                      "换个说法再试一次吧～")
MODEL_MISSING_REPLY = f"画图的功能还没有装好，暂时画不了图，{ADMINS_TOLD}。"
ACK_FIRST = "收到，马上画～{eta}"
ACK_QUEUED = "收到，排队第 {position} 位。{eta}"
ACK_NO_WORKER = "收到，排队第 {position} 位。负责画图的机器现在不在线，等它恢复后就开始画。"
CAPTION = "你要的图画好啦🎨"

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

    def reply(self, failed_template: str) -> str:
        return LOST_SUBJECT_REPLY.format(words="、".join(self.words))


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


class ImageIntent(GenerationIntent):
    kind = "image"
    probe_prompt = "A Shiba Inu sitting in the snow."
    model_missing_reply = MODEL_MISSING_REPLY
    rewriter = "image_rewrite"
    words = (MIN_WORDS, MAX_WORDS)
    no_llm_reply = NO_LLM_REPLY
    failed_reply = REWRITE_FAILED_REPLY
    rewrite_max_tokens = 300

    def check_answer(self, answer: str, request: str, limit: int | None, count: Callable[[str], int]) -> str:
        """The cleaned, fitted prompt, or LostSubject when a glossary noun of the request is missing."""
        prompt = super().check_answer(answer, request, limit, count)
        terms = key_terms(request)
        lost = missing_terms(prompt, terms)
        if lost:
            raise LostSubject(lost, terms)
        return prompt

    def rewrite_variables(self, request: str) -> dict[str, object]:
        return {"must_keep": must_keep_block(key_terms(request))}

    def overrides(self, text: str, section: Any) -> dict[str, int]:
        return requested_image_overrides(text, section.sampling.height, section.sampling.width)

    def request(self, prompt: str, section: Any, **overrides: Any) -> Any:
        from generators.flux import ImageRequest

        return ImageRequest.from_config(prompt, section.sampling, **overrides)

    def ack(self, receipt: Receipt, shown: str) -> str:
        template = ACK_FIRST if receipt.position <= 1 else ACK_QUEUED
        if not receipt.live_workers:
            template = ACK_NO_WORKER
        return template.format(position=receipt.position, eta=eta_text(receipt.eta_s))

    def caption(self, seed: int, shown: str, section: Any) -> str:
        return CAPTION + shown


_intent = ImageIntent()
handle, rewrite_prompt = _intent.handle, _intent.rewrite_prompt


INTENT = IntentSpec(name="image", label="图片生成", handler=handle, follow_up="picture",
                    describe="要求画一张图、生成一张图片或照片")
