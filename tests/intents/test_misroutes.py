"""Misroutes through the real Node peer: a route question without an origin asks where from (even when the
classifier took it for a places search); a follow-up after a failed answer keeps its intent; the bot's
name at the very start of a message addresses it with the default `groups.keywords: []`."""

from __future__ import annotations

import asyncio

from tests.support.builtin_intents import Intent
from tests.support.fake_amap import FakeAmap
from tests.support.peer import BOT, FAMILY, at

NO_LLM = {"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}


def overrides(amap: FakeAmap) -> dict:
    return {"amap": {"base_url": amap.base_url, "retries": 0, "timeout_s": 2}}


async def said(peer, text: str, *, mention: bool = True, within: float = 20) -> str:
    seen = {m["id"] for m in peer.sent()}
    peer.say("alice", (at() if mention else "") + text, room=FAMILY, mention=[BOT] if mention else [])
    reply = await asyncio.to_thread(
        peer.wait_for_sent, lambda m: m["room"] == FAMILY and m["id"] not in seen, within)
    return reply["text"]


async def test_route_without_origin_asks_where_from(running_bot, peer, fake_llm, amap):
    fake_llm.classify("去颐和园怎么走", Intent.PLACES.label)  # the LLM took it for a places search
    async with running_bot(overrides(amap)):
        text = await said(peer, "去颐和园怎么走")
    assert "从哪里出发" in text and "没找到" not in text, text
    assert not [r for r in amap.requests if "place" in r["path"]], amap.requests


async def test_route_without_origin_asks_where_from_without_an_llm(running_bot, peer, fake_llm, amap):
    async with running_bot(overrides(amap), env=NO_LLM):
        text = await said(peer, "去颐和园怎么走")
    assert "从哪里出发" in text, text


async def test_follow_up_after_a_failed_weather_answer_keeps_the_intent(running_bot, peer, fake_llm, amap,
                                                                        monkeypatch):
    monkeypatch.delenv("AMAP_KEY")  # the weather answer fails: AMap is not set up
    async with running_bot(overrides(amap), env=NO_LLM):
        failed = await said(peer, "明天北京天气怎么样")
        again = await said(peer, "那上海呢")
    assert "高德地图" in failed, failed
    assert "高德地图" in again and "闲聊" not in again, again  # still a weather question, not chat


async def test_follow_up_after_an_amap_error_keeps_the_intent(running_bot, peer, fake_llm, amap):
    async with running_bot(overrides(amap), env=NO_LLM):
        amap.fail("10003")  # today's AMap queries are used up
        failed = await said(peer, "明天北京天气怎么样")
        amap.reset()
        again = await said(peer, "那上海呢")
    assert "查询次数用完了" in failed, failed
    assert "上海" in again and "天气" in again, again


async def test_the_bots_name_first_addresses_it(running_bot, peer, fake_llm, amap):
    fake_llm.classify("明天会下雨吗", Intent.WEATHER.label)
    async with running_bot(overrides(amap)):
        with_space = await said(peer, "小爱 明天会下雨吗", mention=False)
        with_comma = await said(peer, "小爱，明天会下雨吗", mention=False)
        peer.say("alice", "小爱真可爱", room=FAMILY)  # the name inside a remark: not addressed
        await asyncio.sleep(1.5)
    assert with_space.startswith("@妈妈") and with_comma.startswith("@妈妈")
    assert len([m for m in peer.sent() if m["room"] == FAMILY]) == 2
