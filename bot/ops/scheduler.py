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
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger

from bot.config import AppConfig, ScheduleEntry
from bot.messages import ChatRef, Reply

JOB_PREFIX = "daily:"

Send = Callable[[ChatRef, Reply], Awaitable[bool]]


def job_id(entry: ScheduleEntry) -> str:
    return f"{JOB_PREFIX}{entry.name}"


def trigger_for(entry: ScheduleEntry, timezone: str) -> CronTrigger:
    hour, minute = entry.hour_minute
    return CronTrigger(day_of_week=entry.days, hour=hour, minute=minute, timezone=ZoneInfo(timezone))


class Scheduler:
    """A Service. `on_config` resyncs the jobs after each reload."""

    def __init__(
        self,
        config: Callable[[], AppConfig],
        *,
        send: Send,
        resolve_room: Callable[[str], Awaitable[str]],
        weather_report: Callable[[str], Awaitable[str]],
        remove_old_media: Callable[[float], int],
        prune_history: Callable[[float], int],
    ) -> None:
        self._config = config
        self._send = send
        self._resolve_room = resolve_room
        self._weather_report = weather_report
        self._remove_old_media = remove_old_media
        self._prune_history = prune_history
        self._scheduler = AsyncIOScheduler(timezone=ZoneInfo(config().schedules.timezone))
        self.sync(config())

    async def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def on_config(self, old: AppConfig, new: AppConfig) -> None:
        self.sync(new)

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
        return next((e for e in self._config().schedules.jobs if e.name == name), None)

    async def run_entry(self, name: str) -> None:
        """Run one schedule by name, with the current config (tests call this directly)."""
        entry = self._entry(name)
        if entry is None:
            logger.warning("schedules: {} is no longer configured", name)
            return
        try:
            if entry.kind == "weather":
                await self._say(entry, await self._weather_report(entry.city or ""))
            elif entry.kind == "text":
                await self._say(entry, entry.text or "")
            else:
                await self.cleanup(entry)
        except Exception:  # noqa: BLE001 - a failing schedule is logged; the others keep running
            logger.exception("schedules: {} failed", name)

    async def _say(self, entry: ScheduleEntry, text: str) -> None:
        chat = ChatRef(await self._resolve_room(entry.room or ""), is_room=True)
        if await self._send(chat, Reply(text)):
            logger.info("schedules: {} sent to {}", entry.name, chat.chat_id)
        else:
            logger.warning("schedules: {} could not be sent to {}", entry.name, chat.chat_id)

    async def cleanup(self, entry: ScheduleEntry, now: float | None = None) -> tuple[int, int]:
        """Delete media files and chat history older than entry.keep_days; returns (files, messages)."""
        now = time.time() if now is None else now
        cutoff = now - entry.keep_days * 86400
        data_dir = self._config().data_dir
        files = await asyncio.to_thread(self._remove_old_media, now)  # the queue knows what is pending
        files += await asyncio.to_thread(_remove_older, [data_dir / p for p in entry.paths], cutoff)
        messages = self._prune_history(cutoff)
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
