"""The GPU job queue on its own: order, one job at a time, failures, cancellation, limits, delivery
retries, restart recovery (including a real kill -9) and media retention. Fast: no models, tiny files."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.jobs import (
    CANCELLED_TEXT,
    RESTART_REASON,
    JobQueue,
    JobRequest,
    JobState,
    JobStore,
    Limits,
    QueueLimitReached,
    describe,
)
from bot.messages import ChatRef
from generators.base import GenerationCancelled, GeneratorError
from tests.conftest import wait_until
from tests.support.job_doubles import Recorder as Outbox
from tests.support.job_doubles import make_queue as compose_queue

ROOM = ChatRef("family@chatroom", is_room=True)
OTHER_ROOM = ChatRef("other@chatroom", is_room=True)
REPO = Path(__file__).resolve().parents[2]


class FakeKind:
    """Writes a small file; behaviour per job is scripted through params."""

    name = "fake"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def request(self, params: Mapping[str, Any], seed: int | None) -> Mapping[str, Any]:
        return params  # plain params are this kind's request

    def check(self, params: Mapping[str, Any]) -> None:
        if params.get("bad"):
            raise GeneratorError("参数不对：bad")

    def run(self, request: JobRequest, output_stem: Path, on_step, should_stop) -> Path:
        tag = request.params["tag"]
        with self._lock:
            self.started.append(tag)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            gate = self.gates.get(tag)
            for step in range(1, 4):
                while gate is not None and not gate.is_set():
                    if should_stop():
                        raise GenerationCancelled("stopped")
                    time.sleep(0.01)
                if should_stop():
                    raise GenerationCancelled("stopped")
                on_step(step, 3)
                time.sleep(request.params.get("sleep", 0.01))
            if request.params.get("fail") == "generator":
                raise GeneratorError("显卡内存不够")
            if request.params.get("fail") == "crash":
                raise RuntimeError("boom")
            path = output_stem.with_suffix(".bin")
            path.write_text(f"{tag}:{request.seed}")
            return path
        finally:
            with self._lock:
                self.running -= 1


def request(tag: str, *, asker: str = "alice", chat: ChatRef = ROOM, message_id: str | None = None,
            **params: Any) -> JobRequest:
    return JobRequest(kind="fake", params={"tag": tag, **params}, seed=7, asker_id=asker, asker_name="妈妈",
                      chat=chat, message_id=message_id or f"msg-{tag}", caption=f"好了：{tag}")


def make_queue(data_dir: Path, outbox: Outbox | None, kind: FakeKind | None = None,
               **kwargs: Any) -> JobQueue:
    return compose_queue(data_dir, outbox, [kind or FakeKind()], **kwargs)


@pytest.fixture
async def setup(tmp_path: Path):
    outbox, kind = Outbox(), FakeKind()
    queue = make_queue(tmp_path, outbox, kind)
    await queue.start()
    yield queue, outbox, kind
    await queue.stop()


async def test_job_runs_and_result_is_posted_with_mention_and_caption(setup):
    queue, outbox, _ = setup
    receipt = await queue.submit(request("a"))
    assert receipt.position == 1 and not receipt.duplicate
    await wait_until(lambda: outbox.has(1, files=1), 5)
    chat, reply = outbox.sent[0]
    assert chat == ROOM and reply.mention_ids == ("alice",) and reply.text == "好了：a"
    assert reply.file is not None and reply.file.read_text() == "a:7"
    assert reply.file.parent == queue.media_dir / "fake"
    await wait_until(lambda: queue.get(receipt.job.id).delivered_at is not None, 5)  # stored after the send
    assert queue.get(receipt.job.id).state is JobState.DONE


async def test_three_jobs_run_one_at_a_time_and_arrive_in_order(setup):
    queue, outbox, kind = setup
    for tag in "abc":
        await queue.submit(request(tag, asker=f"user-{tag}", sleep=0.05))
    await wait_until(lambda: len(outbox.sent) == 3, 10)
    assert outbox.texts() == ["好了：a", "好了：b", "好了：c"]
    assert kind.started == ["a", "b", "c"] and kind.max_running == 1


async def test_position_and_eta(tmp_path: Path):
    outbox, kind = Outbox(), FakeKind()
    queue = make_queue(tmp_path, outbox, kind)
    await queue.start()
    try:
        kind.gates["a"] = threading.Event()
        limits = Limits()
        unmeasured = await queue.submit(request("a", asker="u1"), limits)
        assert unmeasured.eta_s is None  # no job like it has run yet: no number
        await wait_until(lambda: kind.started == ["a"], 5)
        for n in range(3):  # three earlier runs of 10 s each, as the store would have them
            earlier, _ = queue.store.insert(request(f"old{n}"), limits, now=0, since=0, day="d", label="测试")
            queue.store.set_state(earlier.id, JobState.DONE, started_at=100.0, finished_at=110.0)
        await queue.submit(request("b", asker="u2"), limits)
        third = await queue.submit(request("c", asker="u3"), limits)
        assert third.position == 3
        assert 21 <= third.eta_s <= 30  # the running one counts as (almost) a whole job, then two more
        fourth = await queue.submit(request("d", asker="u4"), limits)
        assert (fourth.position, fourth.eta_s) == (4, pytest.approx(third.eta_s + 10, abs=1))
        listing = [describe(job, queue.label(job.request.kind)) for job in queue.list()]
        assert listing[0].startswith("#1 测试 妈妈 生成中") and "排队中" in listing[1]
        kind.gates["a"].set()
    finally:
        await queue.stop()


async def test_generator_error_is_reported_and_next_job_still_runs(setup):
    queue, outbox, _ = setup
    await queue.submit(request("bad", fail="generator", asker="u1"))
    await queue.submit(request("crash", fail="crash", asker="u2"))
    await queue.submit(request("good", asker="u3"))
    await wait_until(lambda: outbox.has(3, files=1), 10)
    texts = outbox.texts()
    assert "没有生成成功" in texts[0] and "显卡内存不够" in texts[0]
    assert "没有生成成功" in texts[1] and "boom" not in texts[1]  # internals are logged, not shown
    assert texts[2] == "好了：good" and outbox.sent[2][1].file is not None
    assert all(reply.mention_ids == (f"u{i + 1}",) for i, (_, reply) in enumerate(outbox.sent))


async def test_bad_params_are_refused_before_anything_is_stored(setup):
    queue, _, _ = setup
    with pytest.raises(GeneratorError, match="bad"):
        await queue.submit(request("x", bad=True))
    with pytest.raises(GeneratorError, match="还没有开通"):
        await queue.submit(JobRequest("image", {}, 1, "a", "A", ROOM, "m1"))
    assert queue.list() == [] and queue.store.get(1) is None


async def test_cancel_queued_and_running_jobs(setup):
    queue, outbox, kind = setup
    kind.gates["slow"] = threading.Event()  # never opened: only cancellation ends it
    running = await queue.submit(request("slow", asker="u1"))
    waiting = await queue.submit(request("waiting", asker="u2"))
    await queue.submit(request("after", asker="u3"))
    await wait_until(lambda: kind.started == ["slow"], 5)
    assert (await queue.cancel(waiting.job.id)).id == waiting.job.id
    assert (await queue.cancel(running.job.id)) is not None
    await wait_until(lambda: len(outbox.sent) == 3, 10)
    assert kind.started == ["slow", "after"]  # the cancelled queued job never ran
    cancelled = {CANCELLED_TEXT.format(what="测试", id=running.job.id),
                 CANCELLED_TEXT.format(what="测试", id=waiting.job.id)}
    assert set(outbox.texts()[:2]) == cancelled and outbox.texts()[2] == "好了：after"
    assert queue.get(running.job.id).state is JobState.CANCELLED
    assert await queue.cancel(running.job.id) is None  # not pending any more
    assert await queue.cancel(9999) is None


async def test_pending_limit_daily_quota_and_duplicates(setup):
    queue, outbox, kind = setup
    kind.gates["a1"] = threading.Event()
    limits = Limits(max_pending_per_user=2, daily_quota_per_chat=3)
    await queue.submit(request("a1"), limits)
    await queue.submit(request("a2"), limits)
    with pytest.raises(QueueLimitReached, match="每人最多同时 2 个"):
        await queue.submit(request("a3"), limits)
    again = await queue.submit(request("a1"), limits)  # the same message id, replayed
    assert again.duplicate and again.job.id == 1
    await queue.submit(request("b1", asker="bob"), limits)
    with pytest.raises(QueueLimitReached, match="本群今天的测试额度（3 个）用完啦"):
        await queue.submit(request("c1", asker="carol"), limits)
    await queue.submit(request("c1", asker="carol", chat=OTHER_ROOM), limits)  # other room, own quota
    kind.gates["a1"].set()
    await wait_until(lambda: len(outbox.sent) == 4, 10)
    await queue.submit(request("a4"), Limits(max_pending_per_user=2))  # pending slots are free again
    with pytest.raises(QueueLimitReached, match="你今天的测试额度（3 个）"):
        await queue.submit(request("a5"), Limits(daily_quota_per_user=3))


async def test_ack_is_sent_before_the_job_can_start(setup):
    queue, outbox, kind = setup
    events: list[str] = []

    async def ack(receipt) -> None:
        events.append(f"ack {receipt.position}")
        await asyncio.sleep(0.3)
        events.append("ack sent")

    await queue.submit(request("a"), on_accepted=ack)
    await wait_until(lambda: len(outbox.sent) == 1, 5)
    assert events == ["ack 1", "ack sent"] and kind.started == ["a"]


async def test_results_wait_while_the_channel_is_down_and_keep_their_order(setup):
    queue, outbox, _ = setup
    outbox.down = True
    for tag in "ab":
        await queue.submit(request(tag, asker=f"u-{tag}"))
    await wait_until(lambda: all(queue.get(i).state is JobState.DONE for i in (1, 2)), 5)
    await wait_until(lambda: outbox.attempts >= 3, 5)  # retried, nothing lost
    outbox.down = False
    await wait_until(lambda: len(outbox.sent) == 2, 5)
    assert outbox.texts() == ["好了：a", "好了：b"]


async def test_undeliverable_result_becomes_a_text_notice(tmp_path: Path):
    class Picky(Outbox):
        async def deliver(self, chat, reply) -> bool:
            self.attempts += 1
            if reply.file is not None:
                return False  # e.g. the gateway refuses the file while connected
            self.sent.append((chat, reply))
            return True

    outbox = Picky()
    queue = make_queue(tmp_path, outbox, max_delivery_failures=2)
    await queue.start()
    try:
        await queue.submit(request("big"))
        await queue.submit(request("next", asker="bob"))
        await wait_until(lambda: len(outbox.sent) == 4, 10)
    finally:
        await queue.stop()
    texts = outbox.texts()  # each caption went out once, then the notice that its file could not
    assert texts[0] == texts[2].replace("next", "big") and "发不出来" in texts[1] and "发不出来" in texts[3]


async def test_a_retry_after_the_upload_failed_sends_the_file_alone(tmp_path: Path):
    class DropsMidUpload(Outbox):
        """The gateway took the caption, then dropped during the file's upload, once."""

        async def deliver(self, chat, reply) -> bool:
            self.attempts += 1
            if reply.file is not None and not self.dropped:
                self.dropped = True
                return False
            return await super().deliver(chat, reply)

    outbox = DropsMidUpload()
    outbox.dropped = False
    queue = make_queue(tmp_path, outbox)
    await queue.start()
    try:
        receipt = await queue.submit(request("a"))
        await wait_until(lambda: (job := queue.get(receipt.job.id)) is not None and job.delivered_at, 10)
    finally:
        await queue.stop()
    captions = [reply for _, reply in outbox.calls if reply.text == "好了：a"]
    files = [reply for _, reply in outbox.calls if reply.file is not None]
    assert len(captions) == 1 and captions[0].mention_ids == ("alice",) and len(files) == 1
    assert files[0].text == "", outbox.calls


async def test_graceful_stop_requeues_the_running_job(tmp_path: Path):
    outbox, kind = Outbox(), FakeKind()
    kind.gates["a"] = threading.Event()
    first = make_queue(tmp_path, outbox, kind)
    await first.start()
    await first.submit(request("a"))
    await first.submit(request("b", asker="bob"))
    await wait_until(lambda: kind.started == ["a"], 5)
    await first.stop(grace_s=5)
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    assert [j.state for j in reopened.pending()] == [JobState.QUEUED] * 2
    reopened.close()

    second_kind = FakeKind()
    second = make_queue(tmp_path, outbox, second_kind)
    await second.start()
    try:
        await wait_until(lambda: len(outbox.sent) == 2, 10)
        assert second.store.get(1).attempts == 1  # the interrupted run did not count
    finally:
        await second.stop()
    assert outbox.texts() == ["好了：a", "好了：b"] and second_kind.started == ["a", "b"]


async def test_crash_mid_run_recovers_every_job(tmp_path: Path):
    """Simulated crash: the loops die without any bookkeeping; a new queue over the same folder."""
    outbox, kind = Outbox(), FakeKind()
    kind.gates["a"] = threading.Event()
    first = make_queue(tmp_path, outbox, kind)
    await first.start()
    for tag in "abc":
        await first.submit(request(tag, asker=f"u-{tag}"))
    await wait_until(lambda: kind.started == ["a"], 5)
    for task in first._tasks:  # the process "dies": no stop(), rows stay as they are
        task.cancel()
    await asyncio.gather(*first._tasks, return_exceptions=True)
    kind.gates["a"].set()

    second = make_queue(tmp_path, outbox)
    await second.start()
    try:
        await wait_until(lambda: len(outbox.sent) == 3, 10)
    finally:
        await second.stop()
    assert outbox.texts() == ["好了：a", "好了：b", "好了：c"]


async def test_job_that_keeps_killing_the_process_fails_with_a_message(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job, _ = store.insert(request("a"), Limits(), now=time.time(), since=0.0, day="", label="测试")
    store.set_state(job.id, JobState.RUNNING, attempts=2)  # died twice while running it
    store.close()
    outbox = Outbox()
    queue = make_queue(tmp_path, outbox)
    await queue.start()
    try:
        await wait_until(lambda: len(outbox.sent) == 1, 5)
    finally:
        await queue.stop()
    assert RESTART_REASON in outbox.texts()[0] and outbox.sent[0][1].mention_ids == ("alice",)


CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from bot.messages import ChatRef
    from bot.jobs import JobQueue, JobRequest, JobStore, Outbox

    class Slow:
        name = "fake"
        def request(self, params, seed): return params
        def check(self, params): pass
        def run(self, request, stem, on_step, should_stop):
            print("running", request.params["tag"], flush=True)
            time.sleep(60)

    async def down(chat, reply):
        return False

    async def main():
        folder = Path(sys.argv[1])
        queue = JobQueue(JobStore(folder / "jobs.sqlite3"), media_dir=folder / "media", outbox=Outbox(down))
        queue.register(Slow(), label="测试")
        for tag in "ab":  # both stored before the worker starts, so "running a" means b waits too
            await queue.submit(JobRequest("fake", {"tag": tag}, 1, "u-" + tag, "妈妈",
                                          ChatRef("family@chatroom", True), "m-" + tag, "好了：" + tag))
        await queue.start()
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def test_kill_minus_nine_loses_no_job(tmp_path: Path):
    child = subprocess.Popen(  # noqa: ASYNC220 - a child to SIGKILL, not awaited work
        [sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert line.strip() == "running a"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    outbox = Outbox()
    queue = make_queue(tmp_path, outbox)
    await queue.start()
    try:
        await wait_until(lambda: len(outbox.sent) == 2, 10)
    finally:
        await queue.stop()
    assert outbox.texts() == ["好了：a", "好了：b"]


async def test_old_media_is_removed_but_recent_and_pending_kept(tmp_path: Path):
    outbox, kind = Outbox(), FakeKind()
    queue = make_queue(tmp_path, outbox, kind, cleanup_interval_s=3600)
    await queue.start()
    try:
        receipt = await queue.submit(request("a"))
        await wait_until(lambda: outbox.has(1, files=1), 5)
        path = outbox.sent[0][1].file
        stray = queue.media_dir / "fake" / "partial.tmp"
        stray.write_text("x")
        assert queue.retention.cleanup(now=time.time()) == 0  # young files stay
        os.utime(stray, (time.time() - 7200, time.time() - 7200))
        assert queue.retention.cleanup(now=time.time() + 7200) == 2
        assert not path.exists() and not stray.exists()
        assert queue.get(receipt.job.id).result is None
    finally:
        await queue.stop()


async def test_without_an_outbox_results_are_kept_for_polling(tmp_path: Path):
    queue = make_queue(tmp_path, None)
    await queue.start()
    try:
        receipt = await queue.submit(request("a"))
        await wait_until(lambda: queue.get(receipt.job.id).state is JobState.DONE, 5)
        job = queue.get(receipt.job.id)
        assert job.result.read_text() == "a:7"
        assert job.delivered_at is None  # nobody posts it; the poller marks it (see the video service)
        assert queue.status()["queued"] == 0
    finally:
        await queue.stop()


async def test_cancel_between_claim_and_run_still_stops_the_job(tmp_path: Path):
    """A job marked running whose worker has not reached `kind.run` yet must still be stoppable."""
    outbox, kind = Outbox(), FakeKind()
    queue = make_queue(tmp_path, outbox, kind)  # not started: the test plays the worker itself
    try:
        receipt = await queue.submit(request("a"))
        job = await queue._claim()
        assert job is not None and job.state is JobState.RUNNING
        assert await queue.cancel(receipt.job.id) is not None
        await queue._run(job)
        assert queue.get(receipt.job.id).state is JobState.CANCELLED
        assert not list((tmp_path / "media" / "fake").glob("*.bin"))  # no result was made
    finally:
        queue.store.close()


class StubbornKind(FakeKind):
    """Notices should_stop only once `release` is set (a model step that takes a while)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self, request: JobRequest, output_stem: Path, on_step, should_stop) -> Path:
        self.started.append(request.params["tag"])
        self.release.wait(10)
        if should_stop():
            raise GenerationCancelled("stopped")
        path = output_stem.with_suffix(".bin")
        path.write_text("done")
        return path


async def test_a_job_the_asker_cancelled_is_not_requeued_by_a_shutdown(tmp_path: Path):
    outbox, kind = Outbox(), StubbornKind()
    queue = make_queue(tmp_path, outbox, kind)
    await queue.start()
    receipt = await queue.submit(request("a"))
    await wait_until(lambda: kind.started == ["a"], 5)
    await queue.cancel(receipt.job.id)  # the asker's stop; the step in progress ends first
    stopping = asyncio.create_task(queue.stop(grace_s=5))
    await asyncio.sleep(0.1)
    kind.release.set()
    await stopping
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    try:
        assert reopened.get(receipt.job.id).state is JobState.CANCELLED  # not queued to run again
    finally:
        reopened.close()


async def test_delivery_reads_the_database_and_disk_off_the_event_loop(setup):
    queue, outbox, _ = setup
    on_loop: list[bool] = []
    reads = queue.store.deliver_failures

    def recording(job_id: int) -> int:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return reads(job_id)

    queue.store.deliver_failures = recording
    await queue.submit(request("a"))
    await wait_until(lambda: len(outbox.sent) == 1, 5)
    assert on_loop == [False]
