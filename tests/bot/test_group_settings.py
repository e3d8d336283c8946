"""Per-group settings over global defaults: intents on/off, persona, keyword trigger, quotas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import ConfigError, intent_names, parse
from bot.messages import ChatRef
from tests.bot.ops_doubles import FAMILY_ID, FAMILY_TOPIC, OTHER_ID, make_app, message
from tests.support.builtin_intents import Intent
from tests.support.peer import BOT, FAMILY, OTHER, at

CONFIG = """\
chat:
  persona: 你是小爱。
quotas:
  user_images_per_day: 5
groups:
  keywords: []
  rooms:
    相亲相爱一家人:              # by topic
      keywords: [小爱, 宝宝]
      persona: 你是家里的小爱，说话要像晚辈。
      quotas: {user_images_per_day: 2}
    other@chatroom:            # by id
      intents: [chat, weather]
"""


def test_intent_names_match_the_registry() -> None:
    assert intent_names() == {intent.name for intent in Intent}


def test_for_chat_merges_room_over_global() -> None:
    config = parse(CONFIG)
    family = config.for_chat(ChatRef(FAMILY_ID, True), FAMILY_TOPIC)
    assert family.room_key == FAMILY_TOPIC
    assert family.config.chat.persona == "你是家里的小爱，说话要像晚辈。"
    assert config.chat.persona == "你是小爱。"  # the global config is untouched
    assert family.quotas.user_images_per_day == 2 and family.quotas.group_images_per_day == 40
    assert family.intents is None and family.intent_enabled("video")
    assert family.strip_keyword("小爱，明天下雨吗") == "明天下雨吗"
    assert family.strip_keyword("我们小爱真乖") is None

    other = config.for_chat(ChatRef(OTHER_ID, True), "工作群")
    assert other.room_key == OTHER_ID and other.config is config
    assert other.intent_enabled("weather") and not other.intent_enabled("video")
    assert other.keywords == () and other.quotas.user_images_per_day == 5

    private = config.for_chat(ChatRef("bob", False))
    assert private.room_key is None and private.intents is None and private.keywords == ()


def test_unknown_intent_is_named_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r"groups\.rooms\.x\.intents（第 4 行）：.*没有这个功能：movie"):
        parse("groups:\n  rooms:\n    x:\n      intents: [chat, movie]\n")


def test_deny_beats_star() -> None:
    groups = parse("groups:\n  allow: ['*']\n  deny: [工作群]\n").groups
    assert not groups.allows(OTHER_ID, "工作群") and groups.allows(FAMILY_ID, FAMILY_TOPIC)


async def test_keyword_trigger_and_disabled_intent(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    seen: list[str] = []

    async def classifier(ctx):
        seen.append(ctx.message.text)
        return Intent.VIDEO

    app.dispatcher.classify = classifier
    await app.dispatcher.on_message(message("小爱，做个熊猫视频", sender="bob", mentioned=False))
    assert seen == ["做个熊猫视频"]  # the keyword addressed the bot and was removed
    await app.dispatcher.on_message(message("宝宝，做个熊猫视频", sender="bob", mentioned=False))
    assert seen == ["做个熊猫视频"] * 2  # any of the room's keywords
    await app.dispatcher.on_message(
        message("宝宝，做个熊猫视频", sender="bob", mentioned=False, room=OTHER_ID))
    assert len(seen) == 2  # no keyword trigger in the work room (the bot's own name first always counts)
    await app.dispatcher.on_message(message("做个熊猫视频", sender="bob", room=OTHER_ID))
    assert channel.texts(OTHER_ID) == ["本群没有开通「视频生成」功能哦，需要的话请找管理员开通～"]


async def test_e2e_room_persona_and_disabled_intent(running_bot, peer, fake_llm) -> None:
    fake_llm.classify("讲个笑话", Intent.CHAT.label)
    fake_llm.add("讲个笑话", "从前有座山。")
    fake_llm.classify("画只猫", Intent.IMAGE.label)
    overrides = {"groups": {"rooms": {
        "相亲相爱一家人": {"persona": "你是家里的小爱，说话要像晚辈。", "keywords": ["小爱"]},
        OTHER: {"intents": ["chat"]}}}}
    async with running_bot(overrides):
        peer.say("bob", "小爱，讲个笑话", room=FAMILY)  # keyword, no @
        await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
        peer.say("bob", at() + "画只猫", room=OTHER, mention=[BOT])
        off = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == OTHER, 10)
    chat_call = [c for c in fake_llm.calls() if "讲个笑话" in str(c["messages"]) and c not in
                 fake_llm.calls("classify")][0]
    assert "你是家里的小爱，说话要像晚辈。" in chat_call["messages"][0]["content"]
    assert "没有开通「图片生成」" in off["text"]
