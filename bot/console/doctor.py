"""`xiaoai doctor`: the console's checks on the command line, with the WeChat line from a short real
connection to the gateway (so a refused token shows as refused, not as "the port answers")."""

from __future__ import annotations

import asyncio
import contextlib
import time

from bot.channels.base import LoginStatus
from bot.config import AppConfig, Secrets
from bot.config.secret_store import FILE_NAME
from bot.console.checks import Check, StatusChecks, wechat_check

PROBE_S = 8.0  # long enough for the gateway to accept or refuse the token


async def probe_gateway(endpoint: str, token: str | None, config: AppConfig, within: float = PROBE_S
                        ) -> LoginStatus:
    """Connect once as the bot would and report where the login got to (then disconnect)."""
    from bot.channels.wechaty.channel import WechatyChannel

    wechat = config.wechaty.model_copy(update={"reconnect_initial_s": within, "reconnect_max_s": within})
    channel = WechatyChannel(endpoint, token, wechat)

    async def ignore(_message: object) -> None:
        return None

    task = asyncio.create_task(channel.run(ignore))
    deadline = time.monotonic() + within
    status = channel.login_status()
    while time.monotonic() < deadline and not task.done():
        status = channel.login_status()
        waiting_for_scan = status.state == "logged_out" and status.qr_code
        if status.state in ("serving", "disconnected") or waiting_for_scan:
            break
        await asyncio.sleep(0.1)
    await channel.stop()
    task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 3)
    return status


def doctor_checks(config: AppConfig, secrets: Secrets) -> list[Check]:
    """Every check, as the bot started with `config` would show it on the console's status page."""
    if secrets.file is None:
        secrets.use_file(config.data_dir / FILE_NAME)
    endpoint = secrets.puppet_endpoint or config.wechaty.endpoint
    if endpoint:
        status = asyncio.run(probe_gateway(endpoint, secrets.puppet_token, config))
    else:
        status = LoginStatus(state="playground", since=time.time())
    playground = not endpoint and config.offline.playground.demo_models
    return StatusChecks(lambda: config, secrets, wechat=lambda: wechat_check(status),
                        demo_fallback=playground).run()
