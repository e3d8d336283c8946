"""Short follow-ups that lean on the asker's previous turn, resolved without an LLM.

"那开车呢" after a walking route keeps both places and switches the mode; "那上海呢" after a forecast
keeps the day; "换成视频吧" after a picture renders the picture's subject as a video. The dispatcher
remembers each asker's last request per chat as a `PreviousTurn` and calls `resolve_follow_up` before
classifying; `None` means the message stands on its own (classify it as usual).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from nlu.embedded import Examples, load_examples, named_route_mode
from nlu.lexicon import find_city, normalise
from nlu.rule_slots import places_slots, route_slots, rule_slots, weather_day, weather_place

if TYPE_CHECKING:
    from bot.plugin import IntentRegistry, IntentSpec

SLOT_KINDS = ("weather", "route", "places")  # follow-up kinds whose slots the rules read (rule_slots)
GENERATION_KINDS = ("picture", "clip")
MAX_FOLLOW_UP = 24  # characters; longer messages are requests of their own

_EDGE_PUNCT = " \t，,。.！!？?~～、"
_LEADING = re.compile(r"^(?:那么?|要是|如果|还是|或者|换成|改成|换|改|用|就|and|what about|how about"
                      r"|then)\s*", re.IGNORECASE)
_TRAILING = re.compile(r"\s*(?:呢|的话|吧|吗|啊|呀|怎么样|如何|咋样|instead)+$", re.IGNORECASE)
_ASKS = re.compile(r"^(?:那|要是|如果|还是|换成|改成|换|改|what about|how about|and\b)"
                   r"|(?:呢|的话|吧|吗|多久|多远|怎么走|怎么去|怎么坐|多长时间|[?？])$", re.IGNORECASE)
_WEATHER_WORDS = re.compile(r"[\s，,。？?！!呢吗吧也还会的]|天气|下雨|下雪|冷|热|多少度|几度|怎么样|如何")
_SWAP = re.compile(r"反过来|倒过来|回来|回程|返回|the other way|way back", re.IGNORECASE)
_START_AT = re.compile(r"从(?P<origin>[^，,。？?！!]{1,12}?)(?:出发|走|开始)")
_TO_VIDEO = re.compile(r"(?:换成|改成|做成|变成|弄成|整成|来个|来段|来一段|要)(?:一段|一个)?"
                       r"(?:视频|动画|短片)|视频版|动起来|(?:make|turn) it (?:into )?a video|as a video"
                       r"|video version", re.IGNORECASE)
_TO_IMAGE = re.compile(r"(?:换成|改成|还是|做成|来|画)(?:一)?张?(?:图|图片|照片|画)|图片版"
                       r"|(?:make|turn) it (?:into )?a picture|as a picture", re.IGNORECASE)
_AGAIN = re.compile(r"^(?:再|重新)(?:画|来|做|生成|整)(?:一张|一个|一段|一次|一遍|个|张|段)?$"
                    r"|^(?:again|one more|another one)$", re.IGNORECASE)
_STYLE = re.compile(r"^(?:换成|改成|用|来个|要)(?P<style>.{1,10}?(?:风格|风|style|版|色调))$", re.IGNORECASE)

# "帮我画一只柴犬" -> "一只柴犬"; "做一段熊猫打太极的视频" -> "熊猫打太极"
_POLITE = re.compile(r"^(?:请|麻烦|帮我|帮忙|给我|小爱|能不能|可以|can you|please)+\s*", re.IGNORECASE)
_ORDER = re.compile(r"^(?:画|生成|做|整|搞|弄|来|拍|制作|设计|出|P|draw|make|generate|create)\s*",
                    re.IGNORECASE)
_COUNTER = re.compile(r"^(?:(?:一|小)?(?:张|幅|段|个|部|条|副)|a picture of|a video of|an image of)\s*",
                      re.IGNORECASE)
_MEDIUM_HEAD = re.compile(r"^(?:图片|图|视频|动画|短片|画)[:：]\s*")
_MEDIUM_TAIL = re.compile(r"的?(?:图片|图|照片|插画|画|短视频|小视频|视频|动画|短片)$")


@dataclass(frozen=True)
class PreviousTurn:
    """What the bot answered the asker last: the intent, the slots it used, the picture/video subject."""

    intent: IntentSpec
    slots: Mapping[str, str] = field(default_factory=dict)
    subject: str = ""  # image/video: what was shown, in the asker's words

    @classmethod
    def from_request(cls, intent: IntentSpec, text: str, slots: Mapping[str, str] | None = None
                     ) -> PreviousTurn:
        """The turn remembered after answering `text` with `intent`; slots default to the rules' reading."""
        if slots is None:
            slots = rule_slots(intent.follow_up, text) if intent.follow_up in SLOT_KINDS else {}
        subject = subject_of(text) if intent.follow_up in GENERATION_KINDS else ""
        return cls(intent, dict(slots), subject)


@dataclass(frozen=True)
class FollowUp:
    """The follow-up resolved: the intent to run, its slots, and the request spelled out in full."""

    intent: IntentSpec
    slots: dict[str, str]
    request: str  # a self-contained request the handler can read as if the asker had typed it
    subject: str = ""


def subject_of(request: str) -> str:
    """The subject of a picture/video request: what to show, without the ordering words."""
    text = normalise(request.strip()).strip(_EDGE_PUNCT)
    for pattern in (_POLITE, _ORDER, _COUNTER, _MEDIUM_HEAD):
        text = pattern.sub("", text, count=1)
    return _MEDIUM_TAIL.sub("", text).strip(_EDGE_PUNCT) or request.strip()


def resolve_follow_up(text: str, previous: PreviousTurn | None, intents: IntentRegistry) -> FollowUp | None:
    """The follow-up `text` resolved against the asker's previous turn, or None if it stands alone."""
    if previous is None:
        return None
    plain = normalise(text.strip()).strip(_EDGE_PUNCT)
    if not plain or len(plain) > MAX_FOLLOW_UP:
        return None
    kind = previous.intent.follow_up
    if kind == "route":
        return _route(plain, previous, _examples(intents))
    if kind == "weather":
        return _weather(plain, previous)
    if kind == "places":
        return _places(plain, previous)
    if kind in GENERATION_KINDS and previous.subject:
        return _generation(plain, previous, intents)
    return None


@cache
def _examples(intents: IntentRegistry) -> Examples:
    return load_examples(intents)


def _remainder(plain: str) -> str:
    """"那上海呢" -> "上海": the follow-up without its leading and trailing asking words."""
    return _TRAILING.sub("", _LEADING.sub("", plain)).strip(_EDGE_PUNCT)


def _route(plain: str, previous: PreviousTurn, examples: Examples) -> FollowUp | None:
    origin, destination = previous.slots.get("origin", ""), previous.slots.get("destination", "")
    if not (origin or destination):
        return None
    own = route_slots(plain)
    if own.get("origin") and own.get("destination"):
        return None  # a whole new route: classify it on its own
    mode = named_route_mode(plain.lower(), examples.route_modes)
    changed = mode is not None
    start = _START_AT.search(plain)
    if _SWAP.search(plain):  # "回来呢": the same two places the other way round
        origin, destination, changed = destination, origin, True
    elif start is not None:
        origin, changed = start.group("origin"), True
    elif own.get("destination"):
        destination, changed = own["destination"], True
    if not changed or not _ASKS.search(plain):
        return None
    intent = mode or previous.intent
    verb = examples.route_verbs.get(intent, "去")
    return FollowUp(intent, {"origin": origin, "destination": destination},
                    f"从{origin}{verb}到{destination}怎么走")


def _weather(plain: str, previous: PreviousTurn) -> FollowUp | None:
    rest = _remainder(plain)
    day = weather_day(rest)
    place = weather_place(rest)
    leftover = rest.replace(day, "", 1).replace(place, "", 1) if day or place else rest
    leftover = _WEATHER_WORDS.sub("", leftover)
    if not (day or place) or len(leftover) > 2 or not _ASKS.search(plain):
        return None  # "那我多穿点", "开车去天津要多久": not a forecast for another place or day
    slots = {"place": place or previous.slots.get("place", ""), "day": day or previous.slots.get("day", "")}
    return FollowUp(previous.intent, slots, f"{slots['day']}{slots['place']}天气怎么样")


def _places(plain: str, previous: PreviousTurn) -> FollowUp | None:
    rest = _remainder(plain)
    city = find_city(rest)
    if city is not None or (re.fullmatch(r"[\u4e00-\u9fa5]{2,6}", rest) and plain != rest):
        place, keyword = (city[1] if city else rest), previous.slots.get("keyword", "")
    else:
        own = places_slots(plain)
        if not own.get("keyword") or not _ASKS.search(plain) and not plain.startswith("有"):
            return None
        place, keyword = own.get("place") or previous.slots.get("place", ""), own["keyword"]
    return FollowUp(previous.intent, {"place": place, "keyword": keyword}, f"{place}附近的{keyword}")


def _generation(plain: str, previous: PreviousTurn, intents: IntentRegistry) -> FollowUp | None:
    picture, clip = (next(iter(intents.with_follow_up(kind)), None) for kind in GENERATION_KINDS)
    subject = previous.subject
    if _TO_VIDEO.search(plain) and clip is not None:
        intent = clip
    elif _TO_IMAGE.search(plain) and picture is not None:
        intent = picture
    elif _AGAIN.search(_TRAILING.sub("", plain)):
        intent = previous.intent
    else:
        style = _STYLE.match(_TRAILING.sub("", plain))
        if style is None or previous.intent is not picture:
            return None
        intent, subject = previous.intent, f"{subject}，{style.group('style')}"
    request = f"画{subject}" if intent is picture else f"做一段视频：{subject}"
    return FollowUp(intent, {}, request, subject)
