"""The LLM and AMap failing under the real `xiaoai run` process: every mention still gets a short
friendly answer within a bounded time, and each upstream failure is logged once with its cause."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import wait_sent
from tests.support.builtin_intents import Intent
from tests.support.fake_amap import FakeAmap, script_slots
from tests.support.peer import BOT, FAMILY, at, free_port

LLM_DOWN = "脑子转不过来"
# llm.timeout_s 3 and classify_timeout_s 2 in the test config: classify, the embedded fallback, chat
ANSWER_WITHIN_S = 20


def ask(peer, text: str, within: float = ANSWER_WITHIN_S) -> tuple[str, float]:
    seen = {m["id"] for m in peer.sent()}
    started = time.monotonic()
    peer.say("bob", at() + text, room=FAMILY, mention=[BOT])
    reply = wait_sent(peer, lambda m: m["room"] == FAMILY and m["id"] not in seen, timeout=within)
    return reply["text"], time.monotonic() - started


@pytest.mark.parametrize("fault", ["down", "hanging", "trickling"])
def test_llm_fault_gets_a_friendly_reply_in_bounded_time(bot_process, peer, fake_llm, fault):
    env = {}
    if fault == "down":
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{free_port()}/v1"
    elif fault == "hanging":
        fake_llm.fail_all(status=200, delay=120)  # accepts, then says nothing
    else:
        fake_llm.trickle_all(every_s=1.5)  # a byte every 1.5 s: no single read ever times out
    bot = bot_process({}, env=env)
    text, seconds = ask(peer, "讲个笑话吧")
    assert LLM_DOWN in text, text
    assert seconds < ANSWER_WITHIN_S
    assert "llm" in bot.log().lower()


def test_slow_llm_within_its_deadline_is_waited_for(bot_process, peer, fake_llm):
    fake_llm.classify("讲个笑话", Intent.CHAT.label, delay=0.8)
    fake_llm.add("讲个笑话", "小明的爸爸有三个儿子……", delay=1.5)
    bot_process({})
    text, _ = ask(peer, "讲个笑话吧")
    assert "三个儿子" in text


@pytest.fixture
def weather(fake_llm) -> str:
    question = "明天北京天气怎么样"
    fake_llm.classify(question, Intent.WEATHER.label)
    script_slots(fake_llm, "weather", question, {"place": "北京", "day": "明天"})
    return question


def amap_lines(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


@pytest.mark.parametrize(("fault", "reply", "cause"), [
    ("html 502", "高德地图暂时连不上", "HTTP 502"),
    ("invalid json", "高德地图暂时连不上", "not JSON"),
    ("over quota", "查询次数用完了", "10003"),
])
def test_amap_failure_is_answered_and_logged_once(bot_process, peer, amap_server: FakeAmap, amap, weather,
                                                 fault, reply, cause):
    if fault == "html 502":
        amap.raw(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    elif fault == "invalid json":
        amap.raw(200, b'{"status": "1", "geocodes": [', "application/json")
    else:
        amap.fail("10003")
    bot = bot_process({"amap": {"base_url": amap.base_url, "retries": 2, "timeout_s": 2}})
    text, _ = ask(peer, weather)
    assert reply in text, text
    time.sleep(0.5)
    assert len(amap_lines(bot.log(), cause)) == 1, bot.log()[-3000:]
    assert "<html>" not in text and cause not in text


def test_amap_down_is_answered_and_logged_once(bot_process, peer, amap, weather):
    bot = bot_process({"amap": {"base_url": f"http://127.0.0.1:{free_port()}", "retries": 2, "timeout_s": 2}})
    text, seconds = ask(peer, weather)
    assert "高德地图暂时连不上" in text and seconds < ANSWER_WITHIN_S
    time.sleep(0.5)
    assert len(amap_lines(bot.log(), "ConnectError")) == 1, bot.log()[-3000:]
