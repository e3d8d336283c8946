"""Rate limits and daily quotas, per user (in one chat) and per group; admins are exempt.

The router checks the message rate before anything costly (the LLM). Image and video handlers call
`app.quotas.check_and_count(kind, msg)` right before queueing a job (it raises `UserInputError` with the
reply to show) and `app.quotas.refund(kind, msg)` when the job was then not accepted after all.
Limits come from `quotas` with the room's `groups.rooms.<room>.quotas` on top (null = no limit).
Message rates live in memory (a minute's window). Image and video counts are also kept in
`data_dir/quotas.json` (written atomically on each change), so a restart does not hand out a new day.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from loguru import logger

from bot.config import ChatSettings
from bot.messages import IncomingMessage
from intents.base import UserInputError

if TYPE_CHECKING:
    from bot.app import Application

MediaKind = Literal["image", "video"]
LABELS: dict[str, str] = {"image": "图片", "video": "视频"}
WINDOW_S = 60.0

USER_RATE_REPLY = "你发得有点快啦，我一分钟最多回你 {limit} 条，歇一会儿再@我吧～"
GROUP_RATE_REPLY = "大家问得太快啦，本群一分钟最多 {limit} 条，我缓一缓，稍后再@我吧～"
USER_DAILY_REPLY = "你今天的{label}额度（{limit} 个）用完啦，明天再来吧～"
GROUP_DAILY_REPLY = "本群今天的{label}额度（{limit} 个）用完啦，明天再来吧～"
NOT_OFFERED_REPLY = "这里暂时不提供{label}生成哦～"


class Quotas:
    def __init__(self, app: Application, *, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self._clock = clock
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # key -> message times in the window
        self._told: set[str] = set()  # keys already told "too fast"; quiet until one passes again
        self._day: dt.date | None = None
        self._daily: dict[tuple[str, str], int] = defaultdict(int)  # (kind, key) -> count today
        self._loaded = False  # today's counts read back from the file (once, on first use)

    def _exempt(self, msg: IncomingMessage) -> bool:
        return msg.sender_id in self.app.config.bot.admins

    # -- messages a minute ------------------------------------------------------------------------
    def check_message(self, msg: IncomingMessage, settings: ChatSettings) -> str | None:
        """None: go ahead (and counted). Else the reply to give; "" = stay quiet (already told)."""
        if self._exempt(msg):
            return None
        now = self._clock()
        limits = settings.quotas
        checks = [(f"user:{msg.chat.key}:{msg.sender_id}", limits.user_messages_per_minute, USER_RATE_REPLY)]
        if msg.chat.is_room:
            checks.append((f"group:{msg.chat.key}", limits.group_messages_per_minute, GROUP_RATE_REPLY))
        for key, limit, reply in checks:
            if limit is None:
                continue
            if limit == 0:  # "not offered": the admin switched the bot off here, deliberately silent
                return ""
            window = self._recent[key]
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            if len(window) >= limit:
                if key in self._told:
                    return ""
                self._told.add(key)
                return reply.format(limit=limit)
        for key, limit, _reply in checks:
            if limit is not None:
                self._recent[key].append(now)
                self._told.discard(key)
        return None

    # -- images and videos a day ------------------------------------------------------------------
    @property
    def _path(self) -> Path:
        return self.app.config.data_dir / "quotas.json"

    def _today(self) -> dt.date:
        zone = ZoneInfo(self.app.config.schedules.timezone)
        today = dt.datetime.fromtimestamp(self._clock(), zone).date()
        if not self._loaded:
            self._loaded = True
            self._read(today)
        if today != self._day:
            self._day = today
            self._daily.clear()
        return today

    def _read(self, today: dt.date) -> None:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            if data.get("day") == today.isoformat():
                for entry in data.get("counts", []):
                    self._daily[(str(entry["kind"]), str(entry["key"]))] = int(entry["count"])
                self._day = today
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("quotas: ignoring unreadable {}: {}", self._path, exc)

    def _write(self) -> None:
        """Keep today's counts across restarts; a failed write only costs that (logged)."""
        data = {"day": self._day.isoformat() if self._day else None,
                "counts": [{"kind": k, "key": key, "count": n} for (k, key), n in self._daily.items() if n]}
        path = self._path
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("quotas: could not save today's counts to {}: {}", path, exc.strerror)

    def _keys(self, msg: IncomingMessage) -> tuple[str, str | None]:
        user = f"user:{msg.chat.key}:{msg.sender_id}"
        return user, (f"group:{msg.chat.key}" if msg.chat.is_room else None)

    def check_and_count(self, kind: MediaKind, msg: IncomingMessage) -> None:
        """Count one `kind` for the asker and their group, or raise UserInputError with the reply."""
        if kind not in LABELS:
            raise ValueError(f"unknown quota kind {kind!r}; use one of {', '.join(LABELS)}")
        if self._exempt(msg):
            return
        self._today()
        limits = self.app.config.for_chat(msg.chat, msg.room_topic).quotas
        label = LABELS[kind]
        user_key, group_key = self._keys(msg)
        checks = [(user_key, getattr(limits, f"user_{kind}s_per_day"), USER_DAILY_REPLY)]
        if group_key is not None:
            checks.append((group_key, getattr(limits, f"group_{kind}s_per_day"), GROUP_DAILY_REPLY))
        for key, limit, reply in checks:
            if limit == 0:
                raise UserInputError(NOT_OFFERED_REPLY.format(label=label))
            if limit is not None and self._daily[(kind, key)] >= limit:
                raise UserInputError(reply.format(label=label, limit=limit))
        for key, _limit, _reply in checks:
            self._daily[(kind, key)] += 1
        self._write()

    def refund(self, kind: MediaKind, msg: IncomingMessage) -> None:
        """Give back one count (the job was refused or was a duplicate of one already counted)."""
        if self._exempt(msg):
            return
        self._today()
        for key in self._keys(msg):
            if key is not None and self._daily.get((kind, key), 0) > 0:
                self._daily[(kind, key)] -= 1
        self._write()

    def used_today(self, kind: MediaKind, msg: IncomingMessage) -> tuple[int, int]:
        """(the asker's count, the group's count) of `kind` today."""
        self._today()
        user_key, group_key = self._keys(msg)
        return self._daily.get((kind, user_key), 0), self._daily.get((kind, group_key), 0) if group_key else 0
