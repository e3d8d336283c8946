"""The daily picture/video quotas: counted by the job store when a job is accepted, per asker in one chat
and per room, in `schedules.timezone` (not the server's), room overrides and the admin exemption from
`limits_for`; a job that failed or was cancelled gives its count back by itself. And an existing
jobs.sqlite3 of an earlier release loads with its rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import parse
from bot.jobs import JobQueue, JobRequest, JobState, QueueLimitReached, limits_for
from bot.messages import ChatRef
from generators.base import GeneratorError
from tests.conftest import wait_until
from tests.support.job_doubles import Recorder, make_queue

CONFIG = parse("""\
bot:
  admins: [alice]
quotas:
  user_images_per_day: 2
  group_images_per_day: 3
  user_videos_per_day: null
  group_videos_per_day: 1
groups:
  rooms:
    工作群:
      quotas: {group_videos_per_day: 0}
""")
FAMILY = ChatRef("family@chatroom", is_room=True)
WORK = ChatRef("work@chatroom", is_room=True)
TOPICS = {FAMILY.chat_id: "相亲相爱一家人", WORK.chat_id: "工作群"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Kind:
    """Writes a file at once; a job whose prompt is "fail" fails."""

    def __init__(self, name: str) -> None:
        self.name = name

    def request(self, params: Mapping[str, Any], seed: int | None) -> Mapping[str, Any]:
        return params  # plain params are this kind's request

    def check(self, params: Mapping[str, Any]) -> None:
        return None

    def run(self, request: JobRequest, output_stem: Path, on_step, should_stop) -> Path:
        if request.params.get("prompt") == "fail":
            raise GeneratorError("显卡内存不够")
        path = output_stem.with_suffix(".bin")
        path.write_text("x")
        return path


_ids = iter(range(1, 10_000))


def ask(queue: JobQueue, kind: str, sender: str, chat: ChatRef = FAMILY, prompt: str = "猫"):
    """Submit as the generation intents do: limits from the kind's section and the chat's quotas."""
    quotas = CONFIG.for_chat(chat, TOPICS.get(chat.chat_id)).quotas
    section = getattr(CONFIG, kind).queue.model_copy(update={"max_pending_per_user": None})  # not started
    limits = limits_for(section, quotas, kind, is_admin=sender in CONFIG.bot.admins)
    request = JobRequest(kind, {"prompt": prompt}, 1, sender, sender, chat, f"m{next(_ids)}")
    return queue.submit(request, limits)


def quota_queue(tmp_path: Path, clock: Clock, timezone: str = "Asia/Shanghai") -> JobQueue:
    queue = make_queue(tmp_path, clock=clock, timezone=lambda: timezone)
    queue.register(Kind("image"), label="图片")
    queue.register(Kind("video"), label="视频")
    return queue


async def test_daily_image_quota_per_user_and_group_with_midnight_reset(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2026, 11, 3, 23, 0, tzinfo=SHANGHAI).timestamp())
    queue = quota_queue(tmp_path, clock)
    try:
        await ask(queue, "image", "bob")
        await ask(queue, "image", "bob")
        with pytest.raises(QueueLimitReached, match="你今天的图片额度（2 个）用完啦"):
            await ask(queue, "image", "bob")
        await ask(queue, "image", "carol")
        with pytest.raises(QueueLimitReached, match="本群今天的图片额度（3 个）用完啦"):
            await ask(queue, "image", "carol")
        await ask(queue, "image", "alice")  # the admin is exempt from the day quotas
        clock.now = dt.datetime(2026, 11, 4, 0, 0, 1, tzinfo=SHANGHAI).timestamp()  # midnight in Shanghai
        await ask(queue, "image", "bob")
        await ask(queue, "image", "bob")  # a new day: both of bob's pictures again
        with pytest.raises(QueueLimitReached, match="你今天的图片额度"):
            await ask(queue, "image", "bob")
    finally:
        queue.store.close()


async def test_the_day_is_the_configured_time_zones_not_the_servers(tmp_path: Path) -> None:
    # 23:00 and 01:00 in Shanghai are two days there, but the same UTC day (15:00 and 17:00)
    late = dt.datetime(2026, 11, 3, 23, 0, tzinfo=SHANGHAI).timestamp()
    early = dt.datetime(2026, 11, 4, 1, 0, tzinfo=SHANGHAI).timestamp()
    for zone, second_accepted in (("Asia/Shanghai", True), ("UTC", False)):
        clock = Clock(late)
        queue = quota_queue(tmp_path / zone.replace("/", "-"), clock, zone)
        try:
            await ask(queue, "video", "bob")
            clock.now = early
            if second_accepted:
                await ask(queue, "video", "bob")
            else:
                with pytest.raises(QueueLimitReached, match="本群今天的视频额度（1 个）用完啦"):
                    await ask(queue, "video", "bob")
        finally:
            queue.store.close()


async def test_failed_jobs_give_the_quota_back_and_a_room_zero_is_not_offered(tmp_path: Path) -> None:
    recorder = Recorder()
    queue = make_queue(tmp_path, recorder, timezone=lambda: "Asia/Shanghai")
    queue.register(Kind("video"), label="视频")
    try:
        await ask(queue, "video", "bob", prompt="fail")  # accepted; it runs once the queue starts
        with pytest.raises(QueueLimitReached, match="本群今天的视频额度（1 个）用完啦"):
            await queue.admit("video", "carol", FAMILY, limits_for(CONFIG.video.queue, CONFIG.quotas, "video",
                                                                   is_admin=False))
        await queue.start()
        await wait_until(lambda: len(recorder.sent) == 1, 5)  # the failure was reported...
        await ask(queue, "video", "carol")  # ...and the room's count given back, with no refund code
        with pytest.raises(QueueLimitReached, match="这里暂时不提供视频生成"):
            await ask(queue, "video", "bob", chat=WORK)
        await ask(queue, "video", "bob", chat=ChatRef("bob", is_room=False))  # private: user limit only
    finally:
        await queue.stop()
    with pytest.raises(ValueError):
        limits_for(CONFIG.video.queue, CONFIG.quotas, "music", is_admin=False)


async def test_daily_counts_survive_a_restart_but_not_midnight(tmp_path: Path) -> None:
    clock = Clock(dt.datetime(2026, 11, 3, 12, 0, tzinfo=SHANGHAI).timestamp())
    first = quota_queue(tmp_path, clock)
    await ask(first, "image", "bob")
    await ask(first, "image", "bob")
    first.store.close()
    restarted = quota_queue(tmp_path, clock)  # a new process reading the same data_dir
    with pytest.raises(QueueLimitReached, match="你今天的图片额度（2 个）用完啦"):
        await ask(restarted, "image", "bob")
    restarted.store.close()
    clock.now += 86400
    tomorrow = quota_queue(tmp_path, clock)
    try:
        await ask(tomorrow, "image", "bob")
    finally:
        tomorrow.store.close()


OLD_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, message_id TEXT NOT NULL,
    chat_key TEXT NOT NULL, asker_id TEXT NOT NULL, day TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, delivered_at REAL, result TEXT, error TEXT
);
CREATE UNIQUE INDEX jobs_message ON jobs(kind, message_id);
CREATE INDEX jobs_state ON jobs(state);
"""


async def test_an_earlier_releases_store_loads_and_its_jobs_are_finished(tmp_path: Path) -> None:
    """A file of the first release (no delivery-retry columns, days in server time) and its quotas.json."""
    now = time.time()
    if (now + 8 * 3600) % 86400 < 300:  # just after midnight in Shanghai: the rows and the quota on one day
        now -= 400
    media = tmp_path / "media" / "image"
    media.mkdir(parents=True)
    finished = media / "000002-1.bin"
    finished.write_text("old picture")
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")
    db.executescript(OLD_SCHEMA)
    rows = [  # (state, result, delivered_at)
        ("queued", None, None),  # accepted before the upgrade, never run
        ("done", str(finished), None),  # rendered, not posted yet
        ("done", None, now - 60),  # posted today: still counts for today's quota
    ]
    for n, (state, result, delivered) in enumerate(rows, start=1):
        request = JobRequest("image", {"prompt": f"p{n}"}, 1, "bob", "爸爸", FAMILY, f"old-{n}", f"旧图{n}")
        db.execute("INSERT INTO jobs (kind, message_id, chat_key, asker_id, day, request, state, created_at,"
                   " finished_at, delivered_at, result) VALUES (?, ?, ?, ?, '2026-11-03', ?, ?, ?, ?, ?, ?)",
                   ("image", request.message_id, FAMILY.key, "bob", request.to_json(), state, now - 100 + n,
                    None if state == "queued" else now - 50 + n, delivered, result))
    db.commit()
    db.close()
    (tmp_path / "quotas.json").write_text('{"day": "2026-11-03", "counts": []}')  # ignored, logged

    recorder = Recorder()
    queue = make_queue(tmp_path, recorder, clock=lambda: now, timezone=lambda: "Asia/Shanghai")
    queue.register(Kind("image"), label="图片")
    await queue.start()
    try:
        await wait_until(lambda: len(recorder.sent) == 2, 10)
        assert recorder.texts() == ["旧图2", "旧图1"]  # the finished one first, then the one it ran now
        assert recorder.sent[0][1].file == finished
        assert queue.get(3).state is JobState.DONE and queue.get(3).delivered_at == pytest.approx(now - 60)
        with pytest.raises(QueueLimitReached, match="本群今天的图片额度（3 个）用完啦"):  # the old rows count
            await ask(queue, "image", "carol")
    finally:
        await queue.stop()
    upgraded = sqlite3.connect(tmp_path / "jobs.sqlite3")
    columns = {row[1] for row in upgraded.execute("PRAGMA table_info(jobs)")}
    upgraded.close()
    assert {"deliver_failures", "next_delivery_at"} <= columns
