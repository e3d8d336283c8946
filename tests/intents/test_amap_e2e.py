"""The six AMap intents end to end: the Node Wechaty peer, the real bot, the fake LLM and the fake AMap
server. Covers the issue's acceptance lines, the missing-slot follow-up and the error replies."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from tests.support.builtin_intents import Intent
from tests.support.fake_amap import FakeAmap, script_slots
from tests.support.peer import BOT, FAMILY, at, free_port


def overrides(amap: FakeAmap) -> dict:
    return {"amap": {"base_url": amap.base_url, "retries": 0, "timeout_s": 2}}


async def ask(peer, text: str, sender: str = "alice") -> str:
    """@小爱 in the family room; the bot's next message there (without the leading @mention)."""
    seen = {m["id"] for m in peer.sent()}
    peer.say(sender, at() + text, room=FAMILY, mention=[BOT])
    reply = await asyncio.to_thread(
        peer.wait_for_sent, lambda m: m["room"] == FAMILY and m["id"] not in seen, 15)
    assert reply["mentionIds"] == [sender]
    text = reply["text"]
    return text.split(None, 1)[1] if text.startswith("@") else text  # "@妈妈 …" (U+2005 is whitespace)


def question(fake_llm, text: str, intent: Intent, kind: str, slots: dict[str, str]) -> None:
    fake_llm.classify(text, intent.label)
    script_slots(fake_llm, kind, text, slots)


async def test_acceptance_weather_tomorrow_and_walking_route(running_bot, peer, fake_llm, amap):
    question(fake_llm, "明天北京天气怎么样", Intent.WEATHER, "weather", {"place": "北京", "day": "明天"})
    question(fake_llm, "从天安门走到王府井怎么走", Intent.WALK, "route",
             {"origin": "天安门", "destination": "王府井", "city": ""})
    async with running_bot(overrides(amap)):
        weather = await ask(peer, "明天北京天气怎么样")
        walk = await ask(peer, "从天安门走到王府井怎么走")
    tomorrow = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() + dt.timedelta(days=1)
    assert f"明天（{tomorrow.month}月{tomorrow.day}日" in weather
    assert "小雨转中雨，12~18°C" in weather and "伞" in weather
    assert walk.startswith("从天安门步行到王府井：约") and "公里" in walk and "分钟" in walk
    assert "1. 沿长安街步行" in walk


async def test_cycle_drive_transit_places(running_bot, peer, fake_llm, amap):
    question(fake_llm, "从五道口骑车去颐和园", Intent.CYCLE, "route",
             {"origin": "五道口", "destination": "颐和园", "city": "北京"})
    question(fake_llm, "开车从天安门去三里屯", Intent.DRIVE, "route",
             {"origin": "天安门", "destination": "三里屯", "city": ""})
    question(fake_llm, "坐地铁从五道口去王府井", Intent.TRANSIT, "route",
             {"origin": "五道口", "destination": "王府井", "city": ""})
    question(fake_llm, "三里屯附近有啥好吃的火锅", Intent.PLACES, "places",
             {"place": "三里屯", "city": "", "keyword": "火锅"})
    async with running_bot(overrides(amap)):
        cycle = await ask(peer, "从五道口骑车去颐和园")
        drive = await ask(peer, "开车从天安门去三里屯", sender="bob")
        transit = await ask(peer, "坐地铁从五道口去王府井", sender="carol")
        places = await ask(peer, "三里屯附近有啥好吃的火锅")
    assert cycle.startswith("从五道口骑行到颐和园") and "分钟" in cycle
    assert drive.startswith("从天安门驾车到三里屯") and "打车约" in drive
    assert "换乘1次" in transit and "地铁13号线" in transit and "步行" in transit
    assert places.startswith("三里屯附近的火锅") and "评分4.6" in places and places.count("\n") >= 5


async def test_missing_origin_follow_up_in_the_same_chat(running_bot, peer, fake_llm, amap):
    question(fake_llm, "走到王府井要多久", Intent.WALK, "route",
             {"origin": "", "destination": "王府井", "city": ""})
    fake_llm.classify("天安门", Intent.CHAT.label)
    script_slots(fake_llm, "route", "天安门", {"origin": "天安门", "destination": "王府井", "city": ""})
    async with running_bot(overrides(amap)):
        assert await ask(peer, "走到王府井要多久") == "从哪里出发呀？"
        answer = await ask(peer, "天安门")
    assert answer.startswith("从天安门步行到王府井")
    slot_prompt = fake_llm.calls("other")[-1]["messages"][-1]["content"]
    assert "从哪里出发呀？" in slot_prompt  # the history carries the bot's question


async def test_error_replies(running_bot, peer, fake_llm, amap, monkeypatch):
    question(fake_llm, "明天北京天气", Intent.WEATHER, "weather", {"place": "北京", "day": "明天"})
    question(fake_llm, "从天安门走到霍格沃茨", Intent.WALK, "route",
             {"origin": "天安门", "destination": "霍格沃茨", "city": ""})
    async with running_bot(overrides(amap)) as app:
        amap.fail("10003")
        assert "查询次数用完了" in await ask(peer, "明天北京天气")
        amap.reset()
        assert "没找到「霍格沃茨」" in await ask(peer, "从天安门走到霍格沃茨")
        closed = app.live_config().amap.model_copy(update={"base_url": f"http://127.0.0.1:{free_port()}"})
        app.live_config.apply(app.live_config().model_copy(update={"amap": closed}))
        assert "连不上" in await ask(peer, "明天北京天气")
    monkeypatch.delenv("AMAP_KEY")  # a bot started without the key (read at start and on a console save)
    async with running_bot(overrides(amap)):
        no_key = await ask(peer, "明天北京天气")
    assert "AMAP_KEY" not in no_key and "管理员" in no_key  # the fix itself goes to the admins
