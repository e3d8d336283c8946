"""Loading config.yaml: exact key, line and reason for a bad file, and a restart with a typo that runs on
the last copy that validated instead of staying down."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, last_good_path, load_resilient, parse


def test_errors_name_key_line_and_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("llm:\n  model: 3\n  timeot_s: 3\n", "config.yaml")
    message = str(caught.value)
    assert "llm.model（第 2 行）" in message and "应该是一段文字" in message
    assert "llm.timeot_s（第 3 行）" in message and "没有这个设置，是不是想写 timeout_s？" in message


def test_yaml_syntax_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="第 1 行：引号或括号没有配对"):
        parse("llm: [unclosed\n")


def test_a_start_with_a_typo_runs_on_the_last_good_copy(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("llm:\n  model: good-model\n", encoding="utf-8")
    config, error = load_resilient(path)
    assert error is None and last_good_path(path).is_file()

    path.write_text("llm:\n  modle: typo\n", encoding="utf-8")
    config, error = load_resilient(path)
    assert config.llm.model == "good-model"
    assert error is not None and "llm.modle（第 2 行）" in error
    assert "modle" not in last_good_path(path).read_text(encoding="utf-8")  # a bad file is never kept


def test_a_typo_with_no_good_copy_still_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("llm:\n  modle: typo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="llm.modle"):
        load_resilient(path)
