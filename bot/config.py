"""Typed configuration: one pydantic section per concern, loaded from config.yaml.

Secrets never live here; they come from the environment (see `Secrets`). A bad file is reported with
the exact key path, the line in the file and the reason, so an admin's typo never takes the bot down
silently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

if TYPE_CHECKING:
    from bot.channels.base import ChatRef


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


INTENT_NAMES = ("weather", "walk", "cycle", "drive", "transit", "places", "image", "video", "chat")
"""Intent module names accepted in a room's `intents:` list (a test checks it against `intents.Intent`)."""


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
    def _known_intents(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [name for name in value or () if name not in INTENT_NAMES]
        if unknown:
            raise ValueError(f"unknown intent {', '.join(unknown)}; use any of {', '.join(INTENT_NAMES)}")
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


class VideoConfig(Section):
    """CogVideoX video generation (issue 3). Generator keys first; queue/backend keys are added below them."""

    # where the weights are: a diffusers folder, or (when null) ZhipuAI/CogVideoX-2b|-5b in the
    # modelscope cache, then the Hugging Face cache. Nothing is ever downloaded at run time.
    model_path: Path | None = None
    variant: Literal["2b", "5b"] = "2b"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    memory_mode: Literal["auto", "gpu", "model_cpu_offload", "group_offload", "sequential_cpu_offload",
                         "cpu"] = "auto"
    vae_tiling: bool = True
    vae_slicing: bool = False
    quantization: Literal["none", "int8_weight_only", "fp8_dynamic"] = "none"
    load_at_start: bool = False
    num_frames: int = Field(default=49, ge=1)
    steps: int = Field(default=50, ge=1, le=200)
    guidance: float = Field(default=6.0, ge=0, le=30)
    fps: int = Field(default=8, ge=1, le=60)
    height: int = Field(default=480, ge=16)
    width: int = Field(default=720, ge=16)
    max_steps: int = Field(default=100, ge=1, le=1000)
    bitrate_kbps: int = Field(default=2000, ge=100)
    max_mp4_mb: float = Field(default=3.0, gt=0.1)
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = (
        "veryfast")
    # speed switches (issue 8; measured in BENCHMARKS.md, all off = the plain path)
    compile: Literal["off", "blocks"] = "off"  # blocks: regional torch.compile of the transformer blocks
    compile_cache_dir: Path | None = None  # where compiled kernels are kept for the next start
    fuse_qkv: bool = False  # one fused Q/K/V projection per attention layer
    attention: Literal["default", "flash", "cudnn", "efficient", "sage", "fa3", "fa3_fp8"] = (
        "default")  # attention kernel; fa3 = FlashAttention-3 (Hopper, pip install '.[hopper]')
    step_cache: float = Field(default=0.0, ge=0, le=1)  # first-block cache threshold, 0 = off; changes output
    vae_tile_size: tuple[int, int] | None = None  # [height, width] of a VAE decode tile; null = 240x360
    # presets and the step cache: one word for the speed switches, then diffusers' cache hooks
    preset: Literal["exact", "default", "fast"] = "default"  # exact = the plain path; README "Faster"
    cache: Literal["none", "fastercache", "pab"] = "none"  # diffusers' cache hooks; changes the output
    cache_block_skip: int = Field(default=2, ge=1, le=10)  # attention recomputed every Nth step
    cache_timesteps: tuple[int, int] | None = None  # null: fastercache (-1, 681), pab (100, 800)
    cache_attention_weight: float = Field(default=0.3, ge=0, le=1)  # fastercache: weight of the old output
    cache_uncond_skip: int = Field(default=5, ge=1, le=50)  # fastercache: uncond branch every Nth step
    cache_uncond_timesteps: tuple[int, int] = (-1, 781)  # fastercache: window for skipping the uncond branch
    vae_compile: bool = False  # torch.compile the VAE decoder (GPU): faster decode, a longer first video
    # job path (issue 3, queue + backend): where renders run, how many may wait, how long files stay
    backend: Literal["local", "remote"] = "local"  # local: in this process; remote: `xiaoai serve-video`
    remote_url: str | None = None  # e.g. http://gpu-box:8000 (token from env XIAOAI_VIDEO_TOKEN)
    remote_timeout_s: float = Field(default=1800, gt=0)  # give up on one remote render after this
    remote_poll_s: float = Field(default=2.0, gt=0)  # how often the remote job's progress is read
    max_pending_per_user: int | None = Field(default=2, ge=1)  # queued+running per person; null = any
    seconds_per_job: float = Field(default=120, gt=0)  # ETA per job until real durations are measured
    media_max_age_hours: float = Field(default=72, gt=0)  # finished MP4s are deleted after this
    show_prompt: bool = True  # show the English prompt in the ack and with the video

    @model_validator(mode="after")
    def _remote_needs_url(self) -> VideoConfig:
        if self.backend == "remote" and not self.remote_url:
            raise ValueError("video.backend remote needs video.remote_url (the serve-video address)")
        return self

    @field_validator("model_path", "compile_cache_dir")
    @classmethod
    def _expand_model_path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("cache_timesteps", "cache_uncond_timesteps")
    @classmethod
    def _window_ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # the first step (t = 999) must stay outside: the hooks have nothing cached to reuse yet
        if value is not None and not -1 <= value[0] < value[1] <= 999:
            raise ValueError("a cache timestep window is [low, high] with -1 <= low < high <= 999, "
                             "e.g. [-1, 681]")
        return value

    @field_validator("vae_tile_size")
    @classmethod
    def _tile_fits(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        # diffusers' tile overlap (1/6 of the height, 1/5 of the width) only adds up for these sizes;
        # others return frames of the wrong height (seen: 160x240 tiles -> 498-pixel frames)
        if value is not None and (value[0] < 48 or value[0] % 48 or value[1] < 40 or value[1] % 40):
            raise ValueError("video.vae_tile_size must be [height, width] with height a multiple of 48 and "
                             "width a multiple of 40, e.g. [144, 240] or [240, 360]")
        return value


class ImageConfig(Section):
    """Image generation (issue 5): FLUX in this process, or an OpenAI-compatible images API."""

    backend: Literal["local", "api"] = "local"  # local: FLUX in this process (GPU); api: images endpoint
    # where the FLUX weights are: a diffusers folder, or (when null) black-forest-labs/FLUX.1-schnell|-dev
    # in the modelscope cache, then the Hugging Face cache. Nothing is ever downloaded at run time.
    model_path: Path | None = None
    variant: Literal["schnell", "dev"] = "schnell"  # which one to look for first in the caches
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    memory_mode: Literal["auto", "gpu", "model_cpu_offload", "sequential_cpu_offload", "cpu"] = "auto"
    vae_tiling: bool = False
    vae_slicing: bool = False
    quantization: Literal["none", "int8_weight_only", "fp8_dynamic"] = "none"
    load_at_start: bool = False
    steps: int | None = Field(default=None, ge=1, le=200)  # null: the model's default (schnell 4, dev 28)
    guidance: float | None = Field(default=None, ge=0, le=30)  # null: schnell 0, dev 3.5
    height: int = Field(default=576, ge=16)
    width: int = Field(default=1024, ge=16)
    max_steps: int = Field(default=60, ge=1, le=1000)
    format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(default=92, ge=50, le=100)
    # api backend: key from env XIAOAI_IMAGE_API_KEY, else OPENAI_API_KEY
    api_base_url: str | None = None  # null: OPENAI_BASE_URL from the environment, else OpenAI itself
    api_model: str = "gpt-image-1"
    api_size: str | None = None  # e.g. "1024x1024"; null: the endpoint's default size
    api_response_format: Literal["b64_json", "url"] | None = None  # null: don't ask (gpt-image-1)
    api_timeout_s: float = Field(default=120, gt=0)
    api_retries: int = Field(default=1, ge=0, le=5)
    # queue (shared with video: one GPU runs one job at a time)
    max_pending_per_user: int | None = Field(default=3, ge=1)
    seconds_per_job: float = Field(default=20, gt=0)  # ETA per image until real durations are measured
    media_max_age_hours: float = Field(default=72, gt=0)
    show_prompt: bool = True  # show the English prompt with the picture

    @field_validator("model_path")
    @classmethod
    def _expand_model_path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("api_size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not re.fullmatch(r"\d{2,5}x\d{2,5}", value):
            raise ValueError(f"api_size must look like 1024x1024 (or auto), got {value!r}")
        return value


class AmapConfig(Section):
    """高德 Web Service API (issue 4): weather, routes, places. The key comes from env AMAP_KEY."""

    base_url: str = "https://restapi.amap.com"
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=5)
    default_city: str | None = None
    places_radius_m: int = Field(default=3000, ge=100, le=50000)
    places_limit: int = Field(default=5, ge=1, le=10)
    route_steps: int = Field(default=5, ge=1, le=20)
    pending_minutes: float = Field(default=10, gt=0)
    timezone: str = "Asia/Shanghai"
    polish: bool = False


class EmbeddedClassifierConfig(Section):
    """The on-CPU intent classifier (issue 7): nearest neighbours over prompts/intent_examples.yaml."""

    enabled: bool = True
    neighbours: int = Field(default=3, ge=1, le=10)
    chat_margin: float = Field(default=0.003, ge=0, le=1)
    min_similarity: float = Field(default=0.80, ge=0, le=1)


class PlaygroundMember(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=16)


class PlaygroundConfig(Section):
    """The local web page that looks like a WeChat group (issue 7); only ever on a loopback address."""

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
            raise ValueError("the playground has no login: it only listens on 127.0.0.1 / localhost / ::1")
        return value

    @field_validator("members")
    @classmethod
    def _some_members(cls, value: tuple[PlaygroundMember, ...]) -> tuple[PlaygroundMember, ...]:
        if not value:
            raise ValueError("at least one member is needed to type as")
        if len({m.id for m in value}) != len(value):
            raise ValueError("member ids must be unique")
        return value


class OfflineConfig(Section):
    """Working with no LLM key and no WeChat account (issue 7)."""

    classifier: EmbeddedClassifierConfig = EmbeddedClassifierConfig()
    playground: PlaygroundConfig = PlaygroundConfig()


_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAYS = re.compile(r"^(\*|(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?"
                   r"(,(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)*)$")


class ScheduleEntry(Section):
    """One daily job (issue 6): a weather push, a fixed text, or the nightly cleanup."""

    name: str = Field(pattern=r"^[\w-]{1,40}$")
    kind: Literal["weather", "text", "cleanup"]
    at: str  # "HH:MM" in schedules.timezone
    days: str = "*"  # "*", or days like "mon-fri" / "sat,sun"
    room: str | None = None  # room id or topic (weather, text)
    city: str | None = None  # weather
    text: str | None = None  # text
    keep_days: float = Field(default=7, gt=0)  # cleanup: delete media and history older than this
    paths: tuple[str, ...] = ("media",)  # cleanup: folders under data_dir whose old files are deleted

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f"time must be HH:MM (24 h), got {value!r}")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        value = value.strip().lower()
        week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        ranges = [part.split("-") for part in value.split(",") if "-" in part]
        if not _DAYS.match(value) or any(week.index(a) > week.index(b) for a, b in ranges):
            # a range that wraps the week (fri-mon) is what the scheduler cannot take: write fri-sun,mon
            raise ValueError(f"days must be '*' or like 'mon-fri' / 'sat,sun' (ranges run mon..sun, so "
                             f"'fri-sun,mon' rather than 'fri-mon'), got {value!r}")
        return value

    @field_validator("paths")
    @classmethod
    def _inside_data_dir(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if Path(path).is_absolute() or ".." in Path(path).parts:
                raise ValueError(f"cleanup paths are folders inside data_dir, got {path!r}")
        return value

    @model_validator(mode="after")
    def _needs(self) -> ScheduleEntry:
        needed = {"weather": ("room", "city"), "text": ("room", "text"), "cleanup": ()}[self.kind]
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} schedule needs {' and '.join(missing)}")
        return self

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.at.split(":")
        return int(hour), int(minute)


class SchedulesConfig(Section):
    timezone: str = "Asia/Shanghai"  # for schedules and for the daily quotas' midnight
    misfire_grace_s: int = Field(default=900, ge=1)
    jobs: tuple[ScheduleEntry, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Shanghai)") from exc
        return value

    @field_validator("jobs")
    @classmethod
    def _unique(cls, value: tuple[ScheduleEntry, ...]) -> tuple[ScheduleEntry, ...]:
        names = [job.name for job in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"schedule names must be unique: {', '.join(duplicates)}")
        return value


class SmtpConfig(Section):
    host: str
    port: int = Field(default=465, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str | None = None  # the password comes from env XIAOAI_SMTP_PASSWORD
    from_addr: str
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(default=10, gt=0)


class AlertsConfig(Section):
    """Telling the admins the bot went deaf, by a route that does not need WeChat (issue 6)."""

    disconnect_after_s: float = Field(default=60, gt=0)
    check_interval_s: float = Field(default=2, gt=0)
    webhook_url: str | None = None  # env XIAOAI_ALERT_WEBHOOK_URL overrides (URLs often hold a key)
    webhook_json: dict[str, Any] = Field(default_factory=lambda: {"text": "$message"})
    webhook_timeout_s: float = Field(default=10, gt=0)
    smtp: SmtpConfig | None = None


class AppConfig(Section):
    bot: BotConfig = BotConfig()
    groups: GroupsConfig = GroupsConfig()
    llm: LLMConfig = LLMConfig()
    chat: ChatConfig = ChatConfig()
    history: HistoryConfig = HistoryConfig()
    wechaty: WechatyConfig = WechatyConfig()
    data_dir: Path = Path("data")
    # feature sections (one per feature issue) are added below this line
    image: ImageConfig = ImageConfig()  # issue 5
    quotas: QuotasConfig = QuotasConfig()  # issue 6
    schedules: SchedulesConfig = SchedulesConfig()  # issue 6
    alerts: AlertsConfig = AlertsConfig()  # issue 6
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
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
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
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse(text, str(path))

