"""Message rate limits on a controlled clock: per user, per group, per room override, admins exempt,
each with a clear reply. The daily picture/video quotas are the job queue's (tests/bot/test_job_quotas.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.pipeline.gates import RateLimit
from tests.bot.ops_doubles import ADMIN, FAMILY_ID, OTHER_ID, make_app, message, record_classifications
from tests.support.peer import BOT, FAMILY, at

CONFIG = """\
bot:
  admins: [alice]
quotas:
  user_messages_per_minute: 2
  group_messages_per_minute: 4
  user_images_per_day: 2
  group_images_per_day: 3
  user_videos_per_day: null
  group_videos_per_day: 1
groups:
  rooms:
    工作群:
      quotas: {group_videos_per_day: 0, user_messages_per_minute: null}
"""


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def app_with_clock(tmp_path: Path, start: float = 1_800_000_000.0):
    app, channel = make_app(tmp_path, CONFIG)
    clock = Clock(start)
    next(g for g in app.dispatcher.gates if isinstance(g, RateLimit)).clock = clock
    return app, channel, clock


async def test_user_rate_limit_replies_once_then_recovers(tmp_path: Path) -> None:
    app, channel, clock = app_with_clock(tmp_path)
    seen = record_classifications(app)
    for _ in range(4):
        await app.dispatcher.on_message(message("在吗", sender="bob"))
    assert len(seen) == 2
    assert channel.texts(FAMILY_ID).count("你发得有点快啦，我一分钟最多回你 2 条，歇一会儿再@我吧～") == 1
    clock.now += 61
    await app.dispatcher.on_message(message("在吗", sender="bob"))
    assert len(seen) == 3


async def test_group_rate_limit_across_members(tmp_path: Path) -> None:
    app, channel, _clock = app_with_clock(tmp_path)
    seen = record_classifications(app)
    for sender in ("bob", "carol", "bob", "carol", "dave"):
        await app.dispatcher.on_message(message("在吗", sender=sender))
    assert len(seen) == 4
    assert "本群一分钟最多 4 条" in channel.texts(FAMILY_ID)[-1]


async def test_admins_are_exempt_and_unaddressed_messages_do_not_count(tmp_path: Path) -> None:
    app, _channel, _clock = app_with_clock(tmp_path)
    seen = record_classifications(app)
    for _ in range(5):
        await app.dispatcher.on_message(message("聊天", sender="bob", mentioned=False))
        await app.dispatcher.on_message(message("在吗", sender=ADMIN))
    assert len(seen) == 5
    await app.dispatcher.on_message(message("在吗", sender="bob"))
    assert len(seen) == 6


async def test_room_override_lifts_the_user_limit(tmp_path: Path) -> None:
    app, _channel, _clock = app_with_clock(tmp_path)
    seen = record_classifications(app)
    for _ in range(3):
        await app.dispatcher.on_message(message("在吗", sender="bob", room=OTHER_ID))
    assert len(seen) == 3  # 工作群: user limit null; group limit 4 still applies


async def test_a_message_quota_of_zero_switches_the_bot_off_there_silently(tmp_path: Path) -> None:
    config = CONFIG.replace("group_messages_per_minute: 4", "group_messages_per_minute: 0")
    app, channel = make_app(tmp_path, config)
    seen = record_classifications(app)
    await app.dispatcher.on_message(message("在吗", sender="bob"))
    assert seen == [] and channel.texts(FAMILY_ID) == []


async def test_e2e_rate_limit_reply(running_bot, peer, fake_llm) -> None:
    fake_llm.classify("在吗", "其它")
    fake_llm.add("在吗", "在的～")
    async with running_bot({"quotas": {"user_messages_per_minute": 1}}):
        peer.say("bob", at() + "在吗", room=FAMILY, mention=[BOT])
        await asyncio.to_thread(peer.wait_for_sent, lambda m: "在的" in m["text"], 10)
        peer.say("bob", at() + "在吗", room=FAMILY, mention=[BOT])
        limited = await asyncio.to_thread(peer.wait_for_sent, lambda m: "快啦" in m["text"], 10)
    assert "一分钟最多回你 1 条" in limited["text"] and limited["mentionIds"] == ["bob"]
    assert len(fake_llm.calls("classify")) == 1  # the limited message never reached the LLM
