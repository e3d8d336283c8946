"""Slots from the wording alone, for when no LLM is configured or it is down: simple patterns, so
weather, routes and places still answer."""

from __future__ import annotations

import re

_STOP = r"(?:[，,。？?！!]|怎么走|怎么去|怎么坐|要多久|多久|多远|的路线|路线|多少钱|坐什么车|吗|呢|$)"
_MODE = r"(?:走路|步行|骑车|骑行|开车|驾车|打车|坐车|坐地铁|坐公交|乘地铁|乘公交|走|骑|坐)"
_ROUTE_PATTERNS = (
    re.compile(rf"从(?P<origin>.+?){_MODE}?(?:到|去|至)(?P<destination>.+?){_MODE}?{_STOP}"),
    re.compile(rf"^(?P<origin>[^，,。？?！!]+?){_MODE}?(?:到|至)(?P<destination>.+?){_MODE}?{_STOP}"),
    re.compile(rf"{_MODE}?(?:到|去)(?P<destination>.+?){_MODE}?{_STOP}"),
)
_DAY = re.compile(r"大后天|后天|明天|明日|今天|今日|现在|今晚|下?周末"
                  r"|(?:下下|下个?|这个?|本)?(?:周|星期|礼拜)[一二三四五六日天]|\d{1,2}月\d{1,2}[日号]")
_WEATHER_PLACE = re.compile(r"(?:去|在|到)?(?P<place>[\u4e00-\u9fa5]{2,8}?)(?:的|市|那边)?"
                            r"(?:天气|气温|温度|下雨|下雪|冷不冷|热不热|要不要|会不会)")
_NEARBY = re.compile(r"(?P<place>[^，,。？?！!]{2,12}?)(?:附近|周边|旁边|一带)(?:有)?(?:什么|啥|哪些|哪家)?"
                     r"(?:好吃的|好玩的|好的|的)?(?P<keyword>[^，,。？?！!吗呢]{0,8}?)(?:推荐|吗|呢|[，,。？?！!]|$)")
_FILLER = re.compile(r"^(?:请问|帮我|麻烦|查一?下|查查|看看|问一?下)+")


def rule_slots(kind: str, text: str) -> dict[str, str]:
    """Best-effort slots from the wording alone; empty slots are asked for as usual."""
    text = _FILLER.sub("", text.strip())
    if kind == "route":
        for pattern in _ROUTE_PATTERNS:
            match = pattern.search(text)
            if match and not re.fullmatch(_MODE, match.groupdict().get("origin", "-")):  # "走到王府井"
                return {k: v.strip() for k, v in match.groupdict().items()}
        return {}
    if kind == "weather":
        day = _DAY.search(text)
        place = _WEATHER_PLACE.search(_DAY.sub("", text))
        return {"place": place.group("place") if place else "", "day": day.group(0) if day else ""}
    if kind == "places":
        match = _NEARBY.search(text)
        if not match:
            return {}
        keyword = match.group("keyword") or ("美食" if "好吃" in text else "景点" if "好玩" in text else "")
        return {"place": match.group("place"), "keyword": keyword}
    return {}
