"""The admin console in a browser (/admin): WeChat QR login, status checks, the job queue, per-room
settings and the common settings, all behind one password (env XIAOAI_ADMIN_PASSWORD)."""

from bot.console.checks import Check, StatusChecks
from bot.console.server import ConsoleServer, attach_console

__all__ = ["Check", "ConsoleServer", "StatusChecks", "attach_console"]
