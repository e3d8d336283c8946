"""`check-config` in plain Chinese, with the line the mistake is on and its likely cause, for the slips a
family admin makes: a full-width colon, a tab, an indentation that does not line up, a missing space, a
key under the wrong section, and pydantic's own messages translated. A bad hot edit tells the admins the
same sentence that `check-config` prints and the console shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, parse
from tests.bot.ops_doubles import ADMIN, make_app

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = "# the family's bot\nbot:\n  name: 小爱\n  admins: [alice]\nchat:\n  max_reply_chars: 200\n"
_ENGLISH = re.compile(r"[A-Za-z]{3,}(?: [A-Za-z]{2,}){2,}")  # three English words in a row


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, "config.yaml")
    return str(caught.value)


@pytest.mark.parametrize("text,line,cause", [
    (BASE + "llm：\n  model: qwen-plus\nvideo:\n  backend: local\n", 7, "中文冒号"),  # YAML blames line 8
    (BASE.replace("  name: 小爱", "\tname: 小爱"), 3, "Tab"),
    (BASE.replace("  admins: [alice]", "   admins: [alice]"), 4, "缩进没对齐"),
    (BASE.replace("bot:\n  name: 小爱", "bot:\n    name: 小爱"), 4, "缩进没对齐"),
    (BASE.replace("name: 小爱", "name:小爱"), 3, "冒号后面少了一个空格"),
    ("llm:\n  model: [qwen\n", 2, "没有配对"),
])
def test_syntax_slips_name_the_line_and_the_cause(text: str, line: int, cause: str) -> None:
    message = problem(text)
    assert f"第 {line} 行" in message and cause in message, message
    assert not _ENGLISH.search(message), message


def test_a_key_under_the_wrong_section_says_where_it_belongs() -> None:
    message = problem("quotas:\n  num_frames: 9\n")
    assert "quotas.num_frames（第 2 行）" in message and "num_frames 应该写在 video.sampling" in message


@pytest.mark.parametrize("text,words", [
    ("quotas:\n  user_videos_per_day: -1\n", "不能小于 0"),
    ("video:\n  backend: cloud\n", "只能是"),
    ("llm:\n  timeout_s: soon\n", "应该是数字"),
    ("bot:\n  private_chat: maybe\n", "应该是 true 或 false"),
])
def test_pydantic_messages_are_translated(text: str, words: str) -> None:
    message = problem(text)
    assert words in message and "（第 2 行）" in message and not _ENGLISH.search(message), message


def test_check_config_prints_the_chinese_cause(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "llm：\n  model: qwen-plus\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path} 第 7 行：用了中文冒号「：」" in result.stderr, result.stderr


async def test_a_bad_hot_edit_tells_the_admins_the_same_sentence(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, BASE)
    watcher = app.config_watcher
    broken = BASE + "quotas:\n  num_frames: 9\n"
    watcher.path.write_text(broken, encoding="utf-8")
    applied, reason = await watcher.reload()
    assert not applied and reason == problem(broken).replace("config.yaml", str(watcher.path), 1)
    told = channel.private_texts(ADMIN)
    assert told and reason in told[-1] and "num_frames 应该写在 video.sampling" in told[-1]
