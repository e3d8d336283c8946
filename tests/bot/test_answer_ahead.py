"""Chat answered ahead of the LLM classifier (`bot/pipeline/ahead.py`), through the real dispatcher and
LLM client against the HTTP stand-in: a held rule shows what the bot asked for while the classifier had
not answered yet, and which call it hung up on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from bot.llm import LLMUnavailable
from bot.pipeline.ahead import Ahead, AnswerAhead
from bot.pipeline.context import Pending
from bot.pipeline.dispatch import LLM_DOWN_REPLY
from bot.plugin import IntentRegistry, IntentSpec
from tests.conftest import wait_until
from tests.support.builtin_intents import BUILTIN, Intent
from tests.support.chat_driver import ChatDriver, family_context
from tests.support.fake_amap import script_slots
from tests.support.fake_llm import FakeLLM, latest_question, prompt_text

CHAT_MARKER = "你在一个微信群里回答家人的问题"  # prompts/chat.md
NO_EMBEDDED = {"offline": {"classifier": {"enabled": False}}}  # an LLM failure is not rescued by it


def is_chat(request: dict[str, Any]) -> bool:
    return CHAT_MARKER in prompt_text(request)


def chat_calls(fake_llm: FakeLLM) -> list[dict[str, Any]]:
    return [r for r in fake_llm.calls("other") if is_chat(r)]


@pytest.fixture
async def make_driver(fake_llm: FakeLLM, amap: Any, tmp_path: Path) -> AsyncIterator[Any]:
    drivers: list[ChatDriver] = []

    def make(overrides: dict[str, Any] | None = None) -> ChatDriver:
        config = {"amap": {"base_url": amap.base_url, "retries": 0}, **(overrides or {})}
        drivers.append(ChatDriver.create(fake_llm, tmp_path / f"d{len(drivers)}", config))
        return drivers[-1]

    yield make
    for driver in drivers:
        await driver.close()


@pytest.fixture
async def troubles() -> AsyncIterator[list[str]]:
    """What would show that a dropped answer was not quiet: log lines at WARNING or above, and the loop's
    own reports ("Task exception was never retrieved")."""
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: seen.append(str(context.get("message"))))
    try:
        yield seen
    finally:
        loop.set_exception_handler(None)
        logger.remove(sink)


def settle() -> None:
    gc.collect()  # a task whose exception nobody read reports it when it is collected


async def test_chat_is_answered_while_the_classifier_still_reads_it(make_driver, fake_llm, troubles):
    driver = make_driver(NO_EMBEDDED)
    classify = fake_llm.classify("今天吃什么", Intent.CHAT.label, held=True)
    fake_llm.add(lambda r: is_chat(r) and "今天吃什么" in latest_question(r), "吃饺子吧")
    said = asyncio.create_task(driver.say("今天吃什么"))
    try:
        await wait_until(lambda: len(chat_calls(fake_llm)) == 1, within=5)  # the classifier has not answered
    finally:
        classify.release()
    assert await said == "吃饺子吧"
    assert len(fake_llm.calls("classify")) == 1 and len(chat_calls(fake_llm)) == 1
    assert [r.text for r in driver.replies] == ["吃饺子吧"]
    settle()
    assert troubles == []


async def test_a_request_cue_starts_no_chat_answer(make_driver, fake_llm):
    driver = make_driver()
    fake_llm.classify("明天北京天气", Intent.WEATHER.label, delay=0.3)
    script_slots(fake_llm, "weather", "明天北京天气", {"place": "北京", "day": "明天"})
    text = await driver.say("明天北京天气怎么样")
    assert "北京市天气" in text
    assert chat_calls(fake_llm) == []


async def test_a_request_worded_like_chat_cancels_the_early_answer(make_driver, fake_llm, troubles):
    driver = make_driver()
    classify = fake_llm.classify("北京明天呢", Intent.WEATHER.label, held=True)
    fake_llm.add(lambda r: is_chat(r), "不该发出去的闲聊", held=True)  # answers only if released: never
    script_slots(fake_llm, "weather", "北京明天呢", {"place": "北京", "day": "明天"})
    said = asyncio.create_task(driver.say("北京明天呢"))
    try:
        await wait_until(lambda: len(chat_calls(fake_llm)) == 1, within=5)
    finally:
        classify.release()
    text = await said
    assert "北京市天气" in text and [r.text for r in driver.replies] == [text]
    await wait_until(lambda: len(fake_llm.hung_up) == 1, within=5)  # the bot hung up on the chat call
    assert is_chat(fake_llm.hung_up[0])
    settle()
    assert troubles == []


async def test_the_answer_to_an_open_question_is_not_answered_ahead(make_driver, fake_llm):
    driver = make_driver()
    fake_llm.classify("后天要不要带伞", Intent.WEATHER.label)
    script_slots(fake_llm, "weather", "后天要不要带伞", {"place": "", "day": "后天"})
    assert await driver.say("后天要不要带伞") == "想查哪个城市的天气呀？"
    fake_llm.classify("杭州", Intent.CHAT.label)  # a bare place reads as chat: the question takes it
    script_slots(fake_llm, "weather", "杭州", "{}")
    text = await driver.say("杭州")
    assert "杭州市天气" in text and "后天" in text
    assert chat_calls(fake_llm) == []


async def test_switched_off_the_chat_answer_waits_for_the_classifier(make_driver, fake_llm):
    driver = make_driver({"chat": {"answer_ahead": False}})
    classify = fake_llm.classify("今天吃什么", Intent.CHAT.label, held=True)
    fake_llm.add(lambda r: is_chat(r), "吃饺子吧")
    said = asyncio.create_task(driver.say("今天吃什么"))
    try:
        await wait_until(lambda: len(fake_llm.calls("classify")) == 1, within=5)
        await asyncio.sleep(0.3)
        assert chat_calls(fake_llm) == []  # nothing asked while the classifier has not answered
    finally:
        classify.release()
    assert await said == "吃饺子吧"
    assert [is_chat(r) for r in fake_llm.calls()] == [False, True]


async def test_while_a_video_renders_on_the_cpu_chat_waits_for_the_classifier(make_driver, fake_llm):
    from generators.cpu_share import cpu_render_running, cpu_render_share

    driver = make_driver()
    classify = fake_llm.classify("今天吃什么", Intent.CHAT.label, held=True)
    fake_llm.add(lambda r: is_chat(r), "吃饺子吧")
    with cpu_render_share():  # what a CPU render holds while it computes
        assert cpu_render_running()
        said = asyncio.create_task(driver.say("今天吃什么"))
        try:
            await wait_until(lambda: len(fake_llm.calls("classify")) == 1, within=5)
            await asyncio.sleep(0.3)
            assert chat_calls(fake_llm) == []
        finally:
            classify.release()
        assert await said == "吃饺子吧"
    assert not cpu_render_running()
    assert [is_chat(r) for r in fake_llm.calls()] == [False, True]


async def test_a_failed_chat_answer_reads_as_before(make_driver, fake_llm, troubles):
    driver = make_driver()
    fake_llm.classify("今天吃什么", Intent.CHAT.label, delay=0.2)
    fake_llm.add(lambda r: is_chat(r), None, status=500)  # fails before the classifier answers
    assert await driver.say("今天吃什么") == LLM_DOWN_REPLY
    settle()
    assert not any("never retrieved" in t for t in troubles)


async def test_an_early_answer_that_failed_before_a_request_verdict_is_dropped_quietly(make_driver, fake_llm,
                                                                                        troubles):
    driver = make_driver()
    classify = fake_llm.classify("北京明天呢", Intent.WEATHER.label, held=True)
    fake_llm.add(lambda r: is_chat(r), None, status=500)  # the early answer fails while the classifier reads
    script_slots(fake_llm, "weather", "北京明天呢", {"place": "北京", "day": "明天"})
    said = asyncio.create_task(driver.say("北京明天呢"))
    try:
        await wait_until(lambda: len(chat_calls(fake_llm)) >= 1, within=5)
        await asyncio.sleep(0.5)  # its failure has come back and ended the task
    finally:
        classify.release()
    assert "北京市天气" in await said
    settle()
    assert not any("never retrieved" in t for t in troubles)


@pytest.mark.parametrize("ending", ["failed before the drop", "fails on its cancellation"])
async def test_a_dropped_answer_that_failed_is_never_reported(troubles, ending):
    async def answer() -> None:
        if ending == "failed before the drop":
            raise LLMUnavailable("down")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # a client that turns the cancellation into its own error
            raise LLMUnavailable("cut off") from None

    ahead = Ahead(asyncio.create_task(answer()))
    await asyncio.sleep(0.01)
    ahead.drop()
    await asyncio.sleep(0.01)  # the cancellation and the done-callback run
    assert ahead.task.done()
    del ahead
    settle()
    assert troubles == []


@pytest.mark.parametrize("failure", ["500", "timeout"])
async def test_an_llm_down_reads_as_before_and_the_early_answer_is_dropped_quietly(make_driver, fake_llm,
                                                                                  troubles, failure):
    driver = make_driver(NO_EMBEDDED)
    if failure == "500":
        fake_llm.fail_all(500, delay=0.3)  # late enough that the chat call has gone out
    else:
        fake_llm.fail_all(200, delay=4)  # classify_timeout_s is 2 in tests, the chat call's 3
    assert await driver.say("今天吃什么") == LLM_DOWN_REPLY
    assert len(chat_calls(fake_llm)) == 1
    await asyncio.sleep(0.1)  # the dropped call's cancellation runs
    settle()
    assert not any("never retrieved" in t for t in troubles)
    assert [r.text for r in driver.replies] == [LLM_DOWN_REPLY]


# -- when an answer may start early ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "likely"), [
    ("今天吃什么", True), ("这地铁挤死了", True), ("为什么明天会下雨", True),  # chat's own cue wins
    ("明天北京天气怎么样", False), ("画一只猫", False), ("去颐和园怎么走", False),
    ("附近有什么好吃的", False), ("做个熊猫弹吉他的视频", False), ("", False), ("   ", False),
])
def test_likely_chat_reads_the_request_cues(text, likely):
    assert AnswerAhead(BUILTIN).likely_chat(text) is likely


class _LLM:
    configured = True


class _ChatOff:
    def intent_enabled(self, name: str) -> bool:
        return name != "chat"


async def test_only_likely_chat_that_only_the_classifier_routes_starts_early(tmp_path):
    ahead = AnswerAhead(BUILTIN)
    ctx = family_context(_LLM(), "今天吃什么", ("爸爸", "饿了"))
    pending = Pending("weather", Intent.WEATHER, {}, "place", 0.0)
    no_llm = replace(ctx, llm=type("NoLLM", (), {"configured": False})())
    switched_off = replace(ctx, config=ctx.config.model_copy(update={
        "chat": ctx.config.chat.model_copy(update={"answer_ahead": False})}))
    never = [
        (no_llm, None), (switched_off, None), (ctx, pending), (replace(ctx, settings=_ChatOff()), None),
        (replace(ctx, message=replace(ctx.message, photo=tmp_path / "p.jpg")), None),
        (replace(ctx, message=replace(ctx.message, text="")), None),
        (replace(ctx, message=replace(ctx.message, text="画一只猫")), None),
    ]
    assert [ahead.begin(c, p) for c, p in never] == [None] * len(never)
    started = ahead.begin(ctx, None)
    assert started is not None
    started.drop()
    await asyncio.sleep(0)
    assert started.task.cancelled()


def test_a_plugin_without_examples_or_cues_reads_as_chat_wording_and_its_cues_count():
    async def tell(ctx):
        return None

    bare = IntentSpec(name="joke", label="笑话", handler=tell, describe="讲笑话")
    cued = IntentSpec(name="joke", label="笑话", handler=tell, describe="讲笑话", cues=("笑话|段子",))
    for spec, likely in ((bare, True), (cued, False)):
        registry = IntentRegistry((*BUILTIN.specs[:-1], spec, BUILTIN.fallback))
        ahead = AnswerAhead(registry)
        assert ahead.likely_chat("讲个笑话吧") is likely
        assert ahead.likely_chat("明天北京天气怎么样") is False


async def test_unreadable_cues_answer_nothing_ahead_and_start_anyway(tmp_path):
    broken = tmp_path / "examples.yaml"
    broken.write_text("cues:\n  weather: ['(']\n", encoding="utf-8")
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    try:
        ahead = AnswerAhead(BUILTIN, broken)
        await ahead.start()
    finally:
        logger.remove(sink)
    assert ahead.likely_chat("今天吃什么") is False
    assert ahead.begin(family_context(_LLM(), "今天吃什么", ("爸爸", "饿了")), None) is None
    assert len(seen) == 1 and "not answered ahead" in seen[0]


def test_eval_intents_counts_early_chat_and_wasted_calls():
    from bench.intent_eval import Sample, format_ahead

    samples = [Sample(Intent.CHAT, "今天吃什么"), Sample(Intent.CHAT, "明天会下雨吗，好烦"),
               Sample(Intent.WEATHER, "明天北京天气怎么样"), Sample(Intent.WEATHER, "北京明天呢")]
    line = format_ahead(samples, BUILTIN)
    assert "1/2 chat messages (50%)" in line and "1/2 requests (50%)" in line
