"""The worker-backend seam, driven through the interface by a scripted backend (tests/support/job_doubles):
the queue hands a kind's jobs to the first backend that handles it, takes the file back, reports
progress, failures and cancellation, and counts live workers in the ETA."""

from __future__ import annotations

import pytest

from bot.jobs import JobRequest, JobState, Limits, LocalBackend
from bot.messages import ChatRef
from generators.base import GeneratorError
from tests.conftest import wait_until
from tests.support.job_doubles import FakeBackend, Recorder, make_queue

ROOM = ChatRef("family@chatroom", is_room=True)


class LocalOnly:
    """A kind the local backend runs; the fake backend must never need it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran: list[str] = []

    def request(self, params, seed):
        return params  # plain params are this kind's request

    def check(self, params) -> None:
        return None

    def run(self, request, output_stem, on_step, should_stop):
        self.ran.append(request.params["prompt"])
        path = output_stem.with_suffix(".bin")
        path.write_text("local")
        return path


def job(kind: str, prompt: str, asker: str = "bob") -> JobRequest:
    return JobRequest(kind, {"prompt": prompt}, 3, asker, asker, ROOM, f"m-{kind}-{prompt}",
                      f"好了：{prompt}")


@pytest.fixture
async def wired(tmp_path):
    recorder, fake = Recorder(), FakeBackend({"video"})
    video, image = LocalOnly("video"), LocalOnly("image")
    queue = make_queue(tmp_path, recorder, [video, image], [fake, LocalBackend()])
    await queue.start()
    yield queue, recorder, fake, video, image
    await queue.stop()


async def test_jobs_go_to_the_backend_that_handles_their_kind(wired):
    queue, recorder, fake, video, image = wired
    assert fake.started
    await queue.submit(job("video", "熊猫"))
    await queue.submit(job("image", "小猫", asker="carol"))
    await wait_until(lambda: recorder.has(2, files=2), 5)
    assert fake.executed == ["video:family@chatroom:1"] and video.ran == []  # the kind never ran here
    assert image.ran == ["小猫"]
    by_text = {reply.text: reply for _, reply in recorder.sent}
    assert by_text["好了：熊猫"].file.read_text(encoding="utf-8") == "熊猫"
    assert by_text["好了：熊猫"].file.parent == queue.media_dir / "video"
    assert fake.checked == [{"prompt": "熊猫"}]  # validated by the backend before it was stored


async def test_a_backend_failure_reaches_the_asker_and_the_queue_goes_on(wired):
    queue, recorder, fake, _video, _image = wired
    fake.fail_with = "工作机显存不够"
    await queue.submit(job("video", "a", asker="u1"))
    await wait_until(lambda: len(recorder.sent) == 1, 5)
    fake.fail_with = None
    await queue.submit(job("video", "b", asker="u2"))
    await wait_until(lambda: len(recorder.sent) == 2, 5)
    assert "没有生成成功" in recorder.texts()[0] and "工作机显存不够" in recorder.texts()[0]
    assert recorder.texts()[1] == "好了：b" and recorder.sent[0][1].mention_ids == ("u1",)


async def test_a_refusing_check_stores_nothing(wired):
    queue, _recorder, fake, _video, _image = wired
    fake.refuse = "帧数不对"
    with pytest.raises(GeneratorError, match="帧数不对"):
        await queue.submit(job("video", "x"))
    assert queue.store.get(1) is None and fake.executed == []


async def test_progress_and_cancellation_through_the_backend(wired):
    queue, recorder, fake, _video, _image = wired
    fake.hold.clear()  # the worker keeps the job until released or stopped
    receipt = await queue.submit(job("video", "慢"))
    await wait_until(lambda: fake.executed, 5)
    await queue.cancel(receipt.job.id)
    await wait_until(lambda: len(recorder.sent) == 1, 5)
    assert queue.get(receipt.job.id).state is JobState.CANCELLED and "已取消" in recorder.texts()[0]
    fake.hold.set()
    second = await queue.submit(job("video", "快"))
    await wait_until(lambda: len(recorder.sent) == 2, 5)
    assert queue.get(second.job.id).state is JobState.DONE


async def test_eta_counts_the_live_workers_and_says_when_there_are_none(tmp_path):
    fake = FakeBackend({"video"}, slots=2)
    fake.hold.clear()
    queue = make_queue(tmp_path, Recorder(), [LocalOnly("video")], [fake])
    queue.store.recent_durations = lambda kind, profile="", count=5: [60.0]  # jobs like these took 60 s here
    await queue.start()
    try:
        limits = Limits(seconds_per_job=60)
        for prompt in "abc":
            await queue.submit(job("video", prompt, asker=prompt), limits)
        await wait_until(lambda: len(fake.executed) == 2, 5)  # two workers, two jobs at once
        fourth = await queue.submit(job("video", "d", asker="d"), limits)
        assert fourth.live_workers == 2 and fourth.eta_s <= 150  # ~4 jobs over 2 workers, not 4 in a row
        fake.workers = 0
        fifth = await queue.submit(job("video", "e", asker="e"), limits)
        assert fifth.live_workers == 0
        assert queue.status()["slots"] == 2
        fake.hold.set()
    finally:
        await queue.stop()
    assert fake.stopped


async def test_each_backend_runs_at_most_its_slots_and_a_claimed_job_really_runs(tmp_path):
    recorder, api, local = Recorder(), FakeBackend({"video"}, slots=2), FakeBackend({"image"}, slots=1)
    api.hold.clear()
    local.hold.clear()
    queue = make_queue(tmp_path, recorder, [LocalOnly("video"), LocalOnly("image")], [api, local])
    await queue.start()  # two workers: the larger of the backends' slots
    try:
        for n in range(3):  # the pictures first: both workers would take one without the slot rule
            await queue.submit(job("image", f"i{n}", asker=f"b{n}"))
        for n in range(3):
            await queue.submit(job("video", f"v{n}", asker=f"a{n}"))
        await wait_until(lambda: len(api.executed) + len(local.executed) == 2, 5)
        running = [j for j in queue.list() if j.state is JobState.RUNNING]
        assert len(running) == 2 and (len(local.executed), len(api.executed)) == (1, 1)
        api.hold.set()
        local.hold.set()
        await wait_until(lambda: recorder.has(6, files=6), 10)
    finally:
        await queue.stop()
