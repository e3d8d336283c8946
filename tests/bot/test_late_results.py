"""The one rule for a render that comes back after its job ended without it (given up on, cancelled),
on the real queue, store and outbox: delivered once if the asker has not been told how the job ended,
else kept on the job's row for the admins; a job that runs again collects its own result."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.jobs import JobState
from tests.bot.test_jobs import FakeKind, make_queue, request
from tests.conftest import wait_until
from tests.support.job_doubles import Recorder


async def failed_job(tmp_path: Path, recorder: Recorder):
    queue = make_queue(tmp_path, recorder, FakeKind())
    await queue.start()
    receipt = await queue.submit(request("a", fail="generator"))
    job_id = receipt.job.id
    await wait_until(lambda: queue.get(job_id).state is JobState.FAILED, 5)
    late = tmp_path / "media" / "fake" / "late.mp4"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_bytes(b"mp4")
    return queue, job_id, late


async def test_a_late_result_reaches_an_asker_who_was_not_told_it_failed(tmp_path: Path):
    recorder = Recorder()
    recorder.down = True  # the failure notice is still waiting for the channel
    queue, job_id, late = await failed_job(tmp_path, recorder)
    try:
        assert await queue.late_result(job_id, late) == "delivering"
        recorder.down = False
        await wait_until(lambda: recorder.has(1, files=1), 5)
        [(_, reply)] = recorder.sent
        assert reply.file == late and reply.text == "好了：a"  # the caption, never the failure
        assert queue.get(job_id).state is JobState.DONE
        await wait_until(lambda: queue.get(job_id).delivered_at is not None, 5)
        assert await queue.late_result(job_id, late) == "kept"  # a second copy is not sent again
        await asyncio.sleep(0.3)
        assert len(recorder.sent) == 1
    finally:
        await queue.stop()


async def test_a_late_result_after_the_failure_went_out_is_kept_on_the_row(tmp_path: Path):
    recorder = Recorder()
    queue, job_id, late = await failed_job(tmp_path, recorder)
    try:
        await wait_until(lambda: queue.get(job_id).delivered_at is not None, 5)
        assert await queue.late_result(job_id, late) == "kept"
        job = queue.get(job_id)
        assert job.state is JobState.FAILED and job.result == late
        await asyncio.sleep(0.3)
        assert [r.file for _, r in recorder.sent] == [None] and "没有生成成功" in recorder.texts()[0]
    finally:
        await queue.stop()


async def test_a_late_result_while_the_failure_is_being_sent_goes_out_too(tmp_path: Path):
    """The outbox took the failure before the flip and marks it delivered after: the file still goes."""
    recorder = Recorder()
    recorder.down = True
    queue, job_id, late = await failed_job(tmp_path, recorder)
    try:
        assert queue.store.take_late_result(job_id, str(late)) == "delivering"
        assert not queue.store.mark_delivered(job_id, time.time(), JobState.FAILED)  # the failure's mark
        assert queue.get(job_id).delivered_at is None
    finally:
        await queue.stop()


async def test_a_job_that_runs_again_collects_its_own_result(tmp_path: Path):
    queue = make_queue(tmp_path, Recorder(), FakeKind())  # not started: the job stays queued
    receipt = await queue.submit(request("a"))
    try:
        assert await queue.late_result(receipt.job.id, tmp_path / "x.mp4") == "pending"
        assert queue.get(receipt.job.id).result is None
    finally:
        queue.store.close()
