"""Reading config.yaml: validation errors with key path and line, the first release's keys mapped, and
the last-good copy that lets a restart survive an admin's typo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import ValidationError
from ruamel.yaml.error import YAMLError

from bot.config.app import AppConfig
from bot.config.legacy import upgrade
from bot.config.wording import friendly, syntax_problem
from bot.config.yaml_guard import YamlBudgetExceeded, load_config_yaml


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key, the line and the reason."""


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Best-effort 1-based line of a key path in a ruamel round-trip document."""
    node, line = data, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(key, str) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(key, int):
                line = lc.item(key)[0] + 1
            node = node[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def _where(loc: tuple[Any, ...], written: dict[tuple[Any, ...], tuple[Any, ...]]) -> tuple[Any, ...]:
    """The key path as the file spells it (a deprecated key's old path, for its line and its name)."""
    for size in range(len(loc), 0, -1):
        if loc[:size] in written:
            return written[loc[:size]] + loc[size:]
    return loc


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "（最外层）"


def parse(text: str, source: str = "config.yaml") -> AppConfig:
    """Validate YAML text into an AppConfig, raising ConfigError with key, line and reason. Keys of the
    first release's flat layout are read in their new place, each with a deprecation warning."""
    try:
        data = load_config_yaml(text)
    except YamlBudgetExceeded as exc:
        raise ConfigError(f"{source}：{exc}") from exc
    except YAMLError as exc:
        raise ConfigError(syntax_problem(exc, source, text)) from exc
    if data is None:  # an empty, blank or all-comment file: never "all defaults" (that drops the admins)
        raise ConfigError(f"{source}：文件是空的，一个设置都没有；请恢复它，或者删掉它改用内置的默认设置")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}：最外面一层应该是一节一节的设置（如「bot:」「llm:」），现在不是")
    upgraded, moved = upgrade(data)
    if moved.conflicts:
        raise ConfigError(f"{source}：" + "；".join(
            f"{_key(old)}（第 {_line_of(data, old)} 行）和 {_key(new)}（第 {_line_of(data, new)} 行）是同一个"
            f"设置：只留 {_key(new)}" for old, new in moved.conflicts))
    for old, new in moved.keys:
        logger.warning("config: {} is deprecated, use {}", _key(old), _key(new))
    written = {new: old for old, new in moved.keys}
    try:
        return AppConfig.model_validate(upgraded)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _where(tuple(err["loc"]), written)
            line = _line_of(data, loc)
            where = f"（第 {line} 行）" if line else ""
            problems.append(f"{_key(loc)}{where}：{friendly(err)}")
        raise ConfigError(f"{source}：" + "；".join(problems)) from exc


def last_good_path(path: Path) -> Path:
    """Where the last config that validated is kept, beside the file (`.config.yaml.last-good`)."""
    return Path(path).with_name(f".{Path(path).name}.last-good")


def remember_good(path: Path, text: str) -> None:
    """Keep `text` (it validated) as the fallback for a start with a broken file; never fatal."""
    target = last_good_path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        logger.warning("could not keep a copy of the good config at {}: {}", target, exc.strerror)


def load_resilient(path: Path | None) -> tuple[AppConfig, str | None]:
    """Load for a (re)start: a typo must not keep the bot down. On success the file is remembered as
    last-good; when it does not validate but a last-good copy does, that copy is used and the reason is
    returned (to log and to tell the admins). With no usable copy the ConfigError propagates."""
    if path is None:
        return AppConfig(), None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"读不了配置文件 {path}：{exc.strerror}") from exc
    try:
        config = parse(text, str(path))
    except ConfigError as error:
        fallback = last_good_path(path)
        try:
            config = parse(fallback.read_text(encoding="utf-8"), str(fallback))
        except (OSError, ConfigError):
            raise error from None
        return config, str(error)
    remember_good(path, text)
    return config, None


def load(path: Path | None) -> AppConfig:
    """Load config from a file, or the embedded defaults when no file is given."""
    if path is None:
        return AppConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"读不了配置文件 {path}：{exc.strerror}") from exc
    return parse(text, str(path))
