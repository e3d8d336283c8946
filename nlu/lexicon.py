"""Plain simplified Mandarin out of what families type, for the no-LLM paths (embedded classifier, rule
slots, follow-ups): traditional characters, dialect and English day/place words mapped by
prompts/zh_lexicon.yaml; a retracted request ("别画了，查天气") dropped; city names found anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ruamel.yaml import YAML

from prompts import PROMPTS_DIR

LEXICON_PATH = PROMPTS_DIR / "zh_lexicon.yaml"

# "别画了，" "不要视频，" "算了不开车了，" "不用找餐厅了，": a clause that takes back a request, followed
# by the one that counts
_RETRACTION = re.compile(
    r"^(?:算了|好吧|那|哎)?[，, ]?(?:别|不要|不用|不想|不|甭|唔好|唔使|唔要)[^，,。！!？?：:]{0,6}?"
    r"(?:画|图|照片|视频|动画|短片|查|找|搜|天气|路线|导航|开车|打车|坐车|骑|走路|公交|地铁|餐厅|饭店)"
    r"[^，,。！!？?：:]{0,4}[，,。！!：: ]+(?=\S)")
_CLAUSE_SPLIT = re.compile(r"[，,。！!？?；;：:\s]+")


@dataclass(frozen=True)
class Lexicon:
    characters: dict[int, str]  # str.translate table, traditional -> simplified
    words: tuple[tuple[re.Pattern[str], str], ...]
    cities: tuple[str, ...]  # longest first
    city_pattern: re.Pattern[str]


@cache
def lexicon() -> Lexicon:
    """The word lists, read once (a broken file names itself in the error)."""
    data = YAML(typ="safe").load(LEXICON_PATH.read_text(encoding="utf-8")) or {}
    chars = data.get("characters") or {}
    traditional, simplified = str(chars.get("traditional", "")), str(chars.get("simplified", ""))
    if len(traditional) != len(simplified):
        raise ValueError(f"{LEXICON_PATH}: characters: traditional and simplified differ in length")
    table = str.maketrans(traditional, simplified)
    mapping = {str(k).lower(): str(v) for k, v in (data.get("words") or {}).items()}
    mapping.update({str(k).lower(): str(v) for k, v in (data.get("english_cities") or {}).items()})
    words = tuple(
        (re.compile(rf"(?<![a-z]){re.escape(word)}(?![a-z])" if word.isascii() else re.escape(word),
                    re.IGNORECASE), value)
        for word, value in sorted(mapping.items(), key=lambda item: -len(item[0])))
    cities = tuple(sorted({c for c in str(data.get("cities", "")).split() if c}, key=len, reverse=True))
    return Lexicon(table, words, cities, re.compile("|".join(map(re.escape, cities))))


def normalise(text: str) -> str:
    """Simplified characters and standard words: "聽日落唔落雨" -> "明天下唔下雨"."""
    lex = lexicon()
    text = text.translate(lex.characters)
    for pattern, value in lex.words:
        text = pattern.sub(value, text)
    return text


def without_retraction(text: str) -> str:
    """The request that counts when the message first takes one back: "别画了，查天气" -> "查天气"."""
    stripped = text.strip()
    match = _RETRACTION.match(stripped)
    if match is None:
        return stripped
    rest = stripped[match.end():]
    return rest if _CLAUSE_SPLIT.sub("", rest) else stripped


def find_city(text: str) -> tuple[int, str] | None:
    """The first known city (or province) named in `text`, with its position."""
    match = lexicon().city_pattern.search(text)
    return (match.start(), match.group(0)) if match else None
