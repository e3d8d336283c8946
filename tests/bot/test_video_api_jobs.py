"""Video jobs through a hosted API at the job level: the real JobQueue, JobStore, Outbox and
`ApiVideoBackend` against the fake 智谱 / DashScope servers. A task id found in the store is followed
after a restart (one create, one MP4); the daily budget is checked with the quotas; refusals are free;
the admins get the account fix with one problem key; a photo travels with the job."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import VideoConfig
from bot.jobs import JobQueue, JobRequest, JobStore, LocalBackend, Outbox, QueueLimitReached
from bot.jobs.kinds import VideoKind
from bot.jobs.video_api import FAILURE_REPLIES, ApiVideoBackend
from bot.jobs.video_choice import choose
from bot.messages import ChatRef
from generators.video_api import Failure
from tests.conftest import wait_until
from tests.support.fake_video_apis import FakeVideoApi
from tests.support.job_doubles import Recorder

ROOM = ChatRef("family@chatroom", True)


@pytest.fixture(params=["zhipu", "dashscope"])
def fake(request) -> Iterator[FakeVideoApi]:
    with FakeVideoApi(request.param) as server:
        yield server


class Harness:
    """A queue composed as `build_app` composes it, over `data_dir`, with the video section `video`."""

    def __init__(self, data_dir: Path, fake: FakeVideoApi, **api: Any) -> None:
        self.fake = fake
        self.video = VideoConfig(backend="api", api={"provider": fake.provider, "base_url": fake.base_url,
                                                     "poll_s": 0.05, "timeout_s": 20, **api})
        self.keys = {fake.provider: fake.key}
        self.recorder = Recorder()
        self.admin_notes: list[tuple[str, str | None]] = []
        store = JobStore(data_dir / "jobs.sqlite3")
        self.backend = ApiVideoBackend(lambda: self.video, store, lambda: self.keys,
                                       lambda: choose(self.video, self.keys))
        outbox = Outbox(self.recorder.deliver, retry_delivery_s=0.1, tell_admins=self.tell)
        self.queue = JobQueue(store, [self.backend, LocalBackend()], media_dir=data_dir / "media",
                              outbox=outbox)
        self.queue.register(VideoKind(lambda: self.video, backend=lambda: self.backend.choice().backend),
                            label="视频", retention_s=lambda: 3600)

    async def tell(self, text: str, key: str | None = None) -> Any:
        from bot.ops.notices import Told

        self.admin_notes.append((text, key))
        return Told.YES

    async def submit(self, tag: str, **params: Any) -> Any:
        request = JobRequest(kind="video", params={"prompt": f"A {tag} runs in a green field.", **params},
                             seed=1, asker_id="alice", asker_name="妈妈", chat=ROOM, message_id=f"m-{tag}",
                             caption=f"好了 {tag}")
        return await self.queue.submit(request)

    async def delivered(self, count: int, within: float = 20) -> list:
        await wait_until(lambda: len(self.recorder.sent) >= count, within=within)
        return self.recorder.sent


async def test_text_to_video_is_created_once_and_posted(fake, tmp_path):
    harness = Harness(tmp_path, fake)
    await harness.queue.start()
    try:
        await harness.submit("dog")
        sent = await harness.delivered(1)
        await wait_until(lambda: any(reply.file for _, reply in harness.recorder.sent))
        assert sent[0][1].text == "好了 dog" and sent[0][1].file.suffix == ".mp4"
        assert len(fake.creates) == 1 and fake.downloads == 1
        row = harness.queue.store.api_task(1)
        assert row["task_id"] == "task-1" and row["paid_at"] is not None
    finally:
        await harness.queue.stop()


async def test_a_restart_follows_the_stored_task_one_create_one_mp4(fake, tmp_path):
    fake.script(tasks=["stuck"])
    first = Harness(tmp_path, fake)
    await first.queue.start()
    await first.submit("cat")
    await asyncio.to_thread(fake.create_answered.wait, 10)
    await wait_until(lambda: (first.queue.store.api_task(1) or {}).get("task_id") == "task-1")
    await first.queue.stop()  # the bot goes away while the provider renders
    fake.tasks["task-1"]["outcome"] = "ok"
    second = Harness(tmp_path, fake)
    await second.queue.start()
    try:
        await second.delivered(1)
        await wait_until(lambda: any(reply.file for _, reply in second.recorder.sent))
        assert len(fake.creates) == 1 and fake.paid_tasks == ["task-1"]
    finally:
        await second.queue.stop()
    third = Harness(tmp_path, fake)  # delivered: a later start never fetches it again
    await third.queue.start()
    await asyncio.sleep(0.5)
    await third.queue.stop()
    assert fake.downloads == 1 and len(fake.creates) == 1 and third.recorder.sent == []


async def test_the_daily_budget_refuses_kindly_and_a_refusal_costs_nothing(tmp_path, monkeypatch):
    from bot.config import AppConfig, Secrets
    from bot.console.video_backend import video_check

    with FakeVideoApi("dashscope") as fake:
        monkeypatch.setenv("DASHSCOPE_API_KEY", fake.key)  # 0.24 元/s x 5 s = 1.2 元 a video
        harness = Harness(tmp_path, fake, daily_budget_yuan=2.0)
        await harness.queue.start()
        try:
            fake.script(create=["refuse", "ok"])
            await harness.submit("refused")
            await harness.delivered(1)
            assert FAILURE_REPLIES[Failure.REFUSED] in harness.recorder.sent[0][1].text
            assert harness.queue.spent_today("video") == 0  # the refused job is free
            await harness.submit("one")
            with pytest.raises(QueueLimitReached, match="今天做视频的预算用完啦，明天再来吧"):
                await harness.submit("two")  # 1.2 paid or pending + 1.2 > 2.0
            await harness.delivered(2)
            await wait_until(lambda: harness.queue.store.api_task(2) is not None
                             and harness.queue.store.api_task(2)["paid_at"] is not None)
            assert harness.queue.spent_today("video") == pytest.approx(1.2)
            config = AppConfig(data_dir=tmp_path, video=harness.video)
            check = await asyncio.to_thread(video_check, config, Secrets(), harness.queue)
            line = check.status_line()  # as #状态 and the console show it
            assert line.startswith("✅ 视频：云端 通义万相（配置文件指定）")
            assert line.endswith("今天花了 1.20 元 / 预算 2 元")
            since = time.time() - 86400
            assert [n for _day, _yuan, n in harness.queue.store.spend_by_day("video", since)] == [1]
        finally:
            await harness.queue.stop()


async def test_no_balance_is_a_short_reply_and_one_problem_for_the_admins(fake, tmp_path):
    fake.script(create=["no_balance"])
    harness = Harness(tmp_path, fake)
    await harness.queue.start()
    try:
        await harness.submit("a")
        await harness.submit("b")
        await harness.delivered(2)
        assert all(FAILURE_REPLIES[Failure.ACCOUNT] in reply.text for _, reply in harness.recorder.sent)
        keys = {key for _text, key in harness.admin_notes}
        assert keys == {f"video-api:account:{fake.provider}"}
        env = "ZHIPUAI_API_KEY" if fake.provider == "zhipu" else "DASHSCOPE_API_KEY"
        assert env in harness.admin_notes[0][0] and fake.key not in harness.admin_notes[0][0]
        assert fake.paid_tasks == []
    finally:
        await harness.queue.stop()


async def test_a_missing_key_is_refused_before_the_job_is_stored(fake, tmp_path):
    harness = Harness(tmp_path, fake)
    harness.keys = {}
    await harness.queue.start()
    try:
        with pytest.raises(Exception, match="视频功能还没准备好") as caught:
            await harness.submit("x")
        assert "KEY" in caught.value.admin_detail and fake.creates == []
    finally:
        await harness.queue.stop()


async def test_a_photo_job_sends_the_photo(fake, tmp_path):
    from PIL import Image

    photo = tmp_path / "grandma.jpg"
    Image.new("RGB", (4000, 3000), (200, 180, 160)).save(photo, quality=95)
    harness = Harness(tmp_path, fake)
    await harness.queue.start()
    try:
        await harness.submit("smile", image=base64.b64encode(photo.read_bytes()).decode())
        await harness.delivered(1)
        await wait_until(lambda: any(reply.file for _, reply in harness.recorder.sent))
        assert fake.tasks["task-1"]["photo"] and not fake.violations
    finally:
        await harness.queue.stop()


async def test_a_create_cut_off_before_its_answer_is_never_sent_again(fake, tmp_path):
    harness = Harness(tmp_path, fake)
    receipt = await harness.submit("lost")  # stored, not started: the queue is not running yet
    # the crash: the create call had been sent, its answer never written
    harness.queue.store.api_task_creating(receipt.job.id, fake.provider, "cogvideox-flash", "req-lost-1", 1)
    await harness.queue.start()
    try:
        await harness.delivered(1)
        assert FAILURE_REPLIES[Failure.UNCONFIRMED] in harness.recorder.sent[0][1].text
        assert fake.creates == []  # not sent a second time
        assert any("req-lost-1" in text for text, _key in harness.admin_notes)  # to look up and check
    finally:
        await harness.queue.stop()
