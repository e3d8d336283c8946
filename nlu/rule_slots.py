"""Slots read from the wording alone, for when no LLM answers: weather place/day, route ends, places.

The message is first made plain (nlu.lexicon: simplified characters, dialect and English words, a
retracted request dropped), then a known city or "X区" is taken wherever it stands, days anywhere, and
route ends around 从/到/去 (or "from ... to ..."). Empty slots are asked for as usual.
"""

from __future__ import annotations

import re

from nlu.lexicon import find_city, normalise, without_retraction

_PUNCT = "，,。？?！!、；;：:"
# ways of travelling, as they stand between or after the two places ("从A骑车到B", "A到B开车")
MODE = (r"(?:走路|步行|走着|徒步|散步|骑(?:共享单车|自行车|电动车|电瓶车|小黄车|单车|车|行)?|开车|驾车|自驾"
        r"|打(?:个)?(?:车|的)|叫(?:个)?(?:车|滴滴)|滴滴|(?:坐|乘|搭)(?:地铁|公交车?|大巴|巴士|轻轨|出租车?|高铁"
        r"|火车|动车|车)?|走)")
_STOP = (rf"(?:[{_PUNCT}]|怎么|咋|要|需要|得|大概|大约|多少|多久|多远|多长|几|哪|在哪|的路线|路线"
         r"|远不远|堵不堵|来得及|吗|呢|\s+how|\s+by|\s+on foot|\s*$)")
_ROUTE_PATTERNS = (
    re.compile(rf"从(?P<origin>[^{_PUNCT}]+?){MODE}?(?:到|去|至|回)(?P<destination>[^{_PUNCT}]+?){MODE}?{_STOP}"),
    re.compile(rf"^(?P<origin>[^{_PUNCT}]+?){MODE}?(?:到|至)(?P<destination>[^{_PUNCT}]+?){MODE}?{_STOP}"),
    re.compile(r"\bfrom\s+(?P<origin>.+?)\s+to\s+(?P<destination>.+?)(?:\s+(?:how|by|on|please)\b|[,?.!]|\s*$)",
               re.IGNORECASE),
)
_DESTINATION_ONLY = re.compile(rf"{MODE}?(?:到|去|回)(?P<destination>[^{_PUNCT}]+?){MODE}?{_STOP}")
_ORIGIN_HERE = re.compile(rf"我(?:现在)?在(?P<origin>[^{_PUNCT}]{{2,12}}?)(?:[{_PUNCT}]|$)")
_MODE_EDGES = re.compile(rf"^(?:那么?|要是|如果|还是)?{MODE}*|{MODE}+$|[呢吗吧啊呀]+$")

_DAY = re.compile(r"大后天|后天|明天|明日|今天|今日|现在|今晚|下?周末"
                  r"|(?:下下|下个?|这个?|本)?(?:周|星期|礼拜)[一二三四五六日天]|\d{1,2}月\d{1,2}[日号]")
_DAY_PREFIX = re.compile(r"^(?:这个?|本)")
_DISTRICT = re.compile(r"(?<![小市郊景园社城校厂])(?P<place>[\u4e00-\u9fa5]{2}(?:新区|区|县))")
_WEATHER_PLACE = re.compile(r"(?:去|在|到)?(?P<place>[\u4e00-\u9fa5]{2,8}?)(?:的|市|那边)?"
                            r"(?:天气|气温|温度|下雨|下雪|冷不冷|热不热|要不要|会不会)")
_NOT_A_PLACE = re.compile(r"[这那咱我你他她们外出儿么吗不会要下冷热]")

_NEAR = re.compile(rf"(?P<place>[^{_PUNCT}]{{0,12}}?)(?:附近|周边|旁边|一带|边上|周围)")
_FILLER = re.compile(r"^(?:请问|请|帮我|帮忙|麻烦|给我|给|找找|找一下|找个|找|查一?下|查查|看看|问一?下"
                     r"|推荐一?下|推荐个?|我想知道|小爱)+")
_HERE = {"", "这", "那", "这里", "那里", "这儿", "我", "我们", "咱们", "我家"}
_ASKING = re.compile(r"^(?:有没有|有没|有什么|有哪些|哪里有|哪儿有|哪有|哪家|什么|有|的|值得去的|值得|好点的"
                     r"|好一点的|便宜点的|24小时)+")
_GENERIC = {"", "地方", "店", "地儿", "去处", "东西"}


def rule_slots(kind: str, text: str) -> dict[str, str]:
    """Best-effort slots for `kind` ("weather", "route", "places") from the wording alone."""
    plain = _FILLER.sub("", without_retraction(normalise(text.strip())))
    if kind == "route":
        return route_slots(plain)
    if kind == "weather":
        return {"place": weather_place(plain), "day": weather_day(plain)}
    if kind == "places":
        return places_slots(plain)
    return {}


# -- weather ----------------------------------------------------------------------------------------------
def weather_day(text: str) -> str:
    """The day phrase the weather handler reads ("明天", "周末", "下周三"), or ""."""
    match = _DAY.search(text)
    return _DAY_PREFIX.sub("", match.group(0)) if match else ""


def weather_place(text: str) -> str:
    """A known city anywhere, else "X区/X县", else the words right before a weather word."""
    city = find_city(text)
    if city is not None:
        return city[1]
    district = _DISTRICT.search(text)
    if district is not None:
        return district.group("place")
    match = _WEATHER_PLACE.search(_DAY.sub("", text))
    if match is None or _NOT_A_PLACE.search(match.group("place")):
        return ""
    return match.group("place")


# -- routes -----------------------------------------------------------------------------------------------
def route_slots(text: str) -> dict[str, str]:
    """origin and destination, or only the destination ("走到王府井要多久"), or {}."""
    for pattern in _ROUTE_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        origin, destination = _place_only(match.group("origin")), _place_only(match.group("destination"))
        if origin and destination:
            return {"origin": origin, "destination": destination}
    match = _DESTINATION_ONLY.search(text)
    if match is None or not _place_only(match.group("destination")):
        return {}
    slots = {"destination": _place_only(match.group("destination"))}
    here = _ORIGIN_HERE.search(text)
    if here is not None and here.start() < match.start():
        slots = {"origin": here.group("origin").strip(), **slots}
    return slots


def _place_only(words: str) -> str:
    """A route end without the travel words around it: "骑车从家" is no place, "家" is."""
    return _MODE_EDGES.sub("", words.strip()).strip()  # "那" of "那到南京路呢" is no place either


# -- places -----------------------------------------------------------------------------------------------
def places_slots(text: str) -> dict[str, str]:
    """place (before 附近/周边, or a city) and keyword (what to look for); {} when neither is there."""
    near = _NEAR.search(text)
    if near is not None:
        place = _FILLER.sub("", near.group("place").strip())
        place = "" if place in _HERE else place
        tail = text[near.end():]
    else:
        city = find_city(text)
        place = city[1] if city else ""
        tail = text[city[0] + len(city[1]):] if city else text
    keyword = _keyword(tail)
    return {"place": place, "keyword": keyword} if place or keyword else {}


def _keyword(tail: str) -> str:
    """What is looked for: "有什么好吃的火锅" -> 火锅, "有什么好玩的" -> 景点, "哪有加油站" -> 加油站."""
    tail = re.sub(rf"(?:推荐|推荐一下)?[吗呢啊呀吧不{_PUNCT}\s]*$", "", tail.strip())
    head, _, last = tail.rpartition("的")
    if "的" in tail and last not in _GENERIC:
        return last
    if not head:
        head = tail
    if re.search(r"吃饭|聚餐", head):
        return "餐厅"
    if re.search(r"好吃|吃的|美食", head + "的" if "的" in tail else head):
        return "美食"
    if re.search(r"玩|逛|去处|景点", head):
        return "景点"
    return _ASKING.sub("", head).strip()


# -- route or places? -----------------------------------------------------------------------------------
_ASKS_THE_WAY = re.compile(r"怎么走|怎么去|咋走|咋去|如何去|如何走|怎样去|怎么过去|怎么到|怎么坐车|路线")
_LOOKS_FOR_PLACES = re.compile(r"附近|周边|周围|一带|推荐|哪里有|哪儿有|哪有|有什么|有哪些|好吃|好玩")


def asks_the_way(text: str) -> bool:
    """"去颐和园怎么走": the way to one place, not a search for places of a kind ("附近哪里有火锅")."""
    plain = normalise(text)
    return bool(_ASKS_THE_WAY.search(plain)) and not _LOOKS_FOR_PLACES.search(plain)
