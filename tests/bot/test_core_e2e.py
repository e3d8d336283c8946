"""Issue 2 scenarios through the real Node Wechaty peer and the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import wait_until
from tests.support.builtin_intents import Intent
from tests.support.fake_llm import latest_question
from tests.support.peer import BOT, BOT_NAME, BOT_ROOM_ALIAS, FAMILY, OTHER, at
from tests.support.recording_handlers import record_handlers


def bot_texts(peer, room=FAMILY) -> list[str]:
    return [m["text"] for m in peer.sent() if m["room"] == room and m.get("text")]


async def wait_sent(peer, predicate, within=10.0):
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


async def stays_silent(peer, seconds=1.0) -> bool:
    await asyncio.sleep(seconds)
    return peer.sent() == []


async def test_mention_is_classified_and_answered_with_at_asker(running_bot, peer, fake_llm):
    fake_llm.classify("今天吃什么", Intent.CHAT.label)
    fake_llm.add("今天吃什么", "吃饺子吧！")
    async with running_bot():
        started = time.monotonic()
        peer.say("alice", at() + "今天吃什么", room=FAMILY, mention=[BOT])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY)
        latency = time.monotonic() - started
    assert "吃饺子吧" in reply["text"]
    assert reply["mentionIds"] == ["alice"]
    assert reply["text"].startswith("@妈妈")
    print(f"reply latency through the peer (fake LLM): {latency * 1000:.0f} ms")


@pytest.mark.parametrize("text", [f"@{BOT_NAME}\u2005讲个笑话", f"@{BOT_NAME} 讲个笑话",
                                  f"@{BOT_ROOM_ALIAS} 讲个笑话"])
async def test_typed_mention_without_mention_id_is_served(running_bot, peer, fake_llm, text):
    fake_llm.classify("讲个笑话", Intent.CHAT.label)
    fake_llm.add("讲个笑话", "从前有座山。")
    async with running_bot():
        peer.say("bob", text, room=FAMILY, mention=[])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY)
    assert "从前有座山" in reply["text"]
    classify_call = fake_llm.calls("classify")[0]
    assert "@" + BOT_NAME not in classify_call["messages"][-1]["content"].rpartition("最新一条消息")[2]


async def test_no_mention_disallowed_room_and_other_mentions_stay_silent(running_bot, peer, fake_llm):
    async with running_bot({"groups": {"allow": ["相亲相爱一家人"]}}):
        peer.say("alice", "今天天气真好", room=FAMILY)
        peer.say("alice", at() + "你好", room=OTHER, mention=[BOT])
        peer.say("alice", "@爸爸\u2005回家吃饭", room=FAMILY, mention=["bob"])
        assert await stays_silent(peer, 1.5)
    assert fake_llm.calls() == []


async def test_room_allowed_by_id(running_bot, peer, fake_llm):
    async with running_bot({"groups": {"allow": [OTHER]}}):
        peer.say("alice", at() + "你好", room=OTHER, mention=[BOT])
        await wait_sent(peer, lambda m: m["room"] == OTHER)


async def test_own_echo_is_ignored(running_bot, peer, fake_llm):
    async with running_bot():
        peer.say(BOT, at() + "我自己说的话", room=FAMILY, mention=[BOT])
        assert await stays_silent(peer, 1.5)


async def test_same_message_id_twice_gets_one_reply(running_bot, peer, fake_llm):
    async with running_bot():
        peer.say("alice", at() + "你好呀", room=FAMILY, mention=[BOT], id="dup-1")
        await wait_sent(peer, lambda m: m["room"] == FAMILY)
        peer.say("alice", at() + "你好呀", room=FAMILY, mention=[BOT], id="dup-1")
        await asyncio.sleep(1.0)
    assert len(bot_texts(peer)) == 1


async def test_non_text_message_to_the_bot_gets_a_hint_in_private(running_bot, peer, fake_llm):
    async with running_bot({"bot": {"private_chat": True}}):
        peer.say("carol", "", room=None, type="image")
        hint = await wait_sent(peer, lambda m: m["room"] in (None, ""))
    assert "让这张照片动起来" in hint["text"]  # a photo sent to the bot: what it can do with it


async def test_private_chat_when_enabled_is_answered_without_at(running_bot, peer, fake_llm):
    fake_llm.classify("明天几点起床", Intent.CHAT.label)
    fake_llm.add("明天几点起床", "七点就好～")
    async with running_bot({"bot": {"private_chat": True}}):
        peer.say("carol", f"@{BOT_NAME} 明天几点起床", room=None)
        reply = await wait_sent(peer, lambda m: not m["room"])
    assert reply["to"] == "carol" and "七点" in reply["text"] and reply["mentionIds"] == []
    question = latest_question(fake_llm.calls("classify")[0])
    assert "明天几点起床" in question and "@" not in question


async def test_private_chat_off_by_default(running_bot, peer, fake_llm):
    async with running_bot():
        peer.say("carol", "你好", room=None)
        assert await stays_silent(peer, 1.0)


async def test_garbage_label_falls_back_to_chat(running_bot, peer, fake_llm):
    fake_llm.classify("随便聊聊", "我觉得这可能是天气或者步行规划吧")
    fake_llm.add(lambda r: "随便聊聊" in r["messages"][-1]["content"] and "意图分类器" not in str(r),
                 "好呀，聊什么？")
    async with running_bot():
        peer.say("alice", at() + "随便聊聊", room=FAMILY, mention=[BOT])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY)
    assert "聊什么" in reply["text"]


@pytest.mark.parametrize("failure", ["500", "timeout"])
async def test_llm_down_or_slow_gets_a_friendly_reply(running_bot, peer, fake_llm, failure):
    if failure == "500":
        fake_llm.fail_all(500)
    else:
        fake_llm.fail_all(200, delay=4)
    async with running_bot():
        peer.say("alice", at() + "在吗", room=FAMILY, mention=[BOT])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY, within=15)
    assert "稍后" in reply["text"]


async def test_all_eight_labels_reach_their_handler(running_bot, peer, fake_llm, monkeypatch):
    reached = record_handlers(monkeypatch)
    for intent in Intent:
        fake_llm.classify(f"请求{intent.name}", intent.label)
    async with running_bot():
        for n, intent in enumerate(Intent):  # spread over members: per-user rate limits exist
            sender = ("alice", "bob", "carol")[n % 3]
            peer.say(sender, at() + f"请求{intent.name}", room=FAMILY, mention=[BOT])
        await wait_until(lambda: len(bot_texts(peer)) == len(Intent), within=15)
    assert sorted(i.name for i in reached) == sorted(i.name for i in Intent)
    assert {t.split(" ", 1)[1] for t in bot_texts(peer)} == {f"handled {i.name}" for i in Intent}


async def test_gateway_down_at_start_then_up_is_served(running_bot, peer, fake_llm):
    peer.stop()
    async with running_bot(connect=False) as app:
        await asyncio.sleep(1.5)
        assert not app.channel.connected
        await asyncio.to_thread(peer.start)
        back = time.monotonic()
        await wait_until(lambda: app.channel.connected, within=10)
        assert time.monotonic() - back < 5
        peer.say("alice", at() + "你好", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: m["room"] == FAMILY)


async def test_gateway_restarted_mid_session_serves_again_within_5s(running_bot, peer, fake_llm):
    async with running_bot() as app:
        await asyncio.to_thread(peer.kill)
        await wait_until(lambda: not app.channel.connected, within=5)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(peer.restart)
        back = time.monotonic()
        peer.reset()
        await wait_until(lambda: app.channel.connected, within=10)
        peer.say("alice", at() + "还在吗", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: m["room"] == FAMILY)
        served_after = time.monotonic() - back
    assert served_after < 5, f"served {served_after:.1f}s after the gateway returned"
    states = [s for _, s, _ in app.channel.state_changes]
    assert "disconnected" in states and states.count("serving") >= 2


async def test_wrong_token_does_not_crash_and_recovers(running_bot, peer, fake_llm):
    async with running_bot(env={"WECHATY_PUPPET_SERVICE_TOKEN": "wrong-token"}, connect=False) as app:
        await asyncio.sleep(2.0)
        assert not app.channel.connected
        reasons = " ".join(r for _, _, r in app.channel.state_changes)
        assert "disconnected" in [s for _, s, _ in app.channel.state_changes], reasons
        app.channel.token = peer.token  # the admin fixes the token
        await wait_until(lambda: app.channel.connected, within=10)
