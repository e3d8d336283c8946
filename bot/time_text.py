"""Durations in plain Chinese, one way everywhere: uptime in #状态, an outage, a route's travel time."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """"45秒", "12分钟", "1小时5分钟", "2天3小时"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}秒"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def eta_text(seconds: float | None) -> str:
    """"预计 40 秒。" from a measured estimate; nothing at all while there is none to give."""
    return "" if seconds is None else f"预计 {max(1, int(seconds))} 秒。"
