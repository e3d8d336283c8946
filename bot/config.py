"""Typed configuration: one pydantic section per concern, loaded from config.yaml.

Secrets never live here; they come from the environment (see `Secrets`). A bad file is reported with
the exact key path, the line in the file and the reason, so an admin's typo never takes the bot down
silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class Section(BaseModel):
    """Base for every section: unknown keys are errors, and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BotConfig(Section):
    name: str = "小爱"
    aliases: tuple[str, ...] = ()
    private_chat: bool = False
    admins: tuple[str, ...] = ()
    non_text_reply: str = "我现在只看得懂文字消息哦，@我说说你想要什么吧～"
    dedup_size: int = Field(default=2048, ge=16)


class GroupsConfig(Section):
    allow: tuple[str, ...] = ("*",)

    def allows(self, room_id: str, topic: str | None) -> bool:
        return "*" in self.allow or room_id in self.allow or (topic is not None and topic in self.allow)


class LLMConfig(Section):
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=20.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    classify_timeout_s: float = Field(default=10.0, gt=0)
    temperature: float = Field(default=0.3, ge=0, le=2)


class ChatConfig(Section):
    persona: str = (
        "你是小爱，一个住在家庭微信群里的贴心助手。说话亲切、简洁、实在，像家里懂事的晚辈。"
    )
    max_reply_chars: int = Field(default=300, ge=20, le=2000)
    max_tokens: int = Field(default=400, ge=16)


class HistoryConfig(Section):
    max_messages: int = Field(default=12, ge=1, le=200)
    max_age_minutes: float = Field(default=30, gt=0)


class WechatyConfig(Section):
    endpoint: str | None = None
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=3.0, gt=0)
    health_interval_s: float = Field(default=1.0, gt=0)
    port: int = Field(default=0, ge=0, le=65535)


class AppConfig(Section):
    bot: BotConfig = BotConfig()
    groups: GroupsConfig = GroupsConfig()
    llm: LLMConfig = LLMConfig()
    chat: ChatConfig = ChatConfig()
    history: HistoryConfig = HistoryConfig()
    wechaty: WechatyConfig = WechatyConfig()
    data_dir: Path = Path("data")
    # feature sections (one per feature issue) are added below this line

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


@dataclass(frozen=True)
class Secrets:
    """Values that must come from the environment, never from config.yaml."""

    openai_api_key: str | None
    openai_base_url: str | None
    puppet_endpoint: str | None
    puppet_token: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Secrets:
        env = dict(os.environ) if env is None else env
        return cls(
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            puppet_endpoint=env.get("WECHATY_PUPPET_SERVICE_ENDPOINT") or None,
            puppet_token=env.get("WECHATY_PUPPET_SERVICE_TOKEN") or None,
        )


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


def parse(text: str, source: str = "config.yaml") -> AppConfig:
    """Validate YAML text into an AppConfig, raising ConfigError with key, line and reason."""
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(data, loc)
            where = f" (line {line})" if line else ""
            problems.append(f"{key}{where}: {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from exc


def load(path: Path | None) -> AppConfig:
    """Load config from a file, or the embedded defaults when no file is given."""
    if path is None:
        return AppConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse(text, str(path))


Backend = Literal["local", "remote"]
