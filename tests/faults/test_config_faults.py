"""Config faults against the real `xiaoai run` process: an alias bomb nested in a value, an empty or
whitespace-only file, and a second bot started on the same data_dir."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.faults.conftest import REPO_ROOT, to_admin, wait_sent
from tests.support.builtin_intents import Intent
from tests.support.peer import BOT, FAMILY, at

ADMIN = "alice"
BOMB_WEBHOOK = """\
alerts:
  webhook_url: http://127.0.0.1:9/hook
  webhook_json:
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    text: [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def check_config(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def admin_config(tmp_path) -> str:
    return (f"bot:\n  admins: [{ADMIN}]\ndata_dir: {tmp_path / 'data'}\n"
            "llm:\n  model: fake-model\n  timeout_s: 3\n  classify_timeout_s: 2\n  retries: 0\n"
            "wechaty:\n  reconnect_initial_s: 0.2\n  reconnect_max_s: 1.0\n  health_interval_s: 0.5\n")


def test_check_config_rejects_an_alias_bomb_inside_a_value(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BOMB_WEBHOOK, encoding="utf-8")
    started = time.monotonic()
    result = check_config(path)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "alias" in result.stderr.lower() or "别名" in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("text", ["", "   \n\n  \t\n"], ids=["empty", "whitespace"])
def test_check_config_rejects_an_empty_file(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_config(path)
    assert result.returncode != 0 and "文件是空的" in result.stderr, result.stdout + result.stderr


def _edit_is_rejected_and_admins_kept(bot_process, peer, fake_llm, tmp_path, bad_text: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(admin_config(tmp_path), encoding="utf-8")
    fake_llm.classify("在吗", Intent.CHAT.label)
    fake_llm.add("在吗", "在的在的！")
    bot = bot_process(config_path=config)
    config.write_text(bad_text, encoding="utf-8")
    notice = wait_sent(peer, lambda m: to_admin(m, ADMIN) and "配置文件有错误" in (m.get("text") or ""),
                       timeout=20)
    assert len(notice["text"]) <= 600
    # still running, and still on the old config: the admin is still an admin, the group is served
    peer.say("bob", at() + "在吗", room=FAMILY, mention=[BOT])
    wait_sent(peer, lambda m: m["room"] == FAMILY and "在的在的" in (m.get("text") or ""))
    peer.say(ADMIN, "#状态")
    wait_sent(peer, lambda m: to_admin(m, ADMIN) and "配置文件有错误" not in (m.get("text") or ""))
    assert bot.proc.poll() is None


def test_hot_reload_rejects_an_alias_bomb(bot_process, peer, fake_llm, tmp_path):
    _edit_is_rejected_and_admins_kept(bot_process, peer, fake_llm, tmp_path,
                                      admin_config(tmp_path) + BOMB_WEBHOOK)


@pytest.mark.parametrize("text", ["", "  \n\n   \n"], ids=["empty", "whitespace"])
def test_hot_reload_of_an_empty_file_keeps_the_running_config(bot_process, peer, fake_llm, tmp_path, text):
    _edit_is_rejected_and_admins_kept(bot_process, peer, fake_llm, tmp_path, text)


@pytest.mark.slow
def test_second_bot_on_the_same_data_dir_exits_naming_the_first(bot_process, peer, fake_llm, tmp_path):
    fake_llm.classify("在吗", Intent.CHAT.label)
    fake_llm.add("在吗", "在的在的！")
    first = bot_process({})
    second = bot_process(connect=False)  # the same config file, so the same data_dir
    code = second.wait_exit(45)
    assert code is not None and code != 0, second.log()[-2000:]
    assert str(first.proc.pid) in second.log() and str(tmp_path / "data") in second.log()
    assert first.proc.poll() is None
    peer.say("bob", at() + "在吗", room=FAMILY, mention=[BOT])
    wait_sent(peer, lambda m: m["room"] == FAMILY and "在的在的" in (m.get("text") or ""))
    time.sleep(1)
    assert [m["text"] for m in peer.sent() if m["room"] == FAMILY].count(
        next(m["text"] for m in peer.sent() if m["room"] == FAMILY)) == 1
