"""Schedules from config, on a controlled clock: trigger times are computed for a fixed "now" and job
functions are called directly; nothing waits for a real 07:30."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import ConfigError, ScheduleEntry, parse
from bot.ops.scheduler import Scheduler, trigger_for
from intents.weather import DAILY_OFF_REPLY as WEATHER_OFF_REPLY
from tests.bot.ops_doubles import FAMILY_ID, FAMILY_TOPIC, make_app, message
from tests.support.app_parts import service
from tests.support.peer import FAMILY

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")

CONFIG = """\
schedules:
  timezone: Asia/Shanghai
  misfire_grace_s: 600
  jobs:
    - {name: morning, kind: text, at: "07:30", room: 相亲相爱一家人, text: 早上好，记得吃早饭～}
    - {name: weekday-weather, kind: weather, at: "07:00", days: mon-fri, room: family@chatroom, city: 北京}
    - {name: nightly, kind: cleanup, at: "03:00", keep_days: 7}
"""


def test_next_fire_times_on_a_fixed_clock() -> None:
    entry = ScheduleEntry(name="m", kind="text", at="07:30", room="r", text="hi")
    trigger = trigger_for(entry, "Asia/Shanghai")
    # 2026-11-02 23:00 UTC is 07:00 on Tuesday 3 Nov in Shanghai: next is 07:30 the same morning
    now = dt.datetime(2026, 11, 2, 23, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2026, 11, 3, 7, 30, tzinfo=SHANGHAI)
    # just after: tomorrow
    now = dt.datetime(2026, 11, 2, 23, 31, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2026, 11, 4, 7, 30, tzinfo=SHANGHAI)
    # the same entry in another zone fires at another instant: the zone is explicit, not the server's
    other = trigger_for(entry, "Europe/London").get_next_fire_time(None, now)
    assert other == dt.datetime(2026, 11, 3, 7, 30, tzinfo=ZoneInfo("Europe/London"))


def test_weekdays_only() -> None:
    entry = ScheduleEntry(name="w", kind="weather", at="07:00", days="mon-fri", room="r", city="北京")
    saturday = dt.datetime(2026, 11, 7, 8, 0, tzinfo=SHANGHAI)
    assert trigger_for(entry, "Asia/Shanghai").get_next_fire_time(None, saturday) == dt.datetime(
        2026, 11, 9, 7, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("bad, reason", [
    ('{name: a, kind: text, at: "7.30", room: r, text: t}', "时间要写成 HH:MM"),
    ('{name: a, kind: text, at: "25:00", room: r, text: t}', "时间要写成 HH:MM"),
    ("{name: a, kind: weather, at: '07:00', room: r}", "还要写 city"),
    ("{name: a, kind: text, at: '07:00', days: weekends, room: r, text: t}", "days 要写"),
    ("{name: a, kind: cleanup, at: '03:00', paths: [../etc]}", "data_dir 里面"),
    # a range that wraps the week passed the pattern, then broke the scheduler (build_app raised)
    ("{name: a, kind: text, at: '07:00', days: fri-mon, room: r, text: t}", "days 要写"),
    ("{name: a, kind: text, at: '07:00', days: 'mon-fri,sun-sat', room: r, text: t}", "days 要写"),
    ("{name: a, kind: alarm, at: '03:00'}", "schedules.jobs.0.kind"),
])
def test_bad_entries_are_named(bad: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse(f"schedules:\n  jobs:\n    - {bad}\n")


def test_bad_zone_and_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="没有这个时区"):
        parse("schedules:\n  timezone: Mars/Base\n")
    with pytest.raises(ConfigError, match="不能重复：a"):
        parse("schedules:\n  jobs:\n    - {name: a, kind: cleanup, at: '03:00'}\n"
              "    - {name: a, kind: cleanup, at: '04:00'}\n")


async def test_jobs_are_named_and_set_deliberately_and_resynced(tmp_path: Path) -> None:
    app, _channel = make_app(tmp_path, CONFIG)
    scheduler: Scheduler = service(app, "scheduler")
    await scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
        assert set(jobs) == {"daily:morning", "daily:weekday-weather", "daily:nightly"}
        for job in jobs.values():
            assert job.coalesce is True and job.misfire_grace_time == 600 and job.max_instances == 1
            assert str(job.trigger.timezone) == "Asia/Shanghai"
        # a config reload: one removed, one changed, one added
        new = CONFIG.replace('at: "07:30"', 'at: "08:15"').replace(
            "    - {name: nightly, kind: cleanup, at: \"03:00\", keep_days: 7}\n",
            "    - {name: evening, kind: text, at: \"21:00\", room: family@chatroom, text: 早点睡}\n")
        app.live_config.apply(parse(new))
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
        assert set(jobs) == {"daily:morning", "daily:weekday-weather", "daily:evening"}
        assert jobs["daily:morning"].next_run_time.astimezone(SHANGHAI).time() == dt.time(8, 15)
    finally:
        await scheduler.stop()


async def test_text_job_sends_to_the_room_by_topic(tmp_path: Path) -> None:
    app, channel = make_app(tmp_path, CONFIG)
    # the room is named by topic: the id is learned from a message seen in it
    await app.dispatcher.on_message(message("大家好", mentioned=False))
    await service(app, "scheduler").run_entry("morning")
    assert channel.sent[-1][0].chat_id == FAMILY_ID
    assert channel.texts(FAMILY_ID)[-1] == "早上好，记得吃早饭～"


async def test_weather_job_without_weather_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AMAP_KEY", raising=False)
    app, channel = make_app(tmp_path, CONFIG)
    await service(app, "scheduler").run_entry("weekday-weather")
    assert channel.texts(FAMILY_ID) == [WEATHER_OFF_REPLY]


async def test_weather_job_uses_the_weather_intent(tmp_path: Path, monkeypatch) -> None:
    from intents import weather

    async def daily_report(client, city: str, config) -> str:
        return f"{city}：晴，5~15°C"

    monkeypatch.setattr(weather, "daily_report", daily_report, raising=False)
    app, channel = make_app(tmp_path, CONFIG)
    await service(app, "scheduler").run_entry("weekday-weather")
    assert channel.texts(FAMILY_ID) == ["北京：晴，5~15°C"]


async def test_cleanup_removes_old_media_and_history(tmp_path: Path) -> None:
    app, _channel = make_app(tmp_path, CONFIG + f"data_dir: {tmp_path / 'data'}\n")
    media = tmp_path / "data" / "media" / "video"
    media.mkdir(parents=True)
    now = time.time()
    old, fresh = media / "old.mp4", media / "fresh.mp4"
    for path, age_days in ((old, 8), (fresh, 1)):
        path.write_bytes(b"x")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    app.dispatcher.history.add("room:a", "妈妈", "上周的话", timestamp=now - 8 * 86400)
    app.dispatcher.history.add("room:a", "妈妈", "今天的话", timestamp=now - 60)
    entry = app.live_config().schedules.jobs[2]
    files, messages = await service(app, "scheduler").cleanup(entry, now=now)
    assert (files, messages) == (1, 1)
    assert not old.exists() and fresh.exists()
    kept = app.dispatcher.history.recent("room:a", app.live_config().history, now=now)
    assert [e.text for e in kept] == ["今天的话"]


async def test_a_due_job_runs_through_apscheduler(tmp_path: Path) -> None:
    """The wiring end to end: make one job due now instead of waiting for its time."""
    app, channel = make_app(tmp_path, CONFIG.replace("相亲相爱一家人", FAMILY_ID))
    await service(app, "scheduler").start()
    try:
        service(app, "scheduler")._scheduler.get_job("daily:morning").modify(
            next_run_time=dt.datetime.now(SHANGHAI))
        for _ in range(100):
            if channel.texts(FAMILY_ID):
                break
            await asyncio.sleep(0.02)
        assert channel.texts(FAMILY_ID) == ["早上好，记得吃早饭～"]
    finally:
        await service(app, "scheduler").stop()


async def test_e2e_scheduled_text_reaches_the_room(running_bot, peer, fake_llm) -> None:
    overrides = {"schedules": {"jobs": [
        {"name": "hello", "kind": "text", "at": "07:30", "room": FAMILY, "text": "早上好呀～"}]}}
    async with running_bot(overrides) as app:
        service(app, "scheduler")._scheduler.get_job("daily:hello").modify(
            next_run_time=dt.datetime.now(SHANGHAI))
        sent = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
    assert sent["text"] == "早上好呀～"
    assert FAMILY_TOPIC  # the peer's family room


async def test_e2e_a_room_named_by_topic_is_found_without_a_message_first(running_bot, peer, fake_llm):
    overrides = {"schedules": {"jobs": [
        {"name": "pills", "kind": "text", "at": "20:00", "room": FAMILY_TOPIC, "text": "奶奶记得吃药哦～"}]}}
    async with running_bot(overrides) as app:
        assert FAMILY_TOPIC not in app.dispatcher.gates[2].ids  # nobody has spoken since the start
        service(app, "scheduler")._scheduler.get_job("daily:pills").modify(
            next_run_time=dt.datetime.now(SHANGHAI))
        sent = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 10)
    assert sent["text"] == "奶奶记得吃药哦～"
