"""The chat and family sections: the bot itself, which groups it serves (with per-room overrides),
quotas, the LLM, chat, history, the WeChat gateway, AMap and the offline classifier / playground; and
what applies in one chat (`chat_settings`), which the dispatcher reads for every message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from bot.plugin import known_intent_names
from generators.settings import Settings
from services.amap.settings import AmapSettings

if TYPE_CHECKING:
    from bot.messages import ChatRef


class Section(Settings):
    """Base for every section: unknown keys are errors, and a loaded config never changes."""


class BotConfig(Section):
    name: str = "小爱"
    aliases: tuple[str, ...] = ()
    private_chat: bool = False
    admins: tuple[str, ...] = ()
    non_text_reply: str = "我现在只看得懂文字消息哦，@我说说你想要什么吧～"
    dedup_size: int = Field(default=2048, ge=16)


class PluginsConfig(Section):
    """Intents beyond the built-in ones (bot/plugin.py): every `*.py` in these folders is a plugin.
    Read at start; relative folders are relative to where xiaoai starts."""

    dirs: tuple[str, ...] = ()


def intent_names(info: ValidationInfo | None = None) -> frozenset[str]:
    """The intent names a room's `intents:` may list: the built-ins, the installed entry points and the
    plugin folders of the config being validated (`plugin_dirs` in the validation context)."""
    dirs = tuple((info.context or {}).get("plugin_dirs", ())) if info is not None else ()
    return known_intent_names(dirs)


class QuotasConfig(Section):
    """Limits per user (in one chat) and per group; null = no limit, 0 = not allowed. Admins are exempt."""

    user_messages_per_minute: int | None = Field(default=6, ge=0)
    group_messages_per_minute: int | None = Field(default=30, ge=0)
    user_images_per_day: int | None = Field(default=10, ge=0)
    group_images_per_day: int | None = Field(default=40, ge=0)
    user_videos_per_day: int | None = Field(default=3, ge=0)
    group_videos_per_day: int | None = Field(default=10, ge=0)

    def overlaid(self, override: QuotasConfig | None) -> QuotasConfig:
        """These limits with the keys the override sets explicitly (a room's partial `quotas:`)."""
        if override is None:
            return self
        return self.model_copy(update={key: getattr(override, key) for key in override.model_fields_set})


class RoomSettings(Section):
    """One room's overrides (groups.rooms); every key left out falls back to the global setting."""

    intents: tuple[str, ...] | None = None  # enabled intents by module name; null = all
    persona: str | None = None  # replaces chat.persona in this room
    keywords: tuple[str, ...] | None = None  # text prefixes that address the bot; null = groups.keywords
    quotas: QuotasConfig | None = None  # only the keys given override the global quotas

    @field_validator("intents")
    @classmethod
    def _known_intents(cls, value: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        known = intent_names(info)
        unknown = [name for name in value or () if name not in known]
        if unknown:
            raise ValueError(f"没有这个功能：{'、'.join(unknown)}；可以用 {'、'.join(sorted(known))}")
        return value


def _names_room(names: tuple[str, ...], room_id: str, topic: str | None) -> bool:
    return room_id in names or (topic is not None and topic in names)


class GroupsConfig(Section):
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()  # never served, even under "*" (#禁用本群 writes here)
    keywords: tuple[str, ...] = ()  # text prefixes that address the bot without an @; empty = @ only
    rooms: dict[str, RoomSettings] = Field(default_factory=dict)  # room topic or id -> overrides

    def allows(self, room_id: str, topic: str | None) -> bool:
        if _names_room(self.deny, room_id, topic):
            return False
        return "*" in self.allow or _names_room(self.allow, room_id, topic)

    def room_entry(self, room_id: str, topic: str | None) -> tuple[str | None, RoomSettings | None]:
        """The `rooms` entry for a room: by id first (stable), then by topic."""
        for key in (room_id, topic):
            if key is not None and key in self.rooms:
                return key, self.rooms[key]
        return None, None


class LLMConfig(Section):
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=20.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    classify_timeout_s: float = Field(default=10.0, gt=0)
    temperature: float = Field(default=0.3, ge=0, le=2)
    vision: bool = False  # the model reads pictures: a photo video's prompt is written from the photo too


class ChatConfig(Section):
    persona: str = (
        "你是小爱，一个住在家庭微信群里的贴心助手。说话亲切、简洁、实在，像家里懂事的晚辈。"
    )
    max_reply_chars: int = Field(default=300, ge=20, le=2000)
    max_tokens: int = Field(default=400, ge=16)
    # with an LLM, a mention no request cue matches starts its chat answer beside the classifier (one LLM
    # wait, not two); a request that looked like chat costs a cancelled chat call (bot/pipeline/ahead.py)
    answer_ahead: bool = True


class HistoryConfig(Section):
    max_messages: int = Field(default=12, ge=1, le=200)
    max_age_minutes: float = Field(default=30, gt=0)


class WechatyConfig(Section):
    endpoint: str | None = None
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=3.0, gt=0)
    health_interval_s: float = Field(default=1.0, gt=0)
    port: int = Field(default=0, ge=0, le=65535)


class AmapConfig(AmapSettings, Section):
    """高德 Web Service API: weather, routes, places. The key comes from env AMAP_KEY. What the client
    itself reads (base_url, timeout_s, retries) is the service's own `AmapSettings`."""

    default_city: str | None = None
    places_radius_m: int = Field(default=3000, ge=100, le=50000)
    places_limit: int = Field(default=5, ge=1, le=10)
    route_steps: int = Field(default=5, ge=1, le=20)
    pending_minutes: float = Field(default=10, gt=0)
    timezone: str = "Asia/Shanghai"
    polish: bool = False


class EmbeddedClassifierConfig(Section):
    """The on-CPU intent classifier: nearest neighbours over prompts/intent_examples.yaml."""

    enabled: bool = True
    neighbours: int = Field(default=3, ge=1, le=10)
    chat_margin: float = Field(default=0.003, ge=0, le=1)
    min_similarity: float = Field(default=0.80, ge=0, le=1)


class PlaygroundMember(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=16)


class PlaygroundConfig(Section):
    """The local web page that looks like a WeChat group; only ever on a loopback address."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    room_topic: str = "小爱试玩群"
    members: tuple[PlaygroundMember, ...] = (
        PlaygroundMember(id="mom", name="妈妈"),
        PlaygroundMember(id="dad", name="爸爸"),
        PlaygroundMember(id="grandma", name="奶奶"),
        PlaygroundMember(id="kid", name="小明"),
    )
    demo_models: bool = True

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value not in ("localhost", "::1") and not value.startswith("127."):
            raise ValueError("试玩页面没有登录，只能开在 127.0.0.1 / localhost / ::1 上")
        return value

    @field_validator("members")
    @classmethod
    def _some_members(cls, value: tuple[PlaygroundMember, ...]) -> tuple[PlaygroundMember, ...]:
        if not value:
            raise ValueError("至少要有一个成员")
        if len({m.id for m in value}) != len(value):
            raise ValueError("成员 id 不能重复")
        return value


class ConsoleConfig(Section):
    """The admin console (/admin): on the playground's server in playground mode, else its own. Its
    password comes from env XIAOAI_ADMIN_PASSWORD; without one it only listens on a loopback address."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8766, ge=0, le=65535)


class OfflineConfig(Section):
    """Working with no LLM key and no WeChat account."""

    classifier: EmbeddedClassifierConfig = EmbeddedClassifierConfig()
    playground: PlaygroundConfig = PlaygroundConfig()


_KEYWORD_TAIL = " \u2005\u00a0,，:：、!！~～"


WholeConfig = TypeVar("WholeConfig", bound=Section)
"""The AppConfig (bot/config/app.py), named generically so this module needs no import of it."""


@dataclass(frozen=True)
class ChatSettings(Generic[WholeConfig]):
    """The effective settings in one chat (see `chat_settings`)."""

    room_key: str | None  # the groups.rooms key that matched; None = global defaults only
    intents: frozenset[str] | None  # enabled intent module names; None = all
    keywords: tuple[str, ...]  # text prefixes that address the bot without an @
    quotas: QuotasConfig
    config: WholeConfig  # the whole config with this room's values (persona) applied: give it to Context

    def intent_enabled(self, name: str) -> bool:
        return self.intents is None or name in self.intents

    def strip_keyword(self, text: str) -> str | None:
        """The text after a keyword prefix ("小爱，明天下雨吗" -> "明天下雨吗"); None when none starts it."""
        for keyword in sorted(self.keywords, key=len, reverse=True):
            if keyword and text.startswith(keyword):
                return text[len(keyword):].lstrip(_KEYWORD_TAIL)
        return None


def chat_settings(config: WholeConfig, chat: ChatRef, topic: str | None = None) -> ChatSettings[WholeConfig]:
    """What applies in one chat: global defaults with the room's `groups.rooms` overrides on top."""
    groups = config.groups
    key, room = groups.room_entry(chat.chat_id, topic) if chat.is_room else (None, None)
    if room is None:
        return ChatSettings(None, None, groups.keywords if chat.is_room else (), config.quotas, config)
    if room.persona is not None:
        config = config.model_copy(update={"chat": config.chat.model_copy(update={"persona": room.persona})})
    return ChatSettings(
        room_key=key,
        intents=frozenset(room.intents) if room.intents is not None else None,
        keywords=room.keywords if room.keywords is not None else groups.keywords,
        quotas=config.quotas.overlaid(room.quotas),
        config=config,
    )


__all__ = [
    "AmapConfig", "BotConfig", "ChatConfig", "ChatSettings", "ConsoleConfig", "EmbeddedClassifierConfig",
    "GroupsConfig", "HistoryConfig", "LLMConfig", "OfflineConfig", "PlaygroundConfig", "PlaygroundMember",
    "PluginsConfig", "QuotasConfig", "RoomSettings", "Section", "WechatyConfig", "chat_settings",
    "intent_names",
]
