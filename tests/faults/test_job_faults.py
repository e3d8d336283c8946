"""Video jobs under faults, through the real `xiaoai run` process and a tiny CogVideoX folder loaded by
the production loader: requests racing the first heavy imports, and a disk that fills up."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import to_admin, wait_sent
from tests.intents.test_video_e2e import CAT, DOG, FISH, SMALL, script
from tests.support.peer import BOT, FAMILY, at

ADMIN = "carol"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


def video_overrides(model: Path, **extra) -> dict:
    return {"bot": {"admins": [ADMIN]}, "video": {"model_path": str(model), **SMALL, **extra}}


@pytest.mark.slow
def test_requests_right_after_start_are_all_queued(bot_process, peer, fake_llm, tiny_model):
    asks = {"alice": ("猫的视频", CAT), "bob": ("狗的视频", DOG), "carol": ("鱼的视频", FISH)}
    for key, prompt in asks.values():
        script(fake_llm, key, prompt)
    bot = bot_process(video_overrides(tiny_model))
    for user, (key, _prompt) in asks.items():  # within a few ms, before anything heavy was imported
        peer.say(user, at() + "生成" + key, room=FAMILY, mention=[BOT])
    for user in asks:
        wait_sent(peer, lambda m, u=user: "排队第" in (m.get("text") or "") and m["mentionIds"] == [u],
                  timeout=60)
    wait_sent(peer, lambda m: len([x for x in peer.sent() if x.get("file")]) >= 3, timeout=90)
    assert "ImportError" not in bot.log() and "cannot import name" not in bot.log()
    assert not [m for m in peer.sent() if "出了点" in (m.get("text") or "")]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path` (needs root: CAP_SYS_ADMIN), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); run as root")
    try:
        yield path
    finally:
        for _ in range(10):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:  # still busy: detach it now, the kernel frees it when the last user goes
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave_bytes: int) -> None:
    """Write a filler file until only about `leave_bytes` are free on `folder`'s file system."""
    import shutil

    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(0, free - leave_bytes))


@pytest.mark.slow
def test_full_media_disk_fails_the_job_and_tells_the_admin(bot_process, peer, fake_llm, tiny_model, tmp_path):
    script(fake_llm, "猫的视频", CAT)
    data_dir = tmp_path / "data"
    with tmpfs(data_dir / "media", "2m") as media:
        fill(media, 6_000)
        bot = bot_process(video_overrides(tiny_model, height=128, width=192), data_dir=data_dir)
        peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
        wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""), timeout=60)
        failure = wait_sent(peer, lambda m: m["room"] == FAMILY and (
            "没有生成成功" in (m.get("text") or "") or "做好啦" in (m.get("text") or "")), timeout=90)
        notice = wait_sent(peer, lambda m: to_admin(m, ADMIN) and "空间" in (m.get("text") or ""), timeout=20)
        bot.stop()
    assert "没有生成成功" in failure["text"] and "空间" in failure["text"], failure["text"]
    assert not [m for m in peer.sent() if m.get("file")]
    assert str(media) not in failure["text"]  # the path is for the admin
    assert "media" in notice["text"]


@pytest.mark.slow
def test_full_data_dir_is_reported_as_no_space(bot_process, peer, fake_llm, tiny_model, tmp_path):
    script(fake_llm, "猫的视频", CAT)
    with tmpfs(tmp_path / "data", "2m") as data_dir:
        bot = bot_process(video_overrides(tiny_model), data_dir=data_dir)
        fill(data_dir, 0)
        peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
        reply = wait_sent(peer, lambda m: m["room"] == FAMILY, timeout=60)
        notice = wait_sent(peer, lambda m: to_admin(m, ADMIN) and "空间" in (m.get("text") or ""), timeout=20)
        bot.stop()
    assert "空间" in reply["text"] and "排队第" not in reply["text"], reply["text"]
    assert "database or disk is full" not in reply["text"]
    assert str(data_dir) in notice["text"]
