"""The console, `#状态` and `xiaoai doctor` quote the same measured time for a video and a picture on this
machine, read from the job store's own finished jobs with the model and preset in force; with nothing
measured yet they say so instead of inventing a figure."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import AppConfig, Secrets, load
from bot.console.doctor import doctor_checks
from bot.jobs import JobRequest, JobState, JobStore
from bot.jobs.kinds.image import ImageKind
from bot.jobs.kinds.video import VideoKind
from bot.jobs.types import Limits
from bot.messages import ChatRef
from tests.bot.ops_doubles import ADMIN, make_app, message
from tests.bot.test_console_api import CONFIG, Console

VIDEO_RUNS = [1000.0, 30.0, 40.0, 44.0, 36.0, 40.0]  # oldest first: the last five average 38 s


def _config(tmp_path: Path) -> AppConfig:
    """The file config each of the three readers starts from (the same data_dir as Console's)."""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load(path).model_copy(update={"data_dir": tmp_path / "data"})


def _finish(store: JobStore, kind: str, profile: str, seconds: float, number: int,
            state: JobState = JobState.DONE) -> None:
    request = JobRequest(kind=kind, params={"prompt": "熊猫"}, seed=1, asker_id="bob", asker_name="爸爸",
                         chat=ChatRef("family@chatroom", True), message_id=f"{kind}-{number}")
    job, _ = store.insert(request, Limits(), now=1000.0 + number, since=0.0, day="2026-12-07", label="视频",
                          profile=profile)
    started = 2000.0 + number * 2000
    store.set_state(job.id, state, started_at=started, finished_at=started + seconds)


def _measure(config: AppConfig) -> None:
    """Finished jobs as the queue records them: profiles from the kinds themselves, with a size."""
    video = VideoKind(lambda: config.video).profile({"num_frames": 49})
    fast = config.video.model_copy(update={"speed": config.video.speed.model_copy(update={"preset": "fast"})})
    other_preset = VideoKind(lambda: fast).profile({"num_frames": 49})
    store = JobStore(config.data_dir / "jobs.sqlite3")
    try:
        for number, seconds in enumerate(VIDEO_RUNS):
            _finish(store, "video", video, seconds, number)
        _finish(store, "video", other_preset, 5.0, 20)  # another preset: not this configuration's time
        _finish(store, "video", video, 3.0, 21, JobState.FAILED)  # a failed run measures nothing
        _finish(store, "image", ImageKind(lambda: config.image).profile({}), 12.0, 22)
    finally:
        store.close()


async def _console_details(tmp_path: Path) -> dict[str, str]:
    console = Console(tmp_path, None)
    try:
        await console.client.get("/admin/api/session")  # no password: a session on this machine
        status = (await console.client.get("/admin/api/status")).json()
    finally:
        await console.client.aclose()
        console.jobs.store.close()
    return {c["key"]: c["detail"] for c in status["checks"]}


async def _status_text(tmp_path: Path) -> str:
    app, channel = make_app(tmp_path, CONFIG)
    await app.dispatcher.on_message(message("#状态", sender=ADMIN, room=None))
    for _ in range(50):
        if channel.private_texts(ADMIN):
            break
        await asyncio.sleep(0.05)
    return channel.private_texts(ADMIN)[-1]


async def test_measured_jobs_give_the_same_figure_everywhere(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _measure(config)
    doctor = {c.key: c.as_dict()["detail"] for c in doctor_checks(config, Secrets())}
    console = await _console_details(tmp_path)
    status = await _status_text(tmp_path)
    video = "这台机器上最近 5 个平均 38 秒（CogVideoX-2b，默认速度）"
    picture = "这台机器上最近 1 个平均 12 秒（FLUX.1-schnell）"
    assert doctor["video_time"] == console["video_time"] == video
    assert doctor["image_time"] == console["image_time"] == picture
    assert f"视频用时：{video}" in status and f"图片用时：{picture}" in status, status
    assert "profile" not in status and "Kind" not in status


async def test_an_empty_store_says_nothing_was_measured_yet(tmp_path: Path) -> None:
    config = _config(tmp_path)
    doctor = {c.key: c for c in doctor_checks(config, Secrets())}
    assert not (config.data_dir / "jobs.sqlite3").exists(), "doctor never creates the bot's store"
    console = await _console_details(tmp_path)  # the console's own queue has just created an empty store
    status = await _status_text(tmp_path)
    video = "还没在这台机器上做过视频（CogVideoX-2b，默认速度）"
    assert doctor["video_time"].ok and doctor["video_time"].as_dict()["detail"] == video
    assert console["video_time"] == video and f"视频用时：{video}" in status
    assert "还没在这台机器上做过图片" in console["image_time"]
    assert doctor["video_time"].line("en").endswith("no videos made here yet (CogVideoX-2b, default speed)")


def test_a_cache_schedule_is_part_of_what_a_run_measured() -> None:
    """Preset fast's runs under another cache schedule (or FasterCache, before cachedit) are not this
    configuration's time; preset default's profile does not name a cache it does not use."""
    video = AppConfig.model_validate({}).video

    def profile(**speed: object) -> str:
        config = video.model_copy(update={"speed": video.speed.model_copy(update=speed)})
        return VideoKind(lambda: config).profile({"num_frames": 49})

    assert profile(preset="default") == profile(preset="default", cache_full_every=2)
    assert "cache=" not in profile(preset="default")
    assert profile(preset="fast") != profile(preset="fast", cache_full_every=2)
    assert profile(preset="default", cache="pab") != profile(preset="default")
