"""The whole configuration (`AppConfig`) and the secrets that only ever come from the environment
(`Secrets`, in secret_store.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from bot.config.jobs import JobsConfig
from bot.config.media import ImageConfig, VideoConfig
from bot.config.operations import AlertsConfig, SchedulesConfig
from bot.config.sections import (
    AmapConfig,
    BotConfig,
    ChatConfig,
    ChatSettings,
    ConsoleConfig,
    GroupsConfig,
    HistoryConfig,
    LLMConfig,
    OfflineConfig,
    PluginsConfig,
    QuotasConfig,
    Section,
    WechatyConfig,
    chat_settings,
)

if TYPE_CHECKING:
    from bot.messages import ChatRef


class AppConfig(Section):
    bot: BotConfig = BotConfig()
    groups: GroupsConfig = GroupsConfig()
    llm: LLMConfig = LLMConfig()
    chat: ChatConfig = ChatConfig()
    history: HistoryConfig = HistoryConfig()
    data_dir: Path = Path("data")  # the database and generated media
    wechaty: WechatyConfig = WechatyConfig()
    image: ImageConfig = ImageConfig()
    quotas: QuotasConfig = QuotasConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    offline: OfflineConfig = OfflineConfig()
    amap: AmapConfig = AmapConfig()
    video: VideoConfig = VideoConfig()
    jobs: JobsConfig = JobsConfig()
    console: ConsoleConfig = ConsoleConfig()
    plugins: PluginsConfig = PluginsConfig()

    @classmethod
    def model_validate(cls, obj: Any, *, context: dict[str, Any] | None = None, **kwargs: Any) -> AppConfig:
        """Validate, with the plugin folders this config names in the context, so a room's `intents:`
        may list a plugin's intent (RoomSettings checks the names)."""
        if context is None and isinstance(obj, dict):
            context = {"plugin_dirs": plugin_dirs(obj)}
        return super().model_validate(obj, context=context, **kwargs)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def for_chat(self, chat: ChatRef, topic: str | None = None) -> ChatSettings:
        """What applies in one chat (`chat_settings`)."""
        return chat_settings(self, chat, topic)


def plugin_dirs(data: dict[str, Any]) -> tuple[str, ...]:
    """`plugins.dirs` as written in raw config data (before validation)."""
    plugins = data.get("plugins")
    dirs = plugins.get("dirs") if isinstance(plugins, dict) else None
    return tuple(str(d) for d in dirs) if isinstance(dirs, list | tuple) else ()
