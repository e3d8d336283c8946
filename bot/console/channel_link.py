"""Everything the console and the checks read from, or ask of, the WeChat channel, in one place: its
login state in words, and a reconnect. (The channel's state machine may change; only this file follows.)"""

from __future__ import annotations

import inspect
from typing import Any

from bot.channels.base import Channel, LoginStatus
from bot.console.words import Text

REFUSED_WORDS = ("unauthenticated", "token")


def login_status(channel: Channel) -> LoginStatus:
    """The channel's login state; a channel without one is described by whether it is connected."""
    own = getattr(channel, "login_status", None)
    if own is not None:
        return own()
    return LoginStatus(state="serving" if getattr(channel, "connected", False) else "disconnected", since=0.0)


def phase(status: LoginStatus) -> tuple[str, Text]:
    """(key, words) for the connection line: down / refused / connecting / waiting for scan / serving."""
    if status.state == "serving":
        return "serving", ("已登录，正在服务", "serving")
    if status.state == "playground":
        return "playground", ("没接微信：这是本地试玩页面", "no WeChat: this is the local playground")
    if status.state == "logged_out":  # the gateway is there, no account logged in
        if status.reason == "logged out":
            return "logged_out", ("微信已退出登录，请重新扫码", "logged out, scan again")
        if status.qr_status == "scanned":
            return "waiting_for_scan", ("已扫码，请在手机上确认登录",
                                        "scanned: confirm the login on the phone")
        if status.qr_code:
            return "waiting_for_scan", ("等待扫码登录", "waiting for scan")
        return "connecting", ("已连上网关，等待登录", "connected to the gateway, waiting for the login")
    if status.state == "connecting":
        return "connecting", ("正在连接网关", "connecting")
    reason = (status.reason or "").lower()
    if any(word in reason for word in REFUSED_WORDS):
        return "refused", ("网关拒绝了 token（口令不对）", "the gateway refused the token")
    if status.state == "stopped":
        return "down", ("已停止", "stopped")
    return "down", ("连不上网关，正在重试", "the gateway does not answer; retrying")


async def reconnect(channel: Channel) -> bool:
    """Drop the WeChat session so the channel's supervisor connects afresh; False when the channel has no
    session to drop (the playground)."""
    own = getattr(channel, "reconnect", None)
    if own is not None:
        result = own()
        if inspect.isawaitable(result):
            await result
        return True
    close: Any = getattr(channel, "_close_session", None)  # WechatyChannel: its loop reconnects at once
    if close is None:
        return False
    await close()
    return True
