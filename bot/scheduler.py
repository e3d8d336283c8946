"""Daily jobs declared in config (`schedules.jobs`): weather pushes, fixed texts, the nightly cleanup.

One APScheduler `AsyncIOScheduler`, hidden behind this small class. Jobs are named `daily:{name}` and
resynced from the config on every reload (added, replaced, removed by name). Deliberate settings:
* the time zone is explicit (`schedules.timezone`, default Asia/Shanghai), never the server's;
* `coalesce=True`: runs missed while the loop was stalled collapse into one (nobody wants three weather
  reports at once);
* `misfire_grace_time` = `schedules.misfire_grace_s` (15 min by default): a push that could not start
  on time still goes out a little late, but a 07:30 weather report is not sent at noon;
* `max_instances=1`: a slow run is never doubled.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger

from bot.config import AppConfig, ScheduleEntry
from bot.messages import ChatRef, Reply

if TYPE_CHECKING:
    from bot.app import Application

JOB_PREFIX = "daily:"
WEATHER_OFF_REPLY = "天气功能未开通，今天的天气播报先停一停～"
WEATHER_FAILED_REPLY = "今天的天气暂时没查到，稍后可以@我问问～"


def job_id(entry: ScheduleEntry) -> str:
    return f"{JOB_PREFIX}{entry.name}"


def trigger_for(entry: ScheduleEntry, timezone: str) -> CronTrigger:
    hour, minute = entry.hour_minute
    return CronTrigger(day_of_week=entry.days, hour=hour, minute=minute, timezone=ZoneInfo(timezone))


class Scheduler:
    """A Service (`app.scheduler`). `sync(config)` is registered as a config listener."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self._scheduler = AsyncIOScheduler(timezone=ZoneInfo(app.config.schedules.timezone))
        self.sync(app.config)

    async def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    # -- jobs from config -------------------------------------------------------------------------
    def sync(self, config: AppConfig) -> None:
        """Make the scheduled jobs match `config.schedules` exactly (called after each reload)."""
        schedules = config.schedules
        wanted = {job_id(entry): entry for entry in schedules.jobs}
        for job in self._scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                job.remove()
                logger.info("schedules: removed {}", job.id)
        for name, entry in wanted.items():
            self._scheduler.add_job(
                self.run_entry, trigger=trigger_for(entry, schedules.timezone), args=[entry.name],
                id=name, name=name, replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=schedules.misfire_grace_s,
            )
        if wanted:
            logger.info("schedules: {} ({})", ", ".join(wanted), schedules.timezone)

    def jobs(self) -> list[tuple[str, str]]:
        """(job id, next run time) for #状态; next run is empty before the scheduler starts."""
        return [(job.id, str(getattr(job, "next_run_time", "") or "")) for job in self._scheduler.get_jobs()]

    # -- running ------------------------------------------------------------------------------------
    def _entry(self, name: str) -> ScheduleEntry | None:
        return next((e for e in self.app.config.schedules.jobs if e.name == name), None)

    async def run_entry(self, name: str) -> None:
        """Run one schedule by name, with the current config (tests call this directly)."""
        entry = self._entry(name)
        if entry is None:
            logger.warning("schedules: {} is no longer configured", name)
            return
        try:
            if entry.kind == "weather":
                await self._say(entry, await weather_text(self.app, entry.city or ""))
            elif entry.kind == "text":
                await self._say(entry, entry.text or "")
            else:
                await self.cleanup(entry)
        except Exception:  # noqa: BLE001 - a failing schedule is logged; the others keep running
            logger.exception("schedules: {} failed", name)

    async def resolve_room(self, room: str) -> str:
        """A room id from config's `room`: a topic seen in a message, else looked up by topic in the
        channel, else taken as an id."""
        known = self.app.router.room_ids.get(room)
        if known is None:
            known = await self.app.channel.find_room(room)
            if known is not None:
                self.app.router.room_ids[room] = known
        return known or room

    async def _say(self, entry: ScheduleEntry, text: str) -> None:
        chat = ChatRef(await self.resolve_room(entry.room or ""), is_room=True)
        if await self.app.send(chat, Reply(text)):
            logger.info("schedules: {} sent to {}", entry.name, chat.chat_id)
        else:
            logger.warning("schedules: {} could not be sent to {}", entry.name, chat.chat_id)

    async def cleanup(self, entry: ScheduleEntry, now: float | None = None) -> tuple[int, int]:
        """Delete media files and chat history older than entry.keep_days; returns (files, messages)."""
        now = time.time() if now is None else now
        cutoff = now - entry.keep_days * 86400
        data_dir = self.app.config.data_dir
        jobs = self.app.jobs
        files = 0
        if jobs is not None:  # the job queue knows which results are pending
            files += await asyncio.to_thread(jobs.retention.cleanup, now)
        files += await asyncio.to_thread(_remove_older, [data_dir / p for p in entry.paths], cutoff)
        messages = self.app.history.prune(cutoff)
        logger.info("schedules: cleanup removed {} files and {} history messages", files, messages)
        return files, messages


def _remove_older(folders: list[Path], cutoff: float) -> int:
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


async def weather_text(app: Application, city: str) -> str:
    """Today's weather for `city` from the weather intent, or a plain line when it is not available.

    Uses `intents.weather.daily_report(app, city)` when that module offers it; otherwise builds the
    report from the weather intent's public pieces (AMap client, render_weather).
    """
    try:
        from intents import slots, weather
        from services.amap import AmapError
    except ImportError:
        return WEATHER_OFF_REPLY
    report = getattr(weather, "daily_report", None)
    try:
        if report is not None:
            return await report(app, city)
        client = slots.feature(app).client(app.config.amap)
        if not client.key:
            return WEATHER_OFF_REPLY
        location = await client.geocode(city)
        if location is None or not location.adcode:
            return f"没找到「{city}」，请管理员检查 schedules 里的 city。"
        forecast = await client.forecast(location.adcode)
        live = await client.live_weather(location.adcode)
        today = slots.local_now(app.config.amap).date()
        casts = [c for c in (forecast.casts if forecast else []) if c.date == today]
        if not casts:
            return WEATHER_FAILED_REPLY
        return "📅 每日天气\n" + weather.render_weather(forecast.city or city, casts, today, live)
    except AmapError as exc:
        logger.warning("schedules: weather for {} failed: {}", city, exc)
        return slots.explain(exc)
    except Exception as exc:  # noqa: BLE001 - a push must say something sensible, not go missing
        logger.warning("schedules: weather for {} failed: {}", city, exc)
        return WEATHER_FAILED_REPLY
