"""Where the console is served: on the playground's own page server in playground mode, else on a small
uvicorn server of its own (console.host / console.port), started and stopped with the bot."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loguru import logger

from bot.channels.base import Channel
from bot.config import AppConfig, ConsoleConfig, Secrets
from bot.console.auth import Auth, is_loopback
from bot.console.channel_link import login_status
from bot.console.checks import checks_for
from bot.console.web import ConsoleDeps, build_console

PATH = "/admin"


class ConsoleServer:
    """A Service: the console on its own port. Refuses a non-loopback address without a password."""

    def __init__(self, app: Any, config: ConsoleConfig, *, password_set: bool) -> None:
        self._app = app
        self._config = config
        self._password_set = password_set
        self._server: Any = None
        self._task: asyncio.Task | None = None
        self.url: str | None = None

    def _bind(self) -> socket.socket:
        host, port = self._config.host, self._config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            logger.warning("console: port {} is taken, using a free one", port)
            sock.bind((host, 0))
        sock.listen(64)
        sock.setblocking(False)
        bound_host, bound_port = sock.getsockname()[:2]
        self.url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}{PATH}/"
        return sock

    async def start(self) -> None:
        import uvicorn
        from fastapi import FastAPI
        from fastapi.responses import RedirectResponse

        if not self._password_set and not is_loopback(self._config.host):
            logger.error("console: NOT started: it would listen on {} with no password; set "
                         "XIAOAI_ADMIN_PASSWORD or console.host: 127.0.0.1", self._config.host)
            return
        root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        root.mount(PATH, self._app)

        @root.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse(f"{PATH}/")

        sock = self._bind()
        config = uvicorn.Config(root, log_level="warning", lifespan="off", timeout_graceful_shutdown=2,
                                ws="none")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the CLI owns SIGINT/SIGTERM
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="console")
        note = "" if self._password_set else " (no XIAOAI_ADMIN_PASSWORD: open to this machine only)"
        logger.info("console: {}{}", self.url, note)
        print(f"\n  小爱 admin console: {self.url}{note}\n", flush=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
            self._task = None


def attach_console(channel: Channel, *, config: Callable[[], AppConfig], secrets: Secrets, jobs: Any,
                   watcher: Any, intents: Mapping[str, str],
                   live_workers: Callable[[], int] | None = None) -> ConsoleServer | None:
    """Build the console for `channel`: mounted on the channel's page server when it has one (the
    playground), else a ConsoleServer to run as a service. None when `console.enabled` is false."""
    settings = config().console
    if not settings.enabled:
        return None
    checks = checks_for(channel, config, secrets, live_workers, jobs=jobs)
    rooms: Callable[[], Awaitable[list]] = channel.rooms
    deps = ConsoleDeps(config=config, login_status=lambda: login_status(channel), rooms=rooms, jobs=jobs,
                       watcher=watcher, checks=checks.run_async, intents=dict(intents), secrets=secrets,
                       channel=channel)
    auth = Auth(secrets.admin_password)
    app = build_console(deps, auth)
    mount = getattr(channel, "mount", None)
    if mount is not None:
        mount(PATH, app)
        return None
    return ConsoleServer(app, settings, password_set=auth.required)
