"""What the console's forms may change in config.yaml, and the YAML edits they make.

Every save goes through `ConfigWatcher.update`: the edit is applied to the round-trip document (comments
kept), the result is validated by the same models as a hand edit, and only a valid file is written.
So the form refuses exactly what the config refuses, with the validator's message. Secrets are never
among the fields: each is named with the environment variable that sets it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from bot.config import INTENT_NAMES, AppConfig, ConfigError, QuotasConfig
from bot.ops.admin import _set_room
from generators.settings import SpeedSettings

ROOM_QUOTAS = tuple(QuotasConfig.model_fields)

SECRETS = (  # (environment variable, what it is for); shown as set / not set, never as a value
    ("OPENAI_API_KEY", "the LLM's key"),
    ("OPENAI_BASE_URL", "another OpenAI-compatible LLM endpoint (overrides llm.base_url)"),
    ("AMAP_KEY", "高德 Web 服务 key: weather, routes, places"),
    ("WECHATY_PUPPET_SERVICE_TOKEN", "the WeChat gateway's token"),
    ("XIAOAI_ADMIN_PASSWORD", "this console's password"),
    ("XIAOAI_VIDEO_TOKEN", "shared secret with a serve-video host"),
    ("XIAOAI_IMAGE_API_KEY", "an images API key (else OPENAI_API_KEY)"),
    ("XIAOAI_ALERT_WEBHOOK_URL", "disconnect alerts webhook (overrides alerts.webhook_url)"),
    ("XIAOAI_SMTP_PASSWORD", "disconnect alerts by e-mail"),
)


@dataclass(frozen=True)
class SettingField:
    path: str  # dotted config key
    label: str
    kind: str = "text"  # text | number | list | choice | yaml
    choices: tuple[str, ...] = ()
    hint: str = ""


def _speed_fields() -> list[SettingField]:
    """The speed preset when the config has one, else the two switches that matter most."""
    fields = SpeedSettings.model_fields
    if "preset" in fields:
        return [SettingField("video.speed.preset", "video speed preset", "choice",
                             tuple(str(c) for c in get_args(fields["preset"].annotation)))]
    return [SettingField("video.speed.compile", "video speed: torch.compile", "choice",
                         tuple(get_args(fields["compile"].annotation))),
            SettingField("video.speed.attention", "video speed: attention kernel", "choice",
                         tuple(get_args(fields["attention"].annotation)))]


SETTINGS: tuple[SettingField, ...] = (
    SettingField("llm.model", "LLM model"),
    SettingField("llm.base_url", "LLM base URL", hint="empty = api.openai.com (env OPENAI_BASE_URL wins)"),
    SettingField("amap.default_city", "AMap default city", hint="used when a question names no city"),
    SettingField("video.model.path", "video model folder", hint="empty = look in the model caches"),
    SettingField("image.model.path", "image model folder", hint="empty = look in the model caches"),
    *_speed_fields(),
    *(SettingField(f"quotas.{key}", f"quota: {key}", "number", hint="empty = default; null = no limit")
      for key in ROOM_QUOTAS),
    SettingField("bot.admins", "admins (contact ids)", "list", hint="one per line"),
    SettingField("schedules.timezone", "schedules time zone"),
    SettingField("schedules.jobs", "schedules (YAML list)", "yaml"),
)
_BY_PATH = {field.path: field for field in SETTINGS}


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
            raise ConfigError(f"not valid YAML: {exc}") from exc
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
        raise ConfigError(f"not editable here: {', '.join(unknown)}")
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


def room_edit(form: RoomForm, existing_key: str | None) -> Any:
    """Switch the room on or off (as #允许本群 / #禁用本群 do) and write its `groups.rooms` entry."""
    key = existing_key or form.topic or form.room_id
    intents = None if form.intents is None or set(form.intents) >= set(INTENT_NAMES) else list(form.intents)
    quotas = {name: coerce("number", text) for name, text in (form.quotas or {}).items()}
    unknown = [name for name in quotas if name not in ROOM_QUOTAS]
    if unknown:
        raise ConfigError(f"unknown quota {', '.join(unknown)}")

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
