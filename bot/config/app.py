"""The whole configuration (`AppConfig`), what applies in one chat (`ChatSettings`), and the secrets
that only ever come from the environment (`Secrets`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import field_validator

from bot.config.media import ImageConfig, VideoConfig
from bot.config.operations import AlertsConfig, SchedulesConfig
from bot.config.sections import (
    AmapConfig,
    BotConfig,
    ChatConfig,
    GroupsConfig,
    HistoryConfig,
    LLMConfig,
    OfflineConfig,
    QuotasConfig,
    Section,
    WechatyConfig,
)

if TYPE_CHECKING:
    from bot.messages import ChatRef


class AppConfig(Section):
    bot: BotConfig = BotConfig()
    groups: GroupsConfig = GroupsConfig()
    llm: LLMConfig = LLMConfig()
    chat: ChatConfig = ChatConfig()
    history: HistoryConfig = HistoryConfig()
    wechaty: WechatyConfig = WechatyConfig()
    data_dir: Path = Path("data")  # the database and generated media
    image: ImageConfig = ImageConfig()
    quotas: QuotasConfig = QuotasConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    offline: OfflineConfig = OfflineConfig()
    amap: AmapConfig = AmapConfig()
    video: VideoConfig = VideoConfig()

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def for_chat(self, chat: ChatRef, topic: str | None = None) -> ChatSettings:
        """What applies in one chat: global defaults with the room's `groups.rooms` overrides on top."""
        key, room = self.groups.room_entry(chat.chat_id, topic) if chat.is_room else (None, None)
        if room is None:
            return ChatSettings(None, None, self.groups.keywords if chat.is_room else (), self.quotas, self)
        config = self
        if room.persona is not None:
            config = self.model_copy(update={"chat": self.chat.model_copy(update={"persona": room.persona})})
        return ChatSettings(
            room_key=key,
            intents=frozenset(room.intents) if room.intents is not None else None,
            keywords=room.keywords if room.keywords is not None else self.groups.keywords,
            quotas=self.quotas.overlaid(room.quotas),
            config=config,
        )


_KEYWORD_TAIL = " \u2005\u00a0,，:：、!！~～"


@dataclass(frozen=True)
class ChatSettings:
    """The effective settings in one chat (see `AppConfig.for_chat`)."""

    room_key: str | None  # the groups.rooms key that matched; None = global defaults only
    intents: frozenset[str] | None  # enabled intent module names; None = all
    keywords: tuple[str, ...]  # text prefixes that address the bot without an @
    quotas: QuotasConfig
    config: AppConfig  # the whole config with this room's values (persona) applied: give it to Context

    def intent_enabled(self, name: str) -> bool:
        return self.intents is None or name in self.intents

    def strip_keyword(self, text: str) -> str | None:
        """The text after a keyword prefix ("小爱，明天下雨吗" -> "明天下雨吗"); None when none starts it."""
        for keyword in sorted(self.keywords, key=len, reverse=True):
            if keyword and text.startswith(keyword):
                return text[len(keyword):].lstrip(_KEYWORD_TAIL)
        return None


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
