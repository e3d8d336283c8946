"""天气: the forecast for the place and day asked (今天/明天/后天/周末/周X/a date), from 高德.

Slots come from the LLM (prompts/weather.md); a missing place uses amap.default_city or asks back.
Today gets the live report plus today's forecast; other days the forecast, which covers today and the
next three days. The reply is a template with a one-line hint (umbrella, coat, heat).
"""

from __future__ import annotations

import datetime as dt
import re

from loguru import logger

from bot.config import AmapConfig
from bot.messages import Reply
from bot.pipeline.context import Context
from bot.plugin import IntentSpec
from intents.slots import amap_failed, amap_slots, answered, explain, finish, local_now, not_found
from services.amap import AmapClient, AmapError, DayCast, LiveWeather

FIELDS = ("place", "day")
WEEKDAYS = "一二三四五六日天"
_WEEKDAY_RE = re.compile(r"(下下|下个?|这个?|本)?(?:周|星期|礼拜)([一二三四五六日天])")
_DATE_RE = re.compile(r"(?:(\d{4})[-/年])?(\d{1,2})[-/月](\d{1,2})[日号]?")
_RELATIVE = {"大后天": 3, "后天": 2, "明天": 1, "明日": 1, "今天": 0, "今日": 0, "现在": 0, "今晚": 0}


def target_days(day: str, today: dt.date) -> list[dt.date] | None:
    """The dates a day phrase means, relative to `today`; None when it is not a day phrase."""
    day = day.strip()
    if not day:
        return None
    for word, offset in _RELATIVE.items():
        if word in day:
            return [today + dt.timedelta(days=offset)]
    if "周末" in day or "週末" in day:
        if today.weekday() == 6:  # on Sunday "周末" is today, "下周末" the coming Saturday and Sunday
            saturday = today + dt.timedelta(days=6)
            return [saturday, saturday + dt.timedelta(days=1)] if "下" in day else [today]
        saturday = today + dt.timedelta(days=5 - today.weekday())
        if "下" in day:
            saturday += dt.timedelta(days=7)
        days = [saturday, saturday + dt.timedelta(days=1)]
        return [d for d in days if d >= today]
    match = _WEEKDAY_RE.search(day)
    if match:
        weekday = min(WEEKDAYS.index(match.group(2)), 6)
        monday = today - dt.timedelta(days=today.weekday())
        weeks = {"下下": 2}.get(match.group(1) or "", 1 if (match.group(1) or "").startswith("下") else 0)
        date = monday + dt.timedelta(days=weekday + 7 * weeks)
        if not match.group(1) and date < today:  # "周一" said on a Wednesday: next Monday
            date += dt.timedelta(days=7)
        return [date]
    match = _DATE_RE.search(day)
    if match:
        year = int(match.group(1) or today.year)
        try:
            date = dt.date(year, int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
        if not match.group(1) and date < today - dt.timedelta(days=180):  # "1月2日" said in December
            date = date.replace(year=year + 1)
        return [date]
    return None


def day_label(date: dt.date, today: dt.date) -> str:
    names = {0: "今天", 1: "明天", 2: "后天", 3: "大后天"}
    prefix = names.get((date - today).days, "")
    weekday = "周" + "一二三四五六日"[date.weekday()]
    if prefix:
        return f"{prefix}（{date.month}月{date.day}日 {weekday}）"
    return f"{date.month}月{date.day}日（{weekday}）"


def wind_text(direction: str, power: str) -> str:
    power = power.replace("级", "")
    if not power:
        return ""
    if not direction or direction in ("无风向", "旋转不定"):
        return f"风力{power}级"
    return f"{direction}风{power}级"


def weather_text(day: str, night: str) -> str:
    if not night or day == night:
        return day or night
    return f"{day}转{night}"


def hint(casts: list[DayCast]) -> str:
    """One practical line for the days shown."""
    words = "".join(c.day_weather + c.night_weather for c in casts)
    lows = [c.night_temp for c in casts if c.night_temp is not None]
    highs = [c.day_temp for c in casts if c.day_temp is not None]
    low, high = (min(lows) if lows else None), (max(highs) if highs else None)
    if "雪" in words:
        return "可能下雪，注意保暖、路上防滑。"
    if "雨" in words:
        return "有雨，出门记得带伞☔"
    if low is not None and low <= 5:
        return "天冷，穿厚外套，注意保暖。"
    if low is not None and (low <= 12 or (high is not None and high - low >= 10)):
        return "早晚凉，出门带件外套。"
    if high is not None and high >= 33:
        return "天热，注意防晒多喝水。"
    if "霾" in words or "沙" in words:
        return "空气不太好，出门戴口罩。"
    return "天气不错，适合出门走走～"


def cast_line(cast: DayCast, today: dt.date) -> str:
    temps = [t for t in (cast.night_temp, cast.day_temp) if t is not None]
    temp = f"{min(temps)}~{max(temps)}°C" if temps else ""
    parts = [weather_text(cast.day_weather, cast.night_weather), temp,
             wind_text(cast.day_wind, cast.day_power)]
    return f"{day_label(cast.date, today)}：" + "，".join(p for p in parts if p)


def live_line(live: LiveWeather) -> str:
    parts = [live.weather, f"{live.temperature}°C" if live.temperature else "",
             wind_text(live.wind_direction, live.wind_power),
             f"湿度{live.humidity}%" if live.humidity else ""]
    return "现在" + "，".join(p for p in parts if p)


def render_weather(city: str, casts: list[DayCast], today: dt.date, live: LiveWeather | None) -> str:
    lines = [f"{city}天气"]
    if live is not None and any(c.date == today for c in casts):
        lines.append(live_line(live))
    lines.extend(cast_line(c, today) for c in casts)
    lines.append("💡" + hint(casts))
    return "\n".join(lines)


async def handle(ctx: Context) -> Reply:
    slots = await amap_slots(ctx, FIELDS)
    return answered(await forecast_for(ctx, slots), slots)


async def forecast_for(ctx: Context, slots: dict[str, str]) -> Reply:
    config = ctx.config.amap
    client = ctx.amap
    place = slots["place"] or (config.default_city or "")
    if not place:
        return ctx.ask(slots, "place", "想查哪个城市的天气呀？")
    today = local_now(config).date()
    days = (target_days(slots["day"], today) or target_days(ctx.message.text, today) or [today])
    try:
        location = await client.geocode(place)
        if location is None or not location.adcode:
            return Reply(not_found(place))
        forecast = await client.forecast(location.adcode)
        live = await client.live_weather(location.adcode) if today in days else None
    except AmapError as exc:
        return await amap_failed(ctx, exc)
    if forecast is None or not forecast.casts:
        return Reply(f"高德暂时没有「{place}」的天气预报，换个城市名试试？")
    casts = [c for c in forecast.casts if c.date in days]
    if not casts:
        last = forecast.casts[-1].date
        asked = slots["day"] or "那天"
        if all(day < today for day in days):
            return Reply(f"{asked}已经过去啦，我只能查今天和之后几天的天气哦～")
        return Reply(f"天气预报只能看到{last.month}月{last.day}日，{asked}的还看不到哦，过两天再问我～")
    return await finish(ctx, render_weather(forecast.city or place, casts, today, live))


DAILY_FAILED_REPLY = "今天的天气暂时没查到，稍后可以@我问问～"
DAILY_OFF_REPLY = "天气功能未开通，今天的天气播报先停一停～"


async def daily_report(client: AmapClient, city: str, config: AmapConfig) -> str:
    """Today's weather for a schedule's `city` (schedules.jobs kind weather), never raising."""
    if not client.key:
        return DAILY_OFF_REPLY
    try:
        location = await client.geocode(city)
        if location is None or not location.adcode:
            return f"没找到「{city}」，请管理员检查 schedules 里的 city。"
        forecast = await client.forecast(location.adcode)
        live = await client.live_weather(location.adcode)
    except AmapError as exc:
        logger.warning("schedules: weather for {} failed: {}", city, exc)
        return explain(exc)
    today = local_now(config).date()
    casts = [c for c in (forecast.casts if forecast else []) if c.date == today]
    if forecast is None or not casts:
        return DAILY_FAILED_REPLY
    return "📅 每日天气\n" + render_weather(forecast.city or city, casts, today, live)


INTENT = IntentSpec(name="weather", label="天气", handler=handle, follow_up="weather",
                    describe="问某地某天的天气、气温、要不要带伞/加衣服")
