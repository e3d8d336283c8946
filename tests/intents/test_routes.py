"""步行/骑行/驾车/公交规划: templates, and the handlers through the router with the fake LLM and the fake
AMap server (no peer): slots, the follow-up question, mode switches, not found, no route, errors."""

from __future__ import annotations

import pytest

from intents.routes import MODES, render_path, render_transit
from intents.slots import rule_slots
from services.amap import Location, RoutePlan, TransitLeg, TransitPlan
from tests.support.builtin_intents import Intent
from tests.support.fake_amap import script_slots
from tests.support.fake_llm import prompt_text
from tests.support.peer import free_port

WALK, _CYCLE, DRIVE, _TRANSIT = MODES
A = Location("天安门", "116.397477,39.908692", "110101", "010", "北京市")
B = Location("王府井", "116.417093,39.914585", "110101", "010", "北京市")


def test_render_path_walk_and_drive():
    plan = RoutePlan(1850, 1540, tuple(f"第{i}步" for i in range(1, 8)))
    text = render_path(WALK, A, B, plan, max_steps=3)
    assert text.splitlines()[0] == "从天安门步行到王府井：约1.9公里，大约26分钟。"
    assert "3. 第3步" in text and "第4步" not in text and "共7步" in text
    drive = render_path(DRIVE, A, B, RoutePlan(12000, 3700, ("沿长安街行驶",), taxi_cost=41.6, tolls=5), 5)
    assert "约12公里，大约1小时2分钟，打车约42元，过路费5元" in drive


def test_render_transit():
    plan = TransitPlan(9000, 2700, 750, 5.0, (
        TransitLeg("walk", distance_m=300),
        TransitLeg("bus", "地铁13号线(东直门--西直门)", "五道口站", "西直门站", 2),
        TransitLeg("bus", "地铁4号线大兴线(安河桥北--天宫院)", "西直门站", "王府井站", 5),
        TransitLeg("walk", distance_m=450),
    ))
    text = render_transit(A, B, plan)
    assert "全程约45分钟，换乘1次，步行约750米，票价约5元" in text
    assert "2. 乘地铁13号线（五道口站上车 → 西直门站下车，3站）" in text
    assert "4. 步行450米" in text


def route_question(fake_llm, text: str, intent: Intent, origin: str, destination: str,
                   city: str = "") -> None:
    fake_llm.classify(text, intent.label)
    script_slots(fake_llm, "route", text, {"origin": origin, "destination": destination, "city": city})


def chat_line(fake_llm, text: str, reply: str) -> None:
    """`text` is plain chat: the classifier says chat and the chat answer is `reply`."""
    fake_llm.classify(text, Intent.CHAT.label)
    fake_llm.add(text, reply)


async def test_walk(driver, fake_llm, amap_server):
    route_question(fake_llm, "从天安门走到王府井", Intent.WALK, "天安门", "王府井")
    text = await driver.say("从天安门走到王府井怎么走")
    assert text.startswith("从天安门步行到王府井：约") and "分钟" in text and "1. 沿长安街步行" in text
    assert len(amap_server.calls("v5/direction/walking")) == 1
    # the destination is searched in the origin's city first
    assert amap_server.calls("v5/place/text")[1]["region"] == "北京市"


async def test_cycle_drive_transit(driver, fake_llm, amap_server):
    route_question(fake_llm, "骑车去颐和园", Intent.CYCLE, "五道口", "颐和园", "北京")
    assert (await driver.say("从五道口骑车去颐和园怎么走")).startswith("从五道口骑行到颐和园")
    route_question(fake_llm, "打车去三里屯", Intent.DRIVE, "天安门", "三里屯")
    assert "打车约" in await driver.say("从天安门打车去三里屯多少钱")
    route_question(fake_llm, "坐地铁去王府井", Intent.TRANSIT, "五道口", "王府井")
    text = await driver.say("从五道口坐地铁去王府井")
    assert "换乘1次" in text and "乘地铁13号线（五道口站上车 → 西直门站下车，3站）" in text
    params = amap_server.calls("v5/direction/transit/integrated")[0]
    assert (params["city1"], params["city2"]) == ("010", "010")


async def test_transit_between_cities_uses_both_citycodes(driver, fake_llm, amap_server):
    route_question(fake_llm, "去杭州西湖", Intent.TRANSIT, "天安门", "西湖")
    text = await driver.say("从天安门坐车去杭州西湖")
    params = amap_server.calls("v5/direction/transit/integrated")[0]
    assert (params["city1"], params["city2"]) == ("010", "0571")
    assert "G1" in text and "北京南站上车" in text


async def test_missing_origin_asked_then_answered(driver, fake_llm, amap_server):
    route_question(fake_llm, "走到王府井要多久", Intent.WALK, "", "王府井")
    assert await driver.say("走到王府井要多久") == "从哪里出发呀？"
    fake_llm.classify("天安门", Intent.CHAT.label)  # a bare answer looks like chat to the classifier
    script_slots(fake_llm, "route", "天安门", {"origin": "天安门", "destination": "王府井", "city": ""})
    text = await driver.say("天安门")
    assert text.startswith("从天安门步行到王府井")
    # answered: the next chat line goes to chat again
    chat_line(fake_llm, "谢谢", "不客气～")
    assert await driver.say("谢谢") == "不客气～"


async def test_follow_up_can_switch_mode_and_new_request_drops_question(driver, fake_llm):
    route_question(fake_llm, "怎么去颐和园", Intent.DRIVE, "", "颐和园")
    assert await driver.say("怎么去颐和园") == "从哪里出发呀？"
    route_question(fake_llm, "五道口，坐地铁", Intent.TRANSIT, "五道口", "")
    text = await driver.say("五道口，坐地铁")
    assert text.startswith("从五道口坐公交/地铁到颐和园")
    # a clearly different request drops an open question
    route_question(fake_llm, "去三里屯", Intent.WALK, "", "三里屯")
    assert await driver.say("去三里屯") == "从哪里出发呀？"
    fake_llm.classify("画一只猫", Intent.IMAGE.label)
    await driver.say("画一只猫")
    chat_line(fake_llm, "王府井", "王府井是北京的商业街。")
    assert await driver.say("王府井") == "王府井是北京的商业街。"


async def test_open_question_is_per_asker(driver, fake_llm):
    route_question(fake_llm, "走到王府井", Intent.WALK, "", "王府井")
    assert await driver.say("走到王府井") == "从哪里出发呀？"
    chat_line(fake_llm, "天安门", "天安门在北京。")
    assert await driver.say("天安门", sender_id="bob", sender_name="爸爸") == "天安门在北京。"


async def test_unknown_place_and_too_far(driver, fake_llm):
    route_question(fake_llm, "走到霍格沃茨", Intent.WALK, "天安门", "霍格沃茨")
    assert "没找到「霍格沃茨」" in await driver.say("从天安门走到霍格沃茨")
    route_question(fake_llm, "走到杭州", Intent.WALK, "天安门", "杭州")
    assert "没找到合适的路线" in await driver.say("从天安门走到杭州")


async def test_default_city_does_not_hide_places_in_another_city(driver, fake_llm, amap_server):
    # amap.default_city is for weather/places questions that name no place; a route between two places
    # elsewhere must still be found (the city is only a first guess)
    driver.app.live_config.apply(driver.app.live_config().model_copy(update={
        "amap": driver.app.live_config().amap.model_copy(update={"default_city": "杭州"})}))
    route_question(fake_llm, "从天安门走到王府井", Intent.WALK, "天安门", "王府井")
    text = await driver.say("从天安门走到王府井怎么走")
    assert text.startswith("从天安门步行到王府井：约"), text
    assert amap_server.calls("v5/place/text")[0]["region"] == "杭州"  # still tried first


async def test_errors(driver, fake_llm, amap_server, monkeypatch):
    route_question(fake_llm, "天安门到王府井", Intent.DRIVE, "天安门", "王府井")
    amap_server.fail("10003")
    assert "查询次数用完了" in await driver.say("天安门到王府井开车")
    amap_server.reset()
    amap_server.fail("10001")
    rejected = await driver.say("天安门到王府井开车")
    assert "管理员" in rejected and "AMAP_KEY" not in rejected and "Key" not in rejected
    amap_server.reset()
    driver.app.live_config.apply(driver.app.live_config().model_copy(update={
        "amap": driver.app.live_config().amap.model_copy(update={"base_url": f"http://127.0.0.1:{free_port()}"})}))
    assert "连不上" in await driver.say("天安门到王府井开车")


@pytest.mark.parametrize(("text", "slots"), [
    ("从天安门走到王府井怎么走", {"origin": "天安门", "destination": "王府井"}),
    ("从五道口骑车去颐和园怎么走", {"origin": "五道口", "destination": "颐和园"}),
    ("天安门到王府井开车多久", {"origin": "天安门", "destination": "王府井"}),
    ("走到王府井要多久", {"destination": "王府井"}),
    ("今天吃什么", {}),
])
def test_rule_slots_for_routes(text, slots):
    assert rule_slots("route", text) == slots


async def test_route_without_llm_reads_the_wording(driver, fake_llm):
    fake_llm.classify("从天安门走到王府井", Intent.WALK.label)
    fake_llm.add(lambda req: "路线槽位" in prompt_text(req), None, status=500)  # slot extraction fails
    assert (await driver.say("从天安门走到王府井怎么走")).startswith("从天安门步行到王府井")
