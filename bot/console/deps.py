"""What the console reads and changes (`ConsoleDeps`), apart from the pages that use it, so the page
modules (web.py, actions.py) all import it from here and never each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.channels.base import Channel, LoginStatus, RoomInfo
    from bot.config import AppConfig, Secrets
    from bot.config.watch import ConfigWatcher
    from bot.console.checks import Check
    from bot.jobs import JobQueue


@dataclass(frozen=True)
class ConsoleDeps:
    """What the console reads and changes, and nothing else."""

    config: Callable[[], AppConfig]
    login_status: Callable[[], LoginStatus]
    rooms: Callable[[], Awaitable[list[RoomInfo]]]
    jobs: JobQueue
    watcher: ConfigWatcher
    checks: Callable[[], Awaitable[list[Check]]]
    intents: Mapping[str, str]  # the intents this bot has (the registry): name -> label, for the switches
    secrets: Secrets | None = None  # keys set in the console (None: the keys page is read-only)
    channel: Channel | None = None  # for the reconnect button
