"""Keys, passwords and endpoints that never go into config.yaml: the environment's value, else the one an
admin typed into the console, kept in `<data_dir>/secrets.json` (mode 0600).

The environment always wins (a deployment that sets OPENAI_API_KEY keeps it; the console says so). Every
read goes to the file again when it changed on disk, so a key saved in the console is used by the next
message, and `xiaoai doctor` in another process sees it too. Every value read or written is added to the
log's redaction, so it is masked wherever it would be shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

FILE_NAME = "secrets.json"
FILE_MODE = 0o600


@dataclass(frozen=True)
class SecretSetting:
    """One value the console may set: its environment name and what it is for (Chinese, English)."""

    name: str
    provider: str  # llm | amap | image | zhipu | dashscope | alerts: which "测试一下" button checks it
    zh: str
    en: str
    is_url: bool = False  # shown in full (an endpoint), not masked to its last 4 characters


SETTABLE: tuple[SecretSetting, ...] = (
    SecretSetting("OPENAI_API_KEY", "llm", "语言模型的密钥（API key）", "the LLM's API key"),
    SecretSetting("OPENAI_BASE_URL", "llm", "语言模型的服务地址（留空 = OpenAI 官方；本机 Ollama 填 "
                  "http://localhost:11434/v1）", "the LLM's endpoint (empty = api.openai.com)", is_url=True),
    SecretSetting("AMAP_KEY", "amap", "高德地图「Web服务」密钥：天气、路线、地点", "AMap Web Service key: "
                  "weather, routes, places"),
    SecretSetting("XIAOAI_IMAGE_API_KEY", "image", "画图服务的密钥（不填就用语言模型的密钥）",
                  "the images API key (else the LLM's key)"),
    SecretSetting("ZHIPUAI_API_KEY", "zhipu", "智谱视频服务的密钥", "ZhipuAI video API key"),
    SecretSetting("DASHSCOPE_API_KEY", "dashscope", "阿里云百炼（通义万相）视频服务的密钥",
                  "DashScope (Wan) video API key"),
    SecretSetting("XIAOAI_ALERT_WEBHOOK_URL", "alerts", "掉线提醒的 Webhook 地址",
                  "disconnect alerts webhook"),
    SecretSetting("XIAOAI_SMTP_PASSWORD", "alerts", "掉线提醒邮件的 SMTP 密码",
                  "disconnect alerts: SMTP password"),
)
SETTABLE_NAMES = frozenset(s.name for s in SETTABLE)
NOT_SECRET = frozenset({"OPENAI_BASE_URL", "WECHATY_PUPPET_SERVICE_ENDPOINT"})  # addresses: shown, not masked
_AT_START = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WECHATY_PUPPET_SERVICE_ENDPOINT",
             "WECHATY_PUPPET_SERVICE_TOKEN", "XIAOAI_ADMIN_PASSWORD")  # Secrets' constructor, in order


def _redact_too(values: Mapping[str, str | None]) -> None:
    """Mask these values wherever the log (and so the console) would show them; addresses stay readable."""
    from bot.logs import redactor

    redactor().add(*(value for name, value in values.items() if name not in NOT_SECRET))


class SecretFile:
    """`<data_dir>/secrets.json`: {name: value}, written atomically with mode 0600, re-read when it
    changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._values: dict[str, str] = {}

    def values(self) -> dict[str, str]:
        try:
            stat = self.path.stat()
        except OSError:
            self._seen, self._values = None, {}
            return {}
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                logger.warning("secrets file {} is unreadable ({}); using the environment only", self.path,
                               type(exc).__name__)
                data = {}
            data = data if isinstance(data, dict) else {}
            self._values = {k: v for k, v in data.items() if k in SETTABLE_NAMES and isinstance(v, str) and v}
            self._seen = (stat.st_mtime_ns, stat.st_size)
            _redact_too(self._values)
        return self._values

    def set(self, name: str, value: str | None) -> None:
        """Store `value` for `name` (None or blank removes it)."""
        if name not in SETTABLE_NAMES:
            raise KeyError(name)
        values = dict(self.values())
        value = (value or "").strip()
        if value:
            values[name] = value
            _redact_too({name: value})
        else:
            values.pop(name, None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, FILE_MODE)  # never readable by others, not even for a moment
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(values, handle, ensure_ascii=False, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._seen, self._values = None, {}


class Secrets:
    """Values that never come from config.yaml: the environment's, else the console's secrets file once
    `use_file` names it. The five values the bot reads at start (LLM key and endpoint, gateway, console
    password) are taken once from the environment given; the others are looked up in `os.environ` at
    each use, as before there was a file."""

    def __init__(self, openai_api_key: str | None = None, openai_base_url: str | None = None,
                 puppet_endpoint: str | None = None, puppet_token: str | None = None,
                 admin_password: str | None = None) -> None:
        given = {"OPENAI_API_KEY": openai_api_key, "OPENAI_BASE_URL": openai_base_url,
                 "WECHATY_PUPPET_SERVICE_ENDPOINT": puppet_endpoint,
                 "WECHATY_PUPPET_SERVICE_TOKEN": puppet_token, "XIAOAI_ADMIN_PASSWORD": admin_password}
        self._given = {name: value or None for name, value in given.items()}
        self.file: SecretFile | None = None
        self._listeners: list[Callable[[], None]] = []
        _redact_too(given)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        return cls(*(env.get(name) or None for name in _AT_START))

    def use_file(self, path: Path) -> Secrets:
        """Read (and let the console write) `path` for what the environment does not set."""
        self.file = SecretFile(path)
        self.file.values()
        return self

    def get(self, name: str, default: str | None = None) -> str | None:
        """The environment's value, else the file's, else `default`."""
        from_env = self._given.get(name) if name in self._given else os.environ.get(name)
        if from_env:
            return from_env
        if self.file is not None:
            return self.file.values().get(name, default)
        return default

    def key(self, name: str) -> str | None:
        """`get(name)` without surrounding blanks; None when unset or blank (what a client sends)."""
        return (self.get(name) or "").strip() or None

    def from_environment(self, name: str) -> bool:
        """Set by the environment (the console cannot change it, and says so)."""
        return bool(self._given.get(name) if name in self._given else os.environ.get(name))

    def set(self, name: str, value: str | None) -> None:
        """Save what the admin typed (None/blank clears it); refused for a name the environment sets."""
        if self.file is None:
            raise RuntimeError("no secrets file: the console was started without a data_dir")
        if self.from_environment(name):
            raise PermissionError(name)
        self.file.set(name, value)
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after the console saves or clears a key. Readers on the message path keep their
        own copy and refresh it here, instead of asking the store on every message."""
        self._listeners.append(listener)

    @property
    def openai_api_key(self) -> str | None:
        return self.get("OPENAI_API_KEY")

    @property
    def openai_base_url(self) -> str | None:
        return self.get("OPENAI_BASE_URL")

    @property
    def puppet_endpoint(self) -> str | None:
        return self.get("WECHATY_PUPPET_SERVICE_ENDPOINT")

    @property
    def puppet_token(self) -> str | None:
        return self.get("WECHATY_PUPPET_SERVICE_TOKEN")

    @property
    def admin_password(self) -> str | None:
        return self.get("XIAOAI_ADMIN_PASSWORD")

    def video_api_keys(self) -> dict[str, str | None]:
        """{provider: key} for the hosted video APIs: ZHIPUAI_API_KEY / DASHSCOPE_API_KEY (the environment,
        else the console's file), read at each use so a key saved in the console counts at once."""
        return {"zhipu": self.get("ZHIPUAI_API_KEY"), "dashscope": self.get("DASHSCOPE_API_KEY")}


def shown(value: str | None, *, is_url: bool = False) -> str:
    """What the console shows of a secret: never the value, only that it is set and its last 4 characters."""
    if not value:
        return ""
    if is_url:
        return value
    return f"已设置（…{value[-4:]}）" if len(value) >= 12 else "已设置"
