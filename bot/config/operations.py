"""The admin's operations sections: daily schedules and the alerts sent when WeChat is lost."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from bot.config.sections import Section

_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAYS = re.compile(r"^(\*|(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?"
                   r"(,(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)*)$")


class ScheduleEntry(Section):
    """One daily job: a weather push, a fixed text, or the nightly cleanup."""

    name: str = Field(pattern=r"^[\w-]{1,40}$")
    kind: Literal["weather", "text", "cleanup"]
    at: str  # "HH:MM" in schedules.timezone
    days: str = "*"  # "*", or days like "mon-fri" / "sat,sun"
    room: str | None = None  # room id or topic (weather, text)
    city: str | None = None  # weather
    text: str | None = None  # text
    keep_days: float = Field(default=7, gt=0)  # cleanup: delete media and history older than this
    paths: tuple[str, ...] = ("media",)  # cleanup: folders under data_dir whose old files are deleted

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HH_MM.match(value):
            raise ValueError(f"时间要写成 HH:MM（24 小时制，如 07:30），现在写的是 {value!r}")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        value = value.strip().lower()
        week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        ranges = [part.split("-") for part in value.split(",") if "-" in part]
        if not _DAYS.match(value) or any(week.index(a) > week.index(b) for a, b in ranges):
            # a range that wraps the week (fri-mon) is what the scheduler cannot take: write fri-sun,mon
            raise ValueError(f"days 要写 '*'，或者像 'mon-fri' / 'sat,sun'（范围从 mon 到 sun，所以要写 "
                             f"'fri-sun,mon' 而不是 'fri-mon'），现在写的是 {value!r}")
        return value

    @field_validator("paths")
    @classmethod
    def _inside_data_dir(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if Path(path).is_absolute() or ".." in Path(path).parts:
                raise ValueError(f"清理的路径要是 data_dir 里面的文件夹，现在写的是 {path!r}")
        return value

    @model_validator(mode="after")
    def _needs(self) -> ScheduleEntry:
        needed = {"weather": ("room", "city"), "text": ("room", "text"), "cleanup": ()}[self.kind]
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"{self.kind} 定时任务还要写 {'、'.join(missing)}")
        return self

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.at.split(":")
        return int(hour), int(minute)


class SchedulesConfig(Section):
    timezone: str = "Asia/Shanghai"  # for schedules and for the daily quotas' midnight
    misfire_grace_s: int = Field(default=900, ge=1)
    jobs: tuple[ScheduleEntry, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"没有这个时区 {value!r}（写成 Asia/Shanghai 这样的名字）") from exc
        return value

    @field_validator("jobs")
    @classmethod
    def _unique(cls, value: tuple[ScheduleEntry, ...]) -> tuple[ScheduleEntry, ...]:
        names = [job.name for job in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"定时任务的名字不能重复：{'、'.join(duplicates)}")
        return value


class SmtpConfig(Section):
    host: str
    port: int = Field(default=465, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str | None = None  # the password comes from env XIAOAI_SMTP_PASSWORD
    from_addr: str
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(default=10, gt=0)


class AlertsConfig(Section):
    """Telling the admins the bot went deaf, by a route that does not need WeChat."""

    disconnect_after_s: float = Field(default=60, gt=0)
    check_interval_s: float = Field(default=2, gt=0)
    webhook_url: str | None = None  # env XIAOAI_ALERT_WEBHOOK_URL overrides (URLs often hold a key)
    webhook_json: dict[str, Any] = Field(default_factory=lambda: {"text": "$message"})
    webhook_timeout_s: float = Field(default=10, gt=0)
    smtp: SmtpConfig | None = None
