"""Tell the admins when 小爱 has lost WeChat, by a route that does not need WeChat.

The most common complaint about WeChat bots is that they silently stop. When the channel has been
disconnected for `alerts.disconnect_after_s`, this posts to a webhook (JSON, shaped by
`alerts.webhook_json` so it fits 企业微信/钉钉/飞书/Slack/ntfy-style robots) and/or sends an e-mail,
once per outage; when WeChat is back, the admins also hear it there.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from string import Template
from typing import Any

import httpx
from loguru import logger
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot.background import cancel_and_wait
from bot.channels.base import LoginStatus
from bot.channels.login_state import LOGGED_OUT, state_text_zh
from bot.config import AlertsConfig, AppConfig, SmtpConfig
from bot.ops.notices import AdminNotices
from bot.time_text import duration_text

WEBHOOK_URL_ENV = "XIAOAI_ALERT_WEBHOOK_URL"
SMTP_PASSWORD_ENV = "XIAOAI_SMTP_PASSWORD"


def fill_template(value: Any, fields: dict[str, str]) -> Any:
    """Replace $message, $event, $bot, $down_s in every string of the webhook_json template."""
    if isinstance(value, str):
        return Template(value).safe_substitute(fields)
    if isinstance(value, dict):
        return {key: fill_template(item, fields) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill_template(item, fields) for item in value]
    return value


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)


async def post_webhook(url: str, body: Any, timeout_s: float, attempts: int = 3) -> None:
    """POST JSON, retrying network errors and 5xx briefly (the network may be why WeChat dropped)."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(attempts), reraise=True,
                                           wait=wait_exponential(multiplier=0.5, max=5),
                                           retry=retry_if_exception(_retryable)):
            with attempt:
                response = await client.post(url, json=body)
                response.raise_for_status()


def send_mail(smtp: SmtpConfig, subject: str, text: str, password: str | None) -> None:
    """Blocking: send one plain-text e-mail (run it in a thread)."""
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, smtp.from_addr, ", ".join(smtp.to)
    mail.set_content(text)
    if smtp.security == "ssl":
        server: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                                 context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with server:
        if smtp.security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if smtp.username:
            server.login(smtp.username, password or "")
        server.send_message(mail)


def disconnect_text(name: str, down_for: float, status: LoginStatus | None) -> str:
    """The alert, worded from the channel's one login state (what happened, and what fixes it)."""
    what = f"：{state_text_zh(status)}。" if status is not None else "，"
    logged_out = status is not None and status.state == LOGGED_OUT
    fix = ("请在管理页面（或网关的终端）扫新的二维码重新登录。" if logged_out
           else "请看看微信网关和登录的手机是否在线。")
    return (f"【{name}】已经和微信断开 {down_for:.0f} 秒了{what}群里的消息现在收不到。"
            f"{fix}恢复后我会在微信里告诉你。")


class DisconnectAlerts:
    """A Service: polls the channel's connection; one alert per outage, one WeChat note on recovery."""

    def __init__(self, config: Callable[[], AppConfig], *, connected: Callable[[], bool],
                 state: Callable[[], LoginStatus | None], notices: AdminNotices,
                 clock: Callable[[], float] = time.monotonic, env: Any = None) -> None:
        self._config = config
        self._connected = connected
        self._state = state
        self._notices = notices
        self._clock = clock
        self._env = os.environ if env is None else env
        self._down_since: float | None = None
        self._alerted = False
        self._task: asyncio.Task | None = None
        self.sent: list[tuple[str, str]] = []  # (route, event) of every alert that went out, for #状态

    async def start(self) -> None:
        self._down_since = None
        self._alerted = False
        self._task = asyncio.create_task(self._loop(), name="disconnect-alerts")

    async def stop(self) -> None:
        try:
            await cancel_and_wait(self._task)
        finally:
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the watchdog itself must never die
                logger.exception("alerts: check failed")
            await asyncio.sleep(self._config().alerts.check_interval_s)

    @property
    def down_for(self) -> float | None:
        return None if self._down_since is None else self._clock() - self._down_since

    async def check(self) -> None:
        """One look at the channel; alerts when the outage crosses the threshold (tests call this)."""
        config = self._config().alerts
        now = self._clock()
        if self._connected():
            down_for = None if self._down_since is None else now - self._down_since
            alerted, self._alerted, self._down_since = self._alerted, False, None
            if alerted:
                await self._tell_admins_in_wechat(down_for or 0)
            return
        if self._down_since is None:
            self._down_since = now
        down_for = now - self._down_since
        if not self._alerted and down_for >= config.disconnect_after_s:
            self._alerted = True  # once per outage, whatever the routes answer
            await self.alert(down_for, config)

    async def alert(self, down_for: float, config: AlertsConfig) -> None:
        name = self._config().bot.name
        message = disconnect_text(name, down_for, self._state())
        logger.error("alerts: {}", message)
        fields = {"message": message, "event": "disconnected", "bot": name, "down_s": f"{down_for:.0f}"}
        routes = []
        url = self._env.get(WEBHOOK_URL_ENV) or config.webhook_url
        if url:
            routes.append(("webhook", post_webhook(url, fill_template(config.webhook_json, fields),
                                                   config.webhook_timeout_s)))
        if config.smtp is not None:
            routes.append(("smtp", asyncio.to_thread(send_mail, config.smtp, f"{name} 掉线了", message,
                                                     self._env.get(SMTP_PASSWORD_ENV))))
        if not routes:
            logger.warning("alerts: no webhook_url or smtp configured; the outage is only in this log")
            return
        results = await asyncio.gather(*(coro for _route, coro in routes), return_exceptions=True)
        for (route, _coro), result in zip(routes, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("alerts: {} failed: {}", route, result)
            else:
                self.sent.append((route, "disconnected"))
                logger.info("alerts: disconnect alert sent by {}", route)

    async def _tell_admins_in_wechat(self, down_for: float) -> None:
        text = f"✅ 我回来啦：和微信断开了约 {duration_text(down_for)}，现在已恢复正常。"
        logger.info("alerts: channel back after {:.0f} s", down_for)
        if await self._notices.tell(text):
            self.sent.append(("wechat", "recovered"))

