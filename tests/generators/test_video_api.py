"""The hosted video APIs' protocols against fake 智谱 and DashScope servers built from the documented
shapes: a task created once, followed, its MP4 fetched and checked; every failure sorted into the
`Failure` the job side words for the asker and the admins; a photo fitted to each provider's rules."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generators.settings import VideoApiSettings, VideoEncode
from generators.video_api import (
    ApiFailure,
    Failure,
    TaskRecord,
    VideoApiClient,
    VideoApiRender,
    VideoApiRequest,
    provider_for,
)
from generators.video_api.media import check_mp4
from tests.support.fake_video_apis import FakeVideoApi, small_mp4


class MemoryLedger:
    """The TaskLedger in memory, with a log of what was written in which order."""

    def __init__(self, record: TaskRecord | None = None) -> None:
        self.record = record
        self.log: list[str] = []

    async def load(self) -> TaskRecord | None:
        return self.record

    async def creating(self, record: TaskRecord) -> None:
        self.record = record
        self.log.append("creating")

    async def created(self, task_id: str, created_at: float) -> None:
        from dataclasses import replace

        assert self.record is not None
        self.record = replace(self.record, task_id=task_id, created_at=created_at)
        self.log.append(f"created {task_id}")

    async def not_created(self) -> None:
        self.record = None
        self.log.append("not created")

    async def succeeded(self, video_url: str) -> None:
        from dataclasses import replace

        assert self.record is not None
        self.record = replace(self.record, video_url=video_url)
        self.log.append("succeeded")


@pytest.fixture(params=["zhipu", "dashscope"])
def fake(request) -> Iterator[FakeVideoApi]:
    with FakeVideoApi(request.param) as server:
        yield server


def render(fake: FakeVideoApi, tmp_path: Path, request: VideoApiRequest | None = None,
           ledger: MemoryLedger | None = None, stop=lambda: False, **settings) -> tuple[Path, MemoryLedger]:
    config = VideoApiSettings(provider=fake.provider, base_url=fake.base_url,
                              **{"poll_s": 0.05, "timeout_s": 10, **settings})
    ledger = ledger or MemoryLedger()

    async def main() -> Path:
        client = VideoApiClient(provider_for(fake.provider), fake.key, config.base_url)
        try:
            return await VideoApiRender(client, config, VideoEncode()).render(
                request or VideoApiRequest("A red fish swims in a blue lake."), ledger, tmp_path / "out.mp4",
                stop)
        finally:
            await client.close()

    return asyncio.run(main()), ledger


def failure_of(fake: FakeVideoApi, tmp_path: Path, **settings) -> ApiFailure:
    with pytest.raises(ApiFailure) as caught:
        render(fake, tmp_path, **settings)
    return caught.value


def test_text_to_video_creates_once_and_fetches_a_real_mp4(fake, tmp_path):
    fake.script(polls=2)
    path, ledger = render(fake, tmp_path)
    frames, fps = check_mp4(path)
    assert (frames, fps) == (16, 8.0)
    assert len(fake.creates) == 1 and fake.downloads == 1 and not fake.violations
    assert ledger.log == ["creating", "created task-1", "succeeded"]
    body = fake.creates[0]
    if fake.provider == "zhipu":
        assert body["model"] == "cogvideox-flash" and body["duration"] == 5 and len(body["request_id"]) == 32
    else:
        assert body["model"] == "wanx2.1-t2v-turbo" and body["input"]["prompt"].startswith("A red fish")


def test_a_task_in_the_ledger_is_followed_not_created_again(fake, tmp_path):
    fake.script(polls=0)
    _path, first = render(fake, tmp_path)
    resumed = MemoryLedger(TaskRecord(fake.provider, "m", "r", 1, task_id="task-1", created_at=time.time()))
    path, ledger = render(fake, tmp_path / "again", ledger=resumed)
    assert path.is_file() and len(fake.creates) == 1 and ledger.log == ["succeeded"]


def test_a_create_sent_but_never_answered_is_not_sent_again(fake, tmp_path):
    lost = MemoryLedger(TaskRecord(fake.provider, "m", "req-7", 1))  # creating written, no task id
    with pytest.raises(ApiFailure) as caught:
        render(fake, tmp_path, ledger=lost)
    assert caught.value.failure is Failure.UNCONFIRMED and "req-7" in str(caught.value)
    assert fake.creates == []


@pytest.mark.parametrize(("script", "failure"), [
    ({"create": ["refuse"]}, Failure.REFUSED),
    ({"create": ["no_balance"]}, Failure.ACCOUNT),
    ({"create": ["bad_key"]}, Failure.ACCOUNT),
    ({"create": ["garbage"]}, Failure.UNCONFIRMED),
    ({"result": "gone"}, Failure.GONE),
    ({"result": "not_mp4"}, Failure.BAD_ANSWER),
    ({"tasks": ["fail"]}, Failure.FAILED),
])
def test_each_failure_is_sorted_for_its_audience(fake, tmp_path, script, failure):
    fake.script(polls=0, **script)
    assert failure_of(fake, tmp_path).failure is failure
    refused_at_create = script.get("create", ["ok"])[0] in ("refuse", "no_balance", "bad_key")
    assert not fake.paid_tasks or not refused_at_create
    assert len(fake.creates) == (2 if failure is Failure.FAILED else 1)  # a FAIL is tried once more


def test_throttling_and_overload_are_retried_with_backoff(fake, tmp_path):
    fake.script(create=["throttle", "overload", "ok"], polls=0)
    started = time.monotonic()
    path, ledger = render(fake, tmp_path)
    assert path.is_file() and len(fake.tasks) == 1 and len(fake.creates) == 3
    assert time.monotonic() - started >= 2.4  # 1 s then 2 s (jittered by 20 %)
    assert ledger.log.count("not created") == 2


def test_a_failed_task_is_created_once_more(fake, tmp_path):
    fake.script(tasks=["fail", "ok"], polls=0)
    path, ledger = render(fake, tmp_path)
    assert path.is_file() and len(fake.tasks) == 2 and fake.paid_tasks == ["task-2"]
    assert ledger.record is not None and ledger.record.attempt == 2


def test_a_task_that_never_finishes_ends_at_timeout(fake, tmp_path):
    fake.script(tasks=["stuck"])
    started = time.monotonic()
    assert failure_of(fake, tmp_path, timeout_s=1.5).failure is Failure.TIMEOUT
    assert time.monotonic() - started < 4


def test_a_poll_that_hangs_ends_at_timeout(fake, tmp_path):
    fake.script(hang_polls=True)
    started = time.monotonic()
    assert failure_of(fake, tmp_path, timeout_s=1.5).failure is Failure.TIMEOUT
    assert time.monotonic() - started < 4


def test_a_result_over_the_download_cap_is_refused(fake, tmp_path):
    fake.big_mp4 = small_mp4(frames=24, height=240, width=320, noise=True)
    fake.script(polls=0, result="big")
    assert len(fake.big_mp4) > 300_000
    assert failure_of(fake, tmp_path, max_download_mb=0.2).failure is Failure.TOO_BIG


def test_a_result_over_max_mp4_mb_is_re_encoded_under_it(fake, tmp_path):
    fake.big_mp4 = small_mp4(frames=24, height=240, width=320, noise=True)
    fake.script(polls=0, result="big")
    config = VideoApiSettings(provider=fake.provider, base_url=fake.base_url, poll_s=0.05, timeout_s=10)

    async def main() -> Path:
        client = VideoApiClient(provider_for(fake.provider), fake.key, config.base_url)
        try:
            return await VideoApiRender(client, config, VideoEncode(max_mp4_mb=0.2)).render(
                VideoApiRequest("A cat."), MemoryLedger(), tmp_path / "out.mp4", lambda: False)
        finally:
            await client.close()

    path = asyncio.run(main())
    assert path.stat().st_size <= 200_000 < len(fake.big_mp4)
    assert check_mp4(path)[0] == 24


def test_a_stop_leaves_the_task_to_resume(fake, tmp_path):
    from generators.base import GenerationCancelled

    fake.script(tasks=["stuck"])
    deadline = time.monotonic() + 0.5
    with pytest.raises(GenerationCancelled):
        render(fake, tmp_path, stop=lambda: time.monotonic() > deadline)
    assert len(fake.creates) == 1


def _photo(width: int, height: int, mode: str = "RGBA", fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 200, 30) + ((128,) if mode == "RGBA" else ())).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(3000, 200), (200, 150), (640, 480)])
def test_a_photo_goes_as_base64_within_the_providers_rules(fake, tmp_path, size):
    from PIL import Image

    photo = tmp_path / "photo.png"
    photo.write_bytes(_photo(*size))
    fake.script(polls=0)
    path, _ledger = render(fake, tmp_path, VideoApiRequest("Make her smile.", photo=photo))
    assert path.is_file() and not fake.violations, fake.violations
    sent = fake.tasks["task-1"]["photo"]
    raw = base64.b64decode(sent.partition(";base64,")[2] if fake.provider == "dashscope" else sent)
    image = Image.open(io.BytesIO(raw))
    assert image.mode == "RGB" and image.format == "JPEG"
    if fake.provider == "dashscope":
        assert all(360 <= side <= 2000 for side in image.size)
        assert fake.creates[0]["model"] == "wanx2.1-i2v-turbo"


def test_a_broken_photo_is_bad_photo_and_nothing_is_created(fake, tmp_path):
    fake.script(polls=0)
    with pytest.raises(ApiFailure) as caught:
        render(fake, tmp_path, VideoApiRequest("Move.", photo=b"not a picture"))
    assert caught.value.failure is Failure.BAD_PHOTO and fake.creates == []


def test_a_long_prompt_is_cut_after_a_whole_sentence_within_the_limit(fake, tmp_path):
    prompt = " ".join(f"Sentence number {i} describes the slow camera motion." for i in range(40))
    fake.script(polls=0)
    render(fake, tmp_path, VideoApiRequest(prompt))
    sent = fake.creates[0].get("prompt") or fake.creates[0]["input"]["prompt"]
    assert sent.endswith(".") and len(sent) <= (512 if fake.provider == "zhipu" else 800)


def test_prices_follow_the_models():
    assert VideoApiSettings().price_yuan() == 0.0  # cogvideox-flash
    assert VideoApiSettings(model="cogvideox-3").price_yuan() == 1.0
    assert VideoApiSettings(provider="dashscope").price_yuan() == pytest.approx(1.2)  # 0.24 x 5 s
    assert VideoApiSettings(provider="dashscope", photo_model="wanx2.1-i2v-plus").price_yuan(True) == 3.5
    assert VideoApiSettings(model="cogvideox-9").price_yuan() is None


def test_a_photo_file_that_is_gone_is_bad_photo(fake, tmp_path):
    with pytest.raises(ApiFailure) as caught:
        render(fake, tmp_path, VideoApiRequest("Move.", photo=tmp_path / "cleaned-up.jpg"))
    assert caught.value.failure is Failure.BAD_PHOTO and fake.creates == []
