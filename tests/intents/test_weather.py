"""天气: day phrases, the hint, the template, and the handler through the router with the fake LLM and
the fake AMap server (no peer)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from intents.slots import bare_answer, clean_value, parse_json_object, rule_slots
from intents.weather import hint, render_weather, target_days
from services.amap import DayCast, LiveWeather
from tests.support.builtin_intents import Intent
from tests.support.chat_driver import ChatDriver
from tests.support.fake_amap import script_slots

WED = dt.date(2026, 5, 6)  # a Wednesday


@pytest.mark.parametrize(("phrase", "expected"), [
    ("今天", [WED]), ("明天", [WED + dt.timedelta(1)]), ("后天", [WED + dt.timedelta(2)]),
    ("大后天", [WED + dt.timedelta(3)]), ("周末", [dt.date(2026, 5, 9), dt.date(2026, 5, 10)]),
    ("下周末", [dt.date(2026, 5, 16), dt.date(2026, 5, 17)]), ("周五", [dt.date(2026, 5, 8)]),
    ("周一", [dt.date(2026, 5, 11)]), ("下周三", [dt.date(2026, 5, 13)]), ("星期天", [dt.date(2026, 5, 10)]),
    ("2026-05-07", [dt.date(2026, 5, 7)]), ("5月8号", [dt.date(2026, 5, 8)]), ("", None), ("随便", None),
])
def test_target_days(phrase, expected):
    assert target_days(phrase, WED) == expected


def test_weekend_on_saturday_and_sunday():
    saturday, sunday = dt.date(2026, 5, 9), dt.date(2026, 5, 10)
    assert target_days("周末", saturday) == [saturday, sunday]
    assert target_days("周末", sunday) == [sunday]


def test_next_weekend_said_on_sunday_is_not_today():
    saturday, sunday = dt.date(2026, 5, 9), dt.date(2026, 5, 10)
    assert target_days("下周末", sunday) == [dt.date(2026, 5, 16), dt.date(2026, 5, 17)]
    assert target_days("下周末", saturday) == [dt.date(2026, 5, 16), dt.date(2026, 5, 17)]


def cast(day: str, night: str, high: int, low: int, date: dt.date = WED) -> DayCast:
    return DayCast(date, "3", day, night, high, low, "东北", "4")


@pytest.mark.parametrize(("casts", "words"), [
    ([cast("小雨", "多云", 20, 14)], "伞"), ([cast("晴", "小雪", 2, -3)], "雪"),
    ([cast("晴", "晴", 8, 1)], "厚外套"), ([cast("晴", "晴", 24, 11)], "外套"),
    ([cast("晴", "晴", 35, 26)], "防晒"), ([cast("多云", "晴", 25, 18)], "适合出门"),
])
def test_hint(casts, words):
    assert words in hint(casts)


def test_render_weather_today_has_live_and_forecast():
    live = LiveWeather("北京市", "晴", "23", "南", "≤3", "45", "")
    text = render_weather("北京市", [cast("小雨", "中雨", 18, 12)], WED, live)
    assert text.splitlines()[0] == "北京市天气"
    assert "现在晴，23°C，南风≤3级，湿度45%" in text
    assert "今天（5月6日 周三）：小雨转中雨，12~18°C，东北风4级" in text
    assert "伞" in text


def test_parse_json_object_is_defensive():
    expected = {"place": "北京", "day": "明天"}
    assert parse_json_object('```json\n{"place": "北京", "day": "明天"}\n```') == expected
    assert parse_json_object('好的：{"place": "北京", "day": "明天",}') == expected
    assert parse_json_object("不知道") == {}
    assert [clean_value(v) for v in ("null", " 北京 ", None, 3, True, "无")] == ["", "北京", "", "3", "", ""]
    assert bare_answer("从天安门出发。") == "天安门" and bare_answer("x" * 30) == ""


# -- the handler through the router ------------------------------------------------------------------
async def test_tomorrow_forecast_for_the_right_day(driver, fake_llm, amap_server):
    fake_llm.classify("明天北京天气", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "明天北京天气", {"place": "北京", "day": "明天"})
    text = await driver.say("明天北京天气怎么样")
    tomorrow = amap_server.calls("v3/weather/weatherInfo")[0]
    assert tomorrow["city"] == "110000" and tomorrow["extensions"] == "all"
    assert "北京市天气" in text and "明天" in text and "小雨转中雨" in text and "12~18°C" in text
    assert "伞" in text and "现在" not in text  # no live report for tomorrow
    assert len(amap_server.calls("v3/weather/weatherInfo")) == 1


async def test_today_includes_live_weather(driver, fake_llm):
    fake_llm.classify("杭州今天", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "杭州今天", {"place": "杭州", "day": "今天"})
    text = await driver.say("杭州今天热不热")
    assert "杭州市天气" in text and "现在晴，23°C" in text and "今天" in text


async def test_weekend_shows_both_days_or_says_out_of_range(driver, fake_llm):
    fake_llm.classify("周末", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "周末", {"place": "北京", "day": "周末"})
    text = await driver.say("周末北京下雨吗")
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the bot's day, not this machine's
    weekend = target_days("周末", today) or []
    in_range = [d for d in weekend if (d - today).days <= 3]
    if in_range:
        assert all(f"{d.month}月{d.day}日" in text for d in in_range)
    else:
        assert "还看不到" in text


async def test_a_day_already_past_is_not_called_not_yet_visible(driver, fake_llm):
    yesterday = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() - dt.timedelta(days=1)
    asked = f"{yesterday.month}月{yesterday.day}号"
    fake_llm.classify("北京天气过去", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "北京天气过去", {"place": "北京", "day": asked})
    text = await driver.say(f"北京天气过去{asked}")
    assert "已经过去" in text and "还看不到" not in text


async def test_missing_place_asks_then_follow_up_completes(driver, fake_llm, amap_server):
    fake_llm.classify("后天要不要带伞", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "后天要不要带伞", {"place": "", "day": "后天"})
    assert await driver.say("后天要不要带伞") == "想查哪个城市的天气呀？"
    assert amap_server.calls() == []
    # the classifier sees a bare place name as chat; the open question brings it back to 天气,
    # and the LLM's empty answer still yields the place from the bare reply
    fake_llm.classify("杭州", Intent.CHAT.label)
    script_slots(fake_llm, "weather", "杭州", "{}")
    text = await driver.say("杭州")
    assert "杭州市天气" in text and "后天" in text and "多云" in text
    slot_prompt = fake_llm.calls("other")[-1]["messages"][-1]["content"]
    assert '"day": "后天"' in slot_prompt and "想查哪个城市的天气呀？" in slot_prompt


async def test_default_city_is_used_when_no_place(driver, fake_llm, amap_server):
    driver.app.live_config.apply(driver.app.live_config().model_copy(update={
        "amap": driver.app.live_config().amap.model_copy(update={"default_city": "上海"})}))
    fake_llm.classify("今天冷不冷", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "今天冷不冷", {"place": "", "day": "今天"})
    text = await driver.say("今天冷不冷")
    assert "上海市天气" in text


async def test_unknown_place_and_no_key(driver, fake_llm, monkeypatch, amap_server, tmp_path):
    fake_llm.classify("火星天气", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "火星天气", {"place": "火星", "day": "今天"})
    assert "没找到「火星」" in await driver.say("火星天气")
    monkeypatch.delenv("AMAP_KEY")  # a bot started without the key (read at start and on a console save)
    amap_server.reset()
    without_key = ChatDriver.create(fake_llm, tmp_path / "no-key", {"amap": {"base_url": amap_server.base_url,
                                                                               "retries": 0}})
    try:
        text = await without_key.say("火星天气")
    finally:
        await without_key.close()
    assert "管理员" in text and "AMAP_KEY" not in text and amap_server.calls() == []


async def test_quota_error_in_plain_chinese(driver, fake_llm, amap_server):
    amap_server.fail("10044", path="v3/weather/weatherInfo")
    fake_llm.classify("明天北京", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "明天北京", {"place": "北京", "day": "明天"})
    text = await driver.say("明天北京天气")
    assert "查询次数用完了" in text


async def test_polish_rewrites_and_falls_back_to_template(driver, fake_llm):
    driver.app.live_config.apply(driver.app.live_config().model_copy(update={
        "amap": driver.app.live_config().amap.model_copy(update={"polish": True})}))
    fake_llm.classify("明天北京", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "明天北京", {"place": "北京", "day": "明天"})
    fake_llm.add("查询结果", "妈妈，明天北京小雨转中雨，12~18°C，记得带伞哦～")
    assert await driver.say("明天北京天气") == "妈妈，明天北京小雨转中雨，12~18°C，记得带伞哦～"
    fake_llm.add("查询结果", None, status=500)
    assert "北京市天气" in await driver.say("明天北京天气")


@pytest.mark.parametrize(("text", "slots"), [
    ("明天北京天气怎么样", {"place": "北京", "day": "明天"}),
    ("后天去杭州要不要带伞", {"place": "杭州", "day": "后天"}),
    ("周末上海会不会下雨", {"place": "上海", "day": "周末"}),
    ("今天冷不冷", {"place": "", "day": "今天"}),
])
def test_rule_slots_for_weather(text, slots):
    assert rule_slots("weather", text) == slots
