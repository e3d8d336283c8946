"""Hot reload of config.yaml: valid edits apply within 2 s, invalid ones keep the running config and tell
the admins; the bot's own writes keep comments and land atomically."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import time
from pathlib import Path

from ruamel.yaml import YAML

from bot.config.watch import ConfigWatcher, edit_yaml_text, write_atomically
from tests import conftest
from tests.bot.ops_doubles import ADMIN, FAMILY_ID, make_app, message, record_classifications
from tests.conftest import wait_until
from tests.support.app_parts import notices_of
from tests.support.peer import BOT, FAMILY, at

BASE = """\
# family bot config (admin's notes)
bot:
  admins: [alice]   # mum runs it
groups:
  allow: ["工作群"]  # only the work room for now
"""


async def _started(app) -> ConfigWatcher:
    watcher = app.config_watcher
    await watcher.start()
    await asyncio.sleep(0.3)  # let the watcher arm itself
    return watcher


async def test_valid_edit_applies_within_two_seconds(tmp_path: Path) -> None:
    app, _channel = make_app(tmp_path, BASE)
    watcher = await _started(app)
    try:
        assert not app.live_config().groups.allows(FAMILY_ID, "相亲相爱一家人")
        started = time.monotonic()
        watcher.path.write_text(BASE.replace('["工作群"]', '["工作群", "相亲相爱一家人"]'), encoding="utf-8")
        await wait_until(lambda: app.live_config().groups.allows(FAMILY_ID, "相亲相爱一家人"), within=2.0)
        elapsed = time.monotonic() - started
    finally:
        await watcher.stop()
    assert watcher.reloads == 1
    print(f"config edit applied after {elapsed * 1000:.0f} ms")


async def test_edit_by_rename_is_seen(tmp_path: Path) -> None:
    """Editors (vim, VS Code) often save by writing a new file and renaming it over the old one."""
    app, _channel = make_app(tmp_path, BASE)
    watcher = await _started(app)
    try:
        new = tmp_path / "config.yaml.new"
        new.write_text(BASE + "chat:\n  max_reply_chars: 99\n", encoding="utf-8")
        os.replace(new, watcher.path)
        await wait_until(lambda: app.live_config().chat.max_reply_chars == 99, within=2.0)
    finally:
        await watcher.stop()


async def test_invalid_edits_keep_the_config_and_tell_the_admin(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, BASE)
    running = app.live_config()
    watcher = await _started(app)
    try:
        # 没有这个设置, with its line
        watcher.path.write_text(BASE + "chat:\n  max_reply_char: 99\n", encoding="utf-8")
        await wait_until(lambda: len(channel.private_texts(ADMIN)) == 1, within=3.0)
        notice = channel.private_texts(ADMIN)[0]
        assert "chat.max_reply_char（第 7 行）" in notice and "是不是想写 max_reply_chars？" in notice
        assert app.live_config() is running

        # wrong type
        watcher.path.write_text(BASE + "chat:\n  max_reply_chars: lots\n", encoding="utf-8")
        await wait_until(lambda: len(channel.private_texts(ADMIN)) == 2, within=3.0)
        assert "chat.max_reply_chars（第 7 行）" in channel.private_texts(ADMIN)[1]

        # YAML syntax
        watcher.path.write_text(BASE + "chat: [oops\n", encoding="utf-8")
        await wait_until(lambda: len(channel.private_texts(ADMIN)) == 3, within=3.0)
        assert "没有配对" in channel.private_texts(ADMIN)[2]
        assert app.live_config() is running

        # the old config still works: a message in the allowed room reaches classification
        seen = record_classifications(app)
        await app.dispatcher.on_message(message("你好", room="other@chatroom"))
        assert len(seen) == 1

        # fixed: applied, and nobody is told again
        watcher.path.write_text(BASE + "chat:\n  max_reply_chars: 99\n", encoding="utf-8")
        await wait_until(lambda: app.live_config().chat.max_reply_chars == 99, within=2.0)
        config_notices = [t for t in channel.private_texts(ADMIN) if "配置文件" in t]
        assert len(config_notices) == 3  # (the chat above also told the admin once that no LLM is set)
    finally:
        await watcher.stop()


async def test_same_error_is_reported_once(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, BASE)
    watcher = app.config_watcher
    bad = BASE + "bogus: 1\n"
    watcher.path.write_text(bad, encoding="utf-8")
    applied, reason = await watcher.reload()
    assert not applied and "bogus（第 6 行）" in reason
    watcher.path.write_text(bad + "\n", encoding="utf-8")  # touched again, same mistake
    await watcher.reload()
    assert len(channel.private_texts(ADMIN)) == 1


def test_edit_keeps_comments_order_quotes_and_nulls() -> None:
    text = (
        "# header comment\n"
        "bot:\n"
        "  name: 小爱   # the name\n"
        "llm:\n"
        "  base_url: null   # from env\n"
        "groups:\n"
        '  allow: ["工作群"]   # rooms\n'
        "  rooms:\n"
        "    工作群:\n"
        "      intents:\n"
        "        - chat   # only chat at work\n"
    )
    out = edit_yaml_text(text, lambda doc: doc["groups"]["allow"].append("相亲相爱一家人"))
    before, after = text.splitlines(), out.splitlines()
    assert len(after) == len(before)
    for old_line, new_line in zip(before, after, strict=True):
        if "allow" in old_line:
            assert new_line.startswith('  allow: ["工作群", 相亲相爱一家人]') and new_line.endswith("# rooms")
        else:
            assert new_line == old_line  # comments, order, quotes and the null untouched


def test_write_atomically_replaces_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n", encoding="utf-8")
    path.chmod(0o600)
    write_atomically(path, "new: 2\n")
    assert path.read_text(encoding="utf-8") == "new: 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left behind


async def test_reload_command_reports_the_error(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, BASE)
    app.config_watcher.path.write_text(BASE + "quotas:\n  user_messages_per_minute: -1\n", encoding="utf-8")
    await app.dispatcher.on_message(message("#重载", sender=ADMIN, room=None))
    reply = channel.private_texts(ADMIN)[-1]
    assert "没有重载" in reply and "quotas.user_messages_per_minute（第 7 行）" in reply
    app.config_watcher.path.write_text(BASE + "quotas:\n  user_messages_per_minute: 2\n", encoding="utf-8")
    await app.dispatcher.on_message(message("#重载", sender=ADMIN, room=None))
    assert channel.private_texts(ADMIN)[-1] == "已重新加载 config.yaml。"
    assert app.live_config().quotas.user_messages_per_minute == 2


# -- through the Node Wechaty peer ------------------------------------------------------------------
def dump_yaml(data: dict, header: str = "") -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return header + out.getvalue()


async def test_e2e_edit_applies_and_bad_edit_tells_admin(running_bot, peer, fake_llm, tmp_path) -> None:
    fake_llm.classify("你好", "其它")
    fake_llm.add("你好", "你好呀！")
    overrides = {"bot": {"admins": [ADMIN]}, "groups": {"allow": ["工作群"]}}
    data = conftest.test_config_data(tmp_path / "data", overrides)
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(data), encoding="utf-8")
    async with running_bot(overrides) as app:
        watcher = ConfigWatcher(path, apply=app.live_config.apply, notices=notices_of(app),
                                connected=lambda: app.channel.connected)
        await watcher.start()
        try:
            await asyncio.sleep(0.3)
            # an invalid edit: the admin hears about it in private, the old config keeps working
            path.write_text(dump_yaml(data) + "groups_typo: 1\n", encoding="utf-8")
            notice = await asyncio.to_thread(
                peer.wait_for_sent, lambda m: m["room"] is None and m["to"] == ADMIN, 5)
            assert "groups_typo" in notice["text"] and "行" in notice["text"]
            assert not app.live_config().groups.allows(FAMILY, "相亲相爱一家人")
            # a valid edit opens the family room within 2 s
            data["groups"]["allow"] = ["工作群", "相亲相爱一家人"]
            started = time.monotonic()
            path.write_text(dump_yaml(data), encoding="utf-8")
            await wait_until(lambda: app.live_config().groups.allows(FAMILY, "相亲相爱一家人"), within=2.0)
            print(f"e2e: config edit applied after {(time.monotonic() - started) * 1000:.0f} ms")
            peer.say("bob", at() + "你好", room=FAMILY, mention=[BOT])
            reply = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
            assert "你好呀" in reply["text"]
        finally:
            await watcher.stop()
