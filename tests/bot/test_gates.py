"""The dispatcher's gates: their order, and what each one stops, through the real app."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.pipeline import gates
from tests.bot.ops_doubles import ADMIN, FAMILY_ID, OTHER_ID, make_app, message, record_classifications

CONFIG = f"""\
bot:
  name: 小爱
  aliases: [小爱同学]
  admins: [{ADMIN}]
groups:
  allow: ["相亲相爱一家人"]
quotas:
  user_messages_per_minute: 2
"""


def test_gates_run_in_the_documented_order(tmp_path: Path) -> None:
    app, _channel = make_app(tmp_path, CONFIG)
    names = [getattr(g, "__name__", type(g).__name__) for g in app.dispatcher.gates]
    assert names == ["Dedup", "self_echo", "RoomDirectory", "typed_mention", "AdminGate", "allow_list",
                     "addressing", "PhotoGate", "NonText", "Record", "mention_only", "RateLimit"]


async def test_each_gate_stops_what_it_owns(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    seen = record_classifications(app)
    first = message("明天下雨吗", sender="bob")
    await app.dispatcher.on_message(first)
    await app.dispatcher.on_message(first)  # a replayed event: answered once
    assert [m.text for m in seen] == ["明天下雨吗"]
    await app.dispatcher.on_message(replace(message("我自己说的", sender="bot"), from_self=True))
    await app.dispatcher.on_message(message("别的群", sender="bob", room=OTHER_ID))  # not allowed
    await app.dispatcher.on_message(message("随便聊聊", sender="bob", mentioned=False))  # not addressed
    assert len(seen) == 1
    # not addressed, but it is in the history the prompts read (recorded before the mention gate)
    recorded = app.dispatcher.history.recent(f"room:{FAMILY_ID}", app.live_config().history)
    assert "随便聊聊" in [e.text for e in recorded]
    # a typed "@小爱同学" with no mention id is a mention, and is taken out of the text
    await app.dispatcher.on_message(message("@小爱同学 周末去哪玩", sender="carol", mentioned=False))
    assert seen[-1].text == "周末去哪玩"
    # the rate limit comes last: the third message in a minute is refused once, then silence
    await app.dispatcher.on_message(message("再问一次", sender="bob"))
    await app.dispatcher.on_message(message("还问", sender="bob"))
    await app.dispatcher.on_message(message("还问还问", sender="bob"))
    assert [m.text for m in seen].count("再问一次") == 1 and "还问" not in [m.text for m in seen]
    assert sum("发得有点快" in t for t in channel.texts(FAMILY_ID)) == 1


async def test_admin_commands_pass_before_the_allow_list(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    seen = record_classifications(app)
    await app.dispatcher.on_message(message("#帮助", sender=ADMIN, room=OTHER_ID))
    assert "管理员命令" in channel.texts(OTHER_ID)[0] and seen == []
    await app.dispatcher.on_message(message("#帮助", sender="bob", room=OTHER_ID))  # not an admin
    assert len(channel.texts(OTHER_ID)) == 1 and seen == []  # and the room is not allowed: silence


async def test_strip_mention_keeps_other_people() -> None:
    assert gates.strip_mention("@小爱\u2005明天呢 @奶奶", ["小爱"]) == (True, "明天呢 @奶奶")
    assert gates.strip_mention("@小爱同学 在吗", ["小爱", "小爱同学"]) == (True, "在吗")
    assert gates.strip_mention("发邮件到 a@小爱.com", ["小爱"]) == (False, "发邮件到 a@小爱.com")
