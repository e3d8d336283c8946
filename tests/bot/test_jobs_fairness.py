"""The shared GPU queue's fairness policy: pictures go ahead of waiting videos, but never more
than `max_overtakes` in a row, so videos are not starved either. Pure ordering, then a real JobQueue."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.jobs import Job, JobRequest, JobState, pick_next, run_order
from bot.messages import ChatRef
from tests.conftest import wait_until
from tests.support.job_doubles import make_queue

ROOM = ChatRef("family@chatroom", is_room=True)
PRIORITY = {"image": 1, "video": 0}


def job(job_id: int, kind: str) -> Job:
    request = JobRequest(kind=kind, params={"tag": f"{kind}{job_id}"}, seed=0, asker_id="alice",
                         asker_name="妈妈", chat=ROOM, message_id=f"m{job_id}")
    return Job(id=job_id, request=request, state=JobState.QUEUED, attempts=0, created_at=0.0)


def kinds(jobs: list[Job]) -> str:
    return " ".join(f"{j.request.kind[0]}{j.id}" for j in jobs)


def test_images_go_ahead_of_older_videos() -> None:
    waiting = [job(1, "video"), job(2, "video"), job(3, "image"), job(4, "image")]
    assert kinds(run_order(waiting, PRIORITY)) == "i3 i4 v1 v2"


def test_a_video_waits_behind_at_most_max_overtakes_images() -> None:
    waiting = [job(1, "video")] + [job(i, "image") for i in range(2, 9)] + [job(9, "video")]
    # v9 is newer than i5-i8: they are not overtaking it
    assert kinds(run_order(waiting, PRIORITY, max_overtakes=3)) == "i2 i3 i4 v1 i5 i6 i7 i8 v9"


def test_overtakes_carry_over_between_picks() -> None:
    waiting = [job(1, "video"), job(5, "image")]
    assert pick_next(waiting, PRIORITY, overtakes=3, max_overtakes=4) == (waiting[1], 4)
    assert pick_next(waiting, PRIORITY, overtakes=4, max_overtakes=4) == (waiting[0], 0)


def test_one_kind_alone_is_first_come_first_served() -> None:
    assert kinds(run_order([job(3, "video"), job(1, "video"), job(2, "video")], PRIORITY)) == "v1 v2 v3"
    assert kinds(run_order([job(2, "image"), job(1, "image")], PRIORITY)) == "i1 i2"


class GatedKind:
    """Records start order; a job tagged in `gates` waits for its gate (a long video)."""

    def __init__(self, name: str, started: list[str], gates: dict[str, threading.Event]) -> None:
        self.name = name
        self.started = started
        self.gates = gates

    def request(self, params: Mapping[str, Any], seed: int | None) -> Mapping[str, Any]:
        return params  # plain params are this kind's request

    def check(self, params: Mapping[str, Any]) -> None:
        pass

    def run(self, request: JobRequest, output_stem: Path, on_step, should_stop) -> Path:
        tag = request.params["tag"]
        self.started.append(tag)
        gate = self.gates.get(tag)
        while gate is not None and not gate.is_set() and not should_stop():
            time.sleep(0.01)
        path = output_stem.with_suffix(".bin")
        path.write_text(tag)
        return path


async def test_queue_runs_a_picture_before_waiting_videos_and_tells_its_real_position(tmp_path: Path) -> None:
    started: list[str] = []
    gates = {"v1": threading.Event()}
    queue = make_queue(tmp_path)
    queue.register(GatedKind("video", started, gates), label="视频")
    queue.register(GatedKind("image", started, gates), label="图片", priority=1)
    await queue.start()
    try:
        def submit(kind: str, tag: str, message: str):
            return queue.submit(JobRequest(kind=kind, params={"tag": tag}, seed=1, asker_id="bob",
                                           asker_name="爸爸", chat=ROOM, message_id=message))

        await submit("video", "v1", "a")
        await wait_until(lambda: started == ["v1"])  # a long video is rendering
        await submit("video", "v2", "b")
        await submit("video", "v3", "c")
        receipt = await submit("image", "i1", "d")
        assert receipt.position == 2  # right after the running video, not behind v2 and v3
        assert [j.request.params["tag"] for j in queue.list()] == ["v1", "i1", "v2", "v3"]
        gates["v1"].set()
        await wait_until(lambda: len(started) == 4)
        assert started == ["v1", "i1", "v2", "v3"]
    finally:
        await queue.stop()
