"""Admin commands: only from bot.admins; others' "#..." is a normal message with no effect and no hint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import JobRequest, JobState
from bot.messages import ChatRef
from bot.ops.admin import HELP_TEXT, parse_command
from tests.bot.ops_doubles import ADMIN, FAMILY_ID, FAMILY_TOPIC, make_app, message, record_classifications
from tests.support.peer import BOT, FAMILY, at

CONFIG = """\
# 小爱 config — mum's notes stay here
bot:
  name: 小爱
  admins: [alice]   # mum
  private_chat: false

groups:
  # only the work room at first
  allow: ["工作群"]   # rooms the bot serves
  rooms:
    工作群:
      persona: 你是严肃的助手。   # no jokes at work
"""


class IdleKind:
    """A job kind that is never run here: the queue is not started, so jobs stay queued."""

    name = "video"

    def request(self, params: Any, seed: int | None) -> Any:
        return params  # plain params are this kind's request

    def check(self, params: Any) -> None:
        return None

    def run(self, *args: Any) -> Path:
        raise AssertionError("not started in these tests")


async def queue_with_job(app: Any, tmp_path: Path) -> int:
    jobs = app.jobs
    jobs.kinds["video"] = IdleKind()  # the app's own queue, with a kind that needs no model
    request = JobRequest(kind="video", params={"prompt": "熊猫"}, seed=1, asker_id="bob", asker_name="爸爸",
                         chat=ChatRef(FAMILY_ID, True), message_id="ask-1")
    receipt = await jobs.submit(request)
    return receipt.job.id


def test_parse_command() -> None:
    assert parse_command("#取消 12") == ("取消", "12")
    assert parse_command("＃状态") == ("状态", "")
    assert parse_command("# 帮助") == ("帮助", "")
    assert parse_command("#取消\u2005#3") == ("取消", "#3")
    assert parse_command("今天#状态") is None
    # the task number typed without a space (as the help shows it, "#取消 12", but thumbs skip spaces)
    assert parse_command("#取消12") == ("取消", "12")
    assert parse_command("#取消#12") == ("取消", "#12")
    assert parse_command("#帮助我画一只猫") == ("帮助我画一只猫", "")  # not a command: goes on as a message


async def test_non_admin_cancel_has_no_effect_and_no_hint(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG.replace('["工作群"]', '["*"]'))
    job_id = await queue_with_job(app, tmp_path)
    seen = record_classifications(app)
    await app.dispatcher.on_message(message(f"#取消 {job_id}", sender="bob"))
    assert app.jobs.get(job_id).state is JobState.QUEUED
    assert [m.text for m in seen] == [f"#取消 {job_id}"]  # went on as an ordinary message
    assert not any("取消" in text or "命令" in text for text in channel.texts()), channel.texts()
    await app.dispatcher.on_message(message(f"#取消 {job_id}", sender=ADMIN))
    assert app.jobs.get(job_id).state is JobState.CANCELLED
    assert channel.texts(FAMILY_ID)[-1].startswith(f"已取消任务 #{job_id}")
    app.jobs.store.close()


async def test_queue_and_status(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    job_id = await queue_with_job(app, tmp_path)
    await app.dispatcher.on_message(message("#队列", sender=ADMIN, room=None))
    assert channel.private_texts(ADMIN)[-1] == f"#{job_id} 视频 爸爸 排队中"
    await app.dispatcher.on_message(message("#状态", sender=ADMIN, room=None))
    status = channel.private_texts(ADMIN)[-1]
    for part in ("运行：", "✅ 微信：已登录，正在服务",
                 "队列：0 个生成中（无），1 个排队", "显存：", "配置："):
        assert part in status
    app.jobs.store.close()


async def test_help_in_private_chat_even_when_private_chat_is_off(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    seen = record_classifications(app)
    await app.dispatcher.on_message(message("#帮助", sender=ADMIN, room=None))
    [shown] = channel.private_texts(ADMIN)
    assert shown.startswith(HELP_TEXT) and "天气（weather）" in shown and "其它（chat）" in shown
    await app.dispatcher.on_message(message("#帮助", sender="bob", room=None))
    assert channel.private_texts("bob") == [] and seen == []  # private chat is off for everyone else


async def test_allow_room_writes_config_keeping_comments(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    seen = record_classifications(app)
    await app.dispatcher.on_message(message("你好", sender="bob"))
    assert seen == []  # the family room is not served yet
    await app.dispatcher.on_message(message("#允许本群", sender=ADMIN, mentioned=False))
    assert "开通" in channel.texts(FAMILY_ID)[-1]
    text = app.config_watcher.path.read_text(encoding="utf-8")
    assert f'allow: ["工作群", {FAMILY_TOPIC}] # rooms the bot serves' in text
    for comment in ("# 小爱 config — mum's notes stay here", "# mum", "# only the work room at first",
                    "# no jokes at work"):
        assert comment in text
    assert app.live_config().groups.allows(FAMILY_ID, FAMILY_TOPIC)
    await app.dispatcher.on_message(message("你好", sender="bob"))
    assert len(seen) == 1

    await app.dispatcher.on_message(message("#禁用本群", sender=ADMIN))
    assert not app.live_config().groups.allows(FAMILY_ID, FAMILY_TOPIC)
    assert 'allow: ["工作群"]' in app.config_watcher.path.read_text(encoding="utf-8")


async def test_deny_room_under_star_uses_deny_list(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG.replace('["工作群"]', '["*"]'))
    await app.dispatcher.on_message(message("#禁用本群", sender=ADMIN))
    text = app.config_watcher.path.read_text(encoding="utf-8")
    assert f"deny: [{FAMILY_TOPIC}]" in text and "# rooms the bot serves" in text
    assert not app.live_config().groups.allows(FAMILY_ID, FAMILY_TOPIC)
    assert app.live_config().groups.allows("other@chatroom", "工作群")
    await app.dispatcher.on_message(message("#允许本群", sender=ADMIN))
    assert app.live_config().groups.allows(FAMILY_ID, FAMILY_TOPIC)
    assert "deny: []" in app.config_watcher.path.read_text(encoding="utf-8")


async def test_allow_room_with_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    broken = CONFIG + "groups: [\n"
    app.config_watcher.path.write_text(broken, encoding="utf-8")
    await app.dispatcher.on_message(message("#允许本群", sender=ADMIN))
    assert "没有改" in channel.texts(FAMILY_ID)[-1]
    assert app.config_watcher.path.read_text(encoding="utf-8") == broken


@pytest.mark.parametrize("text", ["#允许本群", "#状态"])
async def test_non_admin_commands_are_plain_messages(tmp_path: Path, text: str) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    before = app.config_watcher.path.read_text(encoding="utf-8")
    await app.dispatcher.on_message(message(text, sender="bob"))
    assert channel.sent == []  # the family room is not served, and no hint that commands exist
    assert app.config_watcher.path.read_text(encoding="utf-8") == before


# -- through the Node Wechaty peer ------------------------------------------------------------------
async def test_e2e_allow_room_and_non_admin_cancel(running_bot, peer, fake_llm, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    fake_llm.classify("#取消 1", "其它")
    fake_llm.add("#取消 1", "好的呀")
    async with running_bot({"bot": {"admins": [ADMIN]}, "groups": {"allow": ["工作群"]}}, config_path=path):
        peer.say(ADMIN, "#允许本群", room=FAMILY)
        ack = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
        assert "开通" in ack["text"] and ack["mentionIds"] == [ADMIN]
        text = path.read_text(encoding="utf-8")
        assert "# 小爱 config — mum's notes stay here" in text and "# no jokes at work" in text
        assert FAMILY_TOPIC in text
        peer.reset()
        # bob is no admin: "#取消 1" is just a message to the bot (classified and answered as chat)
        peer.say("bob", at() + "#取消 1", room=FAMILY, mention=[BOT])
        reply = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
        assert "好的呀" in reply["text"] and "取消任务" not in reply["text"]
        assert len(fake_llm.calls("classify")) == 1
