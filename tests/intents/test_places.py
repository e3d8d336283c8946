"""地点推荐: the template and the handler through the router with the fake LLM and the fake AMap server."""

from __future__ import annotations

import pytest

from intents.places import render_places
from intents.slots import rule_slots
from services.amap import Poi
from tests.support.builtin_intents import Intent
from tests.support.fake_amap import script_slots


def test_render_places_with_and_without_rating():
    text = render_places("三里屯附近", "火锅", [
        Poi("海底捞", "三里屯路19号", "1,1", 360, "4.6", "130"),
        Poi("凑凑", "太古里南区" * 10, "1,1", 1200),
    ])
    lines = text.splitlines()
    assert lines[0] == "三里屯附近的火锅，给你挑了2家："
    assert lines[1] == "1. 海底捞｜评分4.6｜360米｜人均130元"
    assert lines[3] == "2. 凑凑｜1.2公里" and lines[4].endswith("…")


def places_question(fake_llm, text: str, slots: dict[str, str]) -> None:
    fake_llm.classify(text, Intent.PLACES.label)
    script_slots(fake_llm, "places", text, slots)


async def test_top_five_near_a_place(driver, fake_llm, amap_server):
    places_question(fake_llm, "三里屯附近有啥好吃的火锅", {"place": "三里屯", "city": "", "keyword": "火锅"})
    text = await driver.say("三里屯附近有啥好吃的火锅")
    lines = text.splitlines()
    assert lines[0] == "三里屯附近的火锅，给你挑了5家："
    assert lines[1].startswith("1. 海底捞火锅(三里屯店)｜评分4.6｜") and "米" in lines[1]
    assert sum(1 for line in lines if line[:2] in {f"{i}." for i in range(1, 10)}) == 5
    params = amap_server.calls("v5/place/around")[0]
    assert params["keywords"] == "火锅" and params["radius"] == "3000"


async def test_city_only_uses_text_search(driver, fake_llm, amap_server):
    places_question(fake_llm, "北京有什么火锅", {"place": "", "city": "北京", "keyword": "火锅"})
    text = await driver.say("北京有什么火锅")
    assert text.startswith("北京的火锅") and amap_server.calls("v5/place/around") == []
    assert amap_server.calls("v5/place/text")[0]["region"] == "北京"


async def test_missing_keyword_then_place_follow_ups(driver, fake_llm):
    places_question(fake_llm, "附近有啥好地方", {"place": "", "city": "", "keyword": ""})
    assert "想找什么样的地方" in await driver.say("附近有啥好地方")
    fake_llm.classify("火锅", Intent.CHAT.label)
    script_slots(fake_llm, "places", "火锅", {"place": "", "city": "", "keyword": "火锅"})
    assert "在哪一带找" in await driver.say("火锅")
    fake_llm.classify("三里屯", Intent.CHAT.label)
    script_slots(fake_llm, "places", "三里屯", "我不确定")  # garbage: the bare answer fills the place
    assert (await driver.say("三里屯")).startswith("三里屯附近的火锅")


async def test_nothing_found_and_place_not_found(driver, fake_llm, amap_server):
    places_question(fake_llm, "三里屯附近的滑雪场", {"place": "三里屯", "city": "", "keyword": "滑雪场"})
    assert "没找到「滑雪场」" in await driver.say("三里屯附近的滑雪场")
    places_question(fake_llm, "纳尼亚附近的火锅", {"place": "纳尼亚", "city": "", "keyword": "火锅"})
    assert "没找到「纳尼亚」" in await driver.say("纳尼亚附近的火锅")


async def test_busy_after_retries(driver, fake_llm, amap_server):
    amap_server.fail("10021", "CUQPS_HAS_EXCEEDED_THE_LIMIT")
    places_question(fake_llm, "三里屯附近有啥好吃的火锅", {"place": "三里屯", "city": "", "keyword": "火锅"})
    assert "太忙" in await driver.say("三里屯附近有啥好吃的火锅")


@pytest.mark.parametrize(("text", "slots"), [
    ("三里屯附近有啥好吃的火锅", {"place": "三里屯", "keyword": "火锅"}),
    ("西湖附近有什么好玩的", {"place": "西湖", "keyword": "景点"}),
    ("望京附近的超市", {"place": "望京", "keyword": "超市"}),
])
def test_rule_slots_for_places(text, slots):
    assert rule_slots("places", text) == slots
