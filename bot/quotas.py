"""Message rate limits, per user (in one chat) and per group; admins are exempt.

The router checks the message rate before anything costly (the LLM). Limits come from `quotas` with the
room's `groups.rooms.<room>.quotas` on top (null = no limit, 0 = the bot stays silent there). Rates live
in memory (a minute's window). The daily picture and video quotas are admission rules of the job queue
(`bot.jobs.limits_for`), counted in its store when a job is accepted.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.config import ChatSettings
from bot.messages import IncomingMessage

if TYPE_CHECKING:
    from bot.app import Application

WINDOW_S = 60.0

USER_RATE_REPLY = "你发得有点快啦，我一分钟最多回你 {limit} 条，歇一会儿再@我吧～"
GROUP_RATE_REPLY = "大家问得太快啦，本群一分钟最多 {limit} 条，我缓一缓，稍后再@我吧～"


class Quotas:
    def __init__(self, app: Application, *, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self._clock = clock
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # key -> message times in the window
        self._told: set[str] = set()  # keys already told "too fast"; quiet until one passes again

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

