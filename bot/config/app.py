"""The whole configuration (`AppConfig`) and the secrets that only ever come from the environment
(`Secrets`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    def for_chat(self, chat: ChatRef, topic: str | None = None) -> ChatSettings:
        """What applies in one chat: global defaults with the room's `groups.rooms` overrides on top."""
        return chat_settings(self, chat, topic)


@dataclass(frozen=True)
class Secrets:
    """Values that must come from the environment, never from config.yaml."""

    openai_api_key: str | None
    openai_base_url: str | None
    puppet_endpoint: str | None
    puppet_token: str | None
    admin_password: str | None = None  # the admin console's login
    zhipuai_api_key: str | None = None  # 智谱 BigModel: videos through video.backend api / auto
    dashscope_api_key: str | None = None  # Alibaba DashScope 通义万相: the same

    def video_api_keys(self) -> dict[str, str | None]:
        """{provider: key} for the hosted video APIs."""
        return {"zhipu": self.zhipuai_api_key, "dashscope": self.dashscope_api_key}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Secrets:
        env = dict(os.environ) if env is None else env
        return cls(
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            puppet_endpoint=env.get("WECHATY_PUPPET_SERVICE_ENDPOINT") or None,
            puppet_token=env.get("WECHATY_PUPPET_SERVICE_TOKEN") or None,
            admin_password=env.get("XIAOAI_ADMIN_PASSWORD") or None,
            zhipuai_api_key=env.get("ZHIPUAI_API_KEY") or None,
            dashscope_api_key=env.get("DASHSCOPE_API_KEY") or None,
        )
