"""What the console's forms may change in config.yaml, and the YAML edits they make.

Every save goes through `ConfigWatcher.update`: the edit is applied to the round-trip document (comments
kept), the result is validated by the same models as a hand edit, and only a valid file is written.
So the form refuses exactly what the config refuses, with the validator's message. Secrets are never
among the fields: they have their own page (bot/config/secret_store.py). Labels come in Chinese and English.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from bot.config import AppConfig, ConfigError, QuotasConfig, load
from bot.console.words import QUOTA_LABELS, Text
from bot.ops.admin import _set_room
from generators.settings import SpeedSettings

ROOM_QUOTAS = tuple(QuotasConfig.model_fields)

@dataclass(frozen=True)
class SettingField:
    path: str  # dotted config key
    label: Text
    kind: str = "text"  # text | number | list | choice | yaml
    choices: tuple[str, ...] = ()
    hint: Text = ("", "")


def _speed_fields() -> list[SettingField]:
    """The speed preset when the config has one, else the two switches that matter most."""
    fields = SpeedSettings.model_fields
    if "preset" in fields:
        return [SettingField("video.speed.preset", ("视频加速档位", "video speed preset"),
                             "choice",
                             tuple(str(c) for c in get_args(fields["preset"].annotation)))]
    return [SettingField("video.speed.compile",
                         ("视频加速：编译（torch.compile）", "video speed: torch.compile"), "choice",
                         tuple(get_args(fields["compile"].annotation))),
            SettingField("video.speed.attention", ("视频加速：注意力算法", "video speed: attention kernel"),
                         "choice", tuple(get_args(fields["attention"].annotation)))]


SETTINGS: tuple[SettingField, ...] = (
    SettingField("llm.model", ("语言模型的名字", "LLM model"),
                 hint=("如 qwen-plus、gpt-4o-mini", "e.g. gpt-4o-mini")),
    SettingField("llm.base_url", ("语言模型的服务地址", "LLM base URL"),
                 hint=("空 = OpenAI 官方；「密钥」页或环境变量 OPENAI_BASE_URL 优先",
                       "empty = api.openai.com (the Keys page or env OPENAI_BASE_URL wins)")),
    SettingField("amap.default_city", ("默认城市", "AMap default city"),
                 hint=("问天气没说城市时用它", "used when a question names no city")),
    SettingField("video.model.path", ("视频模型文件夹", "video model folder"),
                 hint=("空 = 在下载缓存里找", "empty = look in the model caches")),
    SettingField("image.model.path", ("图片模型文件夹", "image model folder"),
                 hint=("空 = 在下载缓存里找", "empty = look in the model caches")),
    *_speed_fields(),
    *(SettingField(f"quotas.{key}", (f"额度：{QUOTA_LABELS[key][0]}", f"quota: {QUOTA_LABELS[key][1]}"),
                   "number",
                   hint=("空 = 默认；null = 不限", "empty = default; null = no limit"))
      for key in ROOM_QUOTAS),
    SettingField("bot.admins", ("管理员（微信号 id）", "admins (contact ids)"), "list",
                 hint=("一行一个", "one per line")),
    SettingField("schedules.timezone", ("定时任务的时区", "schedules time zone"),
                 hint=("如 Asia/Shanghai", "e.g. Asia/Shanghai")),
    SettingField("schedules.jobs", ("定时任务（YAML 列表）", "schedules (YAML list)"), "yaml"),
)
_BY_PATH = {field.path: field for field in SETTINGS}


def file_value(path: Path | None, running: AppConfig) -> Callable[[str], str | None]:
    """Each field's value as the config file has it (the running config may hold more: the playground's
    demo model, its lifted quotas), so saving the form never writes those into the file. Blocking."""
    config = running
    if path is not None:
        try:
            config = load(path)
        except ConfigError:
            config = running  # a broken file: the form shows what runs until it is fixed
    return lambda dotted: current_value(config, dotted)


def current_value(config: AppConfig, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    if isinstance(value, tuple) and value and hasattr(value[0], "model_dump"):
        return _yaml_text([item.model_dump(mode="json", exclude_defaults=True) for item in value])
    if isinstance(value, tuple):
        return "\n".join(str(v) for v in value)
    return None if value is None else str(value)


def _yaml_text(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


def coerce(kind: str, text: str | None) -> tuple[bool, Any]:
    """(remove the key, value) for what a form field holds; a value the config would refuse is passed on
    as typed so the validator's message names it."""
    text = (text or "").strip()
    if kind == "yaml":
        try:
            return False, YAML(typ="safe", pure=True).load(text) if text else []
        except YAMLError as exc:
            raise ConfigError(f"不是有效的 YAML：{exc}") from exc
    if kind == "list":
        return False, [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    if not text:
        return True, None
    if kind == "number":
        if text.lower() in ("null", "none", "~"):
            return False, None
        try:
            return False, int(text)
        except ValueError:
            return False, text
    return False, text


def _set_path(doc: CommentedMap, path: str, remove: bool, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, Mapping):
            if remove:
                return
            child = node[part] = CommentedMap()
        node = child
    if remove:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def settings_edit(values: Mapping[str, str | None]) -> Any:
    """The edit for a settings form; ConfigError for a key the form does not offer."""
    unknown = [path for path in values if path not in _BY_PATH]
    if unknown:
        raise ConfigError(f"这里不能改：{'、'.join(unknown)}")
    changes = {path: coerce(_BY_PATH[path].kind, text) for path, text in values.items()}

    def edit(doc: CommentedMap) -> None:
        for path, (remove, value) in changes.items():
            _set_path(doc, path, remove, value)

    return edit


@dataclass(frozen=True)
class RoomForm:
    """A room's row on the groups page."""

    room_id: str
    topic: str | None
    allowed: bool
    intents: tuple[str, ...] | None  # None = all on
    persona: str = ""
    quotas: Mapping[str, str] | None = None  # quota key -> text; "" = the global value


def room_edit(form: RoomForm, existing_key: str | None, all_intents: Sequence[str]) -> Any:
    """Switch the room on or off (as #允许本群 / #禁用本群 do) and write its `groups.rooms` entry; every
    intent this bot has switched on is written as "all" (no `intents:` list)."""
    key = existing_key or form.topic or form.room_id
    intents = None if form.intents is None or set(form.intents) >= set(all_intents) else list(form.intents)
    quotas = {name: coerce("number", text) for name, text in (form.quotas or {}).items()}
    unknown = [name for name in quotas if name not in ROOM_QUOTAS]
    if unknown:
        raise ConfigError(f"没有这个额度：{'、'.join(unknown)}")

    def edit(doc: CommentedMap) -> None:
        _set_room(doc, form.room_id, form.topic, allow=form.allowed)
        groups = doc["groups"]
        rooms = groups.get("rooms")
        if not isinstance(rooms, Mapping):
            rooms = groups["rooms"] = CommentedMap()
        entry = rooms.get(key)
        if not isinstance(entry, Mapping):
            entry = CommentedMap()
        _set_path(entry, "intents", intents is None, intents)
        _set_path(entry, "persona", not form.persona.strip(), form.persona.strip())
        room_quotas = entry.get("quotas")
        if not isinstance(room_quotas, Mapping):
            room_quotas = CommentedMap()
        for name, (remove, value) in quotas.items():
            _set_path(room_quotas, name, remove, value)
        _set_path(entry, "quotas", not room_quotas, room_quotas)
        if entry:
            rooms[key] = entry
        else:
            rooms.pop(key, None)
        if not rooms:
            groups.pop("rooms", None)

    return edit
