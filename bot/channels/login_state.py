"""The channel's login state in words: one reading of `Channel.login_status()` for every place that
shows it (the disconnect alert, #状态, a failed send, the console and `xiaoai doctor`), so none of them
can contradict another ("not connected (connected)").

States a channel reports: stopped, connecting, logged_out (the gateway is there, no account logged in:
waiting for a QR scan or the phone's confirmation), serving (logged in, messages flow), disconnected
(the gateway is gone or refused us), and playground (no WeChat at all).
"""

from __future__ import annotations

from bot.channels.base import LoginStatus
from bot.logs import redactor

SERVING = "serving"
LOGGED_OUT = "logged_out"
PLAYGROUND = "playground"


def is_serving(status: LoginStatus) -> bool:
    return status.state == SERVING


def was_logged_out(status: LoginStatus) -> bool:
    """Logged out by WeChat (a dropped session), as against waiting for the very first login."""
    return status.state == LOGGED_OUT and status.reason == "logged out"


def _failure_zh(reason: str) -> str:
    lowered = reason.lower()
    if "unauthenticated" in lowered or "token" in lowered:
        return "网关不认这个令牌，请核对 WECHATY_PUPPET_SERVICE_TOKEN"
    if any(word in lowered for word in ("unreachable", "errno", "timeout", "stopped answering", "refused")):
        return "网关没有响应，请看看微信网关是否在运行"
    return ""


def state_text(status: LoginStatus) -> str:
    """English, for the log, errors and the console: "logged out, waiting for a QR scan"."""
    if status.state == SERVING:
        return f"serving as {status.account}" if status.account else "serving"
    if status.state == LOGGED_OUT:
        if status.qr_status == "scanned":
            return "logged out, QR code scanned: confirm the login on the phone"
        if status.qr_code:
            return "logged out, waiting for a QR scan"
        if was_logged_out(status):
            return "logged out, waiting for a new QR code"
        return "connected to the gateway, waiting for the login"
    if status.state == "disconnected":
        reason = redactor().redact(status.reason)
        return f"gateway disconnected ({reason})" if reason else "gateway disconnected"
    if status.state == PLAYGROUND:
        return "no WeChat: this is the local playground"
    return status.state  # connecting, stopped


def state_text_zh(status: LoginStatus) -> str:
    """Chinese, for the admins (#状态, the alert): "微信退出了登录，等待扫码"."""
    if status.state == SERVING:
        return f"已登录（{status.account}），正常收发" if status.account else "已登录，正常收发"
    if status.state == LOGGED_OUT:
        if status.qr_status == "scanned":
            return "已扫码，等待在手机上确认登录"
        if was_logged_out(status):
            return "微信退出了登录，等待扫码（管理页面有新的二维码）"
        if status.qr_code:
            return "等待扫码登录（管理页面有二维码）"
        return "已连上微信网关，等待登录"
    if status.state == "disconnected":
        why = _failure_zh(status.reason)
        return "和微信网关断开了" + (f"：{why}" if why else "")
    if status.state == "connecting":
        return "正在连接微信网关"
    if status.state == PLAYGROUND:
        return "未接入（这是本地试玩页面）"
    return "已停止"
