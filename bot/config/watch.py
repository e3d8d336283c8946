"""Watches config.yaml and swaps in each valid edit within a second or two; writes the bot's own edits.

An edit that does not validate never replaces the running config: the reason (key, line, why) is logged
and sent to the admins in a private message, once per distinct error. What the bot writes itself
(#允许本群) goes through ruamel.yaml's round-trip mode, so the admin's comments and key order survive,
and lands atomically (temp file + os.replace), so a crash never leaves half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from watchfiles import awatch

from bot.config import AppConfig, ConfigError, parse, remember_good
from bot.config.wording import syntax_problem
from bot.config.yaml_guard import YamlBudgetExceeded, guarded
from bot.ops.notices import AdminNotices


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old file or the new one, never a mix."""
    target = path.resolve()  # a symlinked config keeps its link; the file it points to is replaced
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_KEY_LINE = re.compile(r"^( *)[^\s#-][^:#]*:(\s|$)")
_DASH_LINE = re.compile(r"^( *)- ")


def _guess_indents(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indents as ruamel.yaml names them, read from the admin's own file."""
    mapping, sequence, offset = 0, 0, 0
    parent: int | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        dash = _DASH_LINE.match(line)
        if dash and parent is not None and not sequence:
            offset = len(dash.group(1)) - parent
            sequence = offset + 2
        key = _KEY_LINE.match(line)
        if key:
            width = len(key.group(1))
            if width and not mapping:
                mapping = width
            parent = width if line.split(" #", 1)[0].rstrip().endswith(":") else None
    mapping = mapping or 2
    return mapping, sequence or mapping + 2, offset if sequence else 2


def _represent_none(representer: Any, _data: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")  # not an empty value


def edit_yaml_text(text: str, edit: Callable[[CommentedMap], Any]) -> str:
    """Round-trip `text` through ruamel.yaml with `edit` applied: comments, order, quotes, indents kept."""
    yaml = guarded(YAML(typ="rt"))
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold an admin's long line (a persona) into several
    yaml.representer.add_representer(type(None), _represent_none)
    try:
        data = yaml.load(text)
    except YamlBudgetExceeded as exc:
        raise ConfigError(f"config.yaml：{exc}") from exc
    except YAMLError as exc:
        raise ConfigError(syntax_problem(exc, "config.yaml", text)) from exc
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError("config.yaml：最外面一层应该是一节一节的设置（如「bot:」「llm:」）")
    edit(data)
    mapping, sequence, offset = _guess_indents(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


class ConfigWatcher:
    """A Service: watches `path` (its folder, so editors that save by rename are seen too).

    With no file (`path` None: the embedded defaults) it watches nothing and refuses edits."""

    def __init__(self, path: Path | None, *, apply: Callable[[AppConfig], Any], notices: AdminNotices,
                 connected: Callable[[], bool], debounce_ms: int = 300, poll_s: float = 1.0,
                 force_polling: bool | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._apply_config = apply
        self._notices = notices
        self._connected = connected
        self._debounce_ms = debounce_ms
        self._poll_ms = int(poll_s * 1000)
        self._force_polling = force_polling
        self._last_text: str | None = None  # the file text last applied or rejected
        self._last_error: str | None = None
        self._lock = asyncio.Lock()  # one reload or write at a time
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.reloads = 0  # applied reloads, for #状态 and tests
        self.pending_notice: str | None = None  # a start on the last good copy: told once connected
        self._notice_task: asyncio.Task | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            self._last_text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="config-watch")
        if self.pending_notice:
            self._last_error = self.pending_notice
            self._notice_task = asyncio.create_task(self._notice_when_connected(self.pending_notice))

    async def stop(self) -> None:
        self._stop.set()
        if self._notice_task is not None:
            self._notice_task.cancel()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 3)
            self._task = None

    async def _watch(self) -> None:
        assert self.path is not None
        name = self.path.name

        def ours(_change: Any, changed: str) -> bool:
            return os.path.basename(changed) == name

        while not self._stop.is_set():
            try:
                # rust_timeout + yield_on_timeout: a cheap re-read every poll_s as well, for file systems
                # (network mounts, some containers) whose change events never arrive.
                async for _changes in awatch(
                    self.path.parent, watch_filter=ours, debounce=self._debounce_ms, step=50,
                    stop_event=self._stop, rust_timeout=self._poll_ms, yield_on_timeout=True,
                    recursive=False, force_polling=self._force_polling,
                ):
                    await self.reload()
            except Exception:  # noqa: BLE001 - the watcher must outlive a vanished folder and retry
                logger.exception("config watch failed; retrying in 2 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 2)

    # -- reading ----------------------------------------------------------------------------------
    async def reload(self, *, force: bool = False, notify: bool = True) -> tuple[bool, str]:
        """Read, validate and apply the file if it changed (or `force`). Returns (applied, message)."""
        if self.path is None:
            return False, "没有配置文件（用的是内置默认设置）"
        async with self._lock:
            try:
                text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
            except FileNotFoundError:
                return False, f"{self.path} 不存在"  # mid-save by rename: the next event brings it back
            except OSError as exc:
                return False, f"读不了 {self.path}：{exc.strerror}"
            if text == self._last_text and not force:
                return False, "配置没有变化"
            self._last_text = text
            try:
                config = parse(text, str(self.path))
            except ConfigError as exc:
                reason = str(exc)
                logger.error("config reload rejected, the running config stays: {}", reason)
                if notify and reason != self._last_error:
                    await self._tell_admins(reason)
                self._last_error = reason
                return False, reason
            self._last_error = None
            self._apply(config)
            await asyncio.to_thread(remember_good, self.path, text)
            return True, "配置已重新加载"

    def _apply(self, config: AppConfig) -> None:
        self._apply_config(config)
        self.reloads += 1
        logger.info("config reloaded from {}", self.path)

    async def _notice_when_connected(self, reason: str) -> None:
        """Admins are reached through the channel: wait (polling, as the channel has no event) for it."""
        while not self._connected():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1)
            if self._stop.is_set():
                return
        await self._tell_admins(reason)

    async def _tell_admins(self, reason: str) -> None:
        # the running config's admins: the new one is unusable
        await self._notices.tell(f"⚠️ 配置文件有错误，我继续用原来的设置。请改正：\n{reason}")

    # -- writing ----------------------------------------------------------------------------------
    async def update(self, edit: Callable[[CommentedMap], Any]) -> AppConfig:
        """Apply `edit` to the file's YAML document, validate, write atomically and apply it now.

        Raises ConfigError (nothing written) when the file on disk is broken or the result would be.
        """
        if self.path is None:
            raise ConfigError("没有配置文件（用的是内置默认设置），没法写回")
        async with self._lock:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
            new_text = edit_yaml_text(text, edit)
            config = parse(new_text, str(self.path))  # never write a file the bot could not read back
            await asyncio.to_thread(write_atomically, self.path, new_text)
            await asyncio.to_thread(remember_good, self.path, new_text)
            self._last_text = new_text  # the watcher will see our own write: nothing new to apply
            self._last_error = None
            self._apply(config)
            return config
