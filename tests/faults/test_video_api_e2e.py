"""Videos through a hosted API end to end: the real `xiaoai run` process and the Node Wechaty peer, the
fake LLM and a fake 智谱 / DashScope server. Text to video with each provider; a SIGKILL between the
create call and SUCCESS, then a restart: one create, one MP4; and every failure the providers document
becomes a kind reply or a retry, with nothing lost and nothing paid twice."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator

import imageio.v3 as iio
import pytest

from bot.jobs.video_api import FAILURE_REPLIES
from generators.video_api import Failure
from tests.faults.conftest import to_admin, wait_sent
from tests.intents.test_video_e2e import CAT, DOG, FISH, script
from tests.support.fake_video_apis import FakeVideoApi, small_mp4
from tests.support.peer import BOT, FAMILY, at

ADMIN = "carol"
KEY_ENV = {"zhipu": "ZHIPUAI_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}


@pytest.fixture(params=["zhipu", "dashscope"])
def fake(request) -> Iterator[FakeVideoApi]:
    with FakeVideoApi(request.param, key=f"{request.param}-key-1234567890") as server:
        yield server


def overrides(fake: FakeVideoApi, **api) -> dict:
    return {"bot": {"admins": [ADMIN]},
            "quotas": {"user_videos_per_day": None, "group_videos_per_day": None,
                       "user_messages_per_minute": None},
            "video": {"api": {"provider": fake.provider, "base_url": fake.base_url, "poll_s": 0.2,
                              "timeout_s": 20, **api},
                      "queue": {"seconds_per_job": 3, "max_pending_per_user": 5}}}


def videos(peer, user: str = "alice") -> list[dict]:
    return [m for m in peer.sent() if m.get("file") and m["room"] == FAMILY]


def replies_to(peer, user: str) -> list[str]:
    return [m["text"] for m in peer.sent() if m.get("text") and m.get("mentionIds") == [user]]


def test_text_to_video_through_the_peer(bot_process, peer, fake_llm, fake):
    script(fake_llm, "猫的视频", CAT)
    bot = bot_process(overrides(fake), env={KEY_ENV[fake.provider]: fake.key})
    bot.wait_log(f"video: backend api ({fake.provider})")  # auto: no GPU here, the key is set
    peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
    ack = wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
    video = wait_sent(peer, lambda m: bool(m.get("file")), timeout=30)
    caption = [t for t in replies_to(peer, "alice") if "视频做好啦" in t]
    assert ack["mentionIds"] == ["alice"] and caption and "种子" not in caption[0]
    frames = iio.imread(base64.b64decode(video["file"]["base64"]), extension=".mp4")
    assert frames.shape == (16, 64, 96, 3) and video["file"]["mimeType"] == "video/mp4"
    assert len(fake.creates) == 1 and not fake.violations
    sent = fake.creates[0].get("prompt") or fake.creates[0]["input"]["prompt"]
    assert sent == CAT
    peer.say(ADMIN, "#状态")  # the admins read where videos go, why, and what they cost today
    status = wait_sent(peer, lambda m: "今天花了" in (m.get("text") or ""))["text"]
    label = "智谱 CogVideoX" if fake.provider == "zhipu" else "通义万相"
    assert f"✅ 视频：云端 {label}（没有模型权重" in status and f"已设置 {KEY_ENV[fake.provider]}" in status
    price = "0.00" if fake.provider == "zhipu" else "1.20"  # cogvideox-flash is free; wanx 0.24 元/s x 5 s
    assert f"今天花了 {price} 元 / 预算 10 元" in status
    assert fake.key not in bot.log()  # the key is redacted from every log line
    assert "paid (" in bot.log()  # the day's spend is in the log


@pytest.mark.slow
def test_sigkill_between_create_and_success_pays_and_posts_once(bot_process, peer, fake_llm, fake):
    script(fake_llm, "狗的视频", DOG)
    fake.script(tasks=["stuck"])
    env = {KEY_ENV[fake.provider]: fake.key}
    # the task's deadline counts from its create, so the kill and a slow restart on a busy box fit in it
    bot = bot_process(overrides(fake, timeout_s=90), env=env)
    peer.say("alice", at() + "生成狗的视频", room=FAMILY, mention=[BOT])
    bot.wait_log("video api: created", timeout=30)
    bot.proc.send_signal(signal.SIGKILL)
    bot.wait_exit(10)
    fake.tasks["task-1"]["outcome"] = "ok"  # the provider finished while the bot was down
    restarted = bot_process(None, env=env)
    wait_sent(peer, lambda m: bool(m.get("file")), timeout=40)
    time.sleep(1.5)  # anything sent twice would arrive now
    assert len(fake.creates) == 1 and fake.paid_tasks == ["task-1"]
    assert len(videos(peer)) == 1 and "resuming task task-1" in restarted.log()
    assert len([t for t in replies_to(peer, "alice") if "视频做好啦" in t]) == 1


SCENARIOS = [  # (what the asker says, the fake's script, creates it sees, what the asker gets)
    ("被拒的视频", {"create": ["refuse"]}, 1, FAILURE_REPLIES[Failure.REFUSED]),
    ("欠费的视频", {"create": ["no_balance"]}, 1, FAILURE_REPLIES[Failure.ACCOUNT]),
    ("限流的视频", {"create": ["throttle", "overload", "ok"]}, 3, "MP4"),  # retried with backoff
    ("失败的视频", {"tasks": ["fail"]}, 2, FAILURE_REPLIES[Failure.FAILED]),  # FAIL: one more create
    ("过期的视频", {"result": "gone"}, 1, FAILURE_REPLIES[Failure.GONE]),
    ("太大的视频", {"result": "big"}, 1, "MP4"),  # over video.encode.max_mp4_mb: re-encoded under it
    ("巨大的视频", {"result": "big"}, 1, FAILURE_REPLIES[Failure.TOO_BIG]),  # over max_download_mb
    ("乱码的视频", {"create": ["garbage"]}, 1, FAILURE_REPLIES[Failure.UNCONFIRMED]),
    ("卡住的视频", {"hang_polls": True}, 1, FAILURE_REPLIES[Failure.TIMEOUT]),
]
MAX_MP4_BYTES = 300_000


@pytest.mark.slow
def test_each_failure_is_a_kind_reply_or_a_retry(bot_process, peer, fake_llm, fake):
    noise = small_mp4(frames=24, height=240, width=320, noise=True)  # ~1 MB: over the 0.3 MB cap
    results = {"太大的视频": noise, "巨大的视频": bytes(4_000_000)}  # the second over max_download_mb 3
    prompts = iter([CAT, DOG, FISH] * 3)
    for text, *_rest in SCENARIOS:
        script(fake_llm, text, next(prompts))
    config = overrides(fake, timeout_s=6, max_download_mb=3)
    config["video"]["encode"] = {"max_mp4_mb": MAX_MP4_BYTES / 1e6}
    bot = bot_process(config, env={KEY_ENV[fake.provider]: fake.key})
    for text, scripted, creates, outcome in SCENARIOS:
        fake.reset()
        fake.big_mp4 = results.get(text, b"")
        fake.script(polls=0, **scripted)
        files, seen = len(videos(peer)), {m["id"] for m in peer.sent()}
        peer.say("alice", at() + "生成" + text, room=FAMILY, mention=[BOT])
        if outcome == "MP4":
            wait_sent(peer, lambda m, f=files: len(videos(peer)) > f, 40)
            assert len(base64.b64decode(videos(peer)[-1]["file"]["base64"])) <= MAX_MP4_BYTES
        else:
            wait_sent(peer, lambda m, o=outcome, s=seen: m["id"] not in s and o in (m.get("text") or ""), 40)
        assert len(fake.creates) == creates, text
        assert len(fake.paid_tasks) <= 1, text  # never two paid tasks for one ask
    assert len(videos(peer)) == 2  # the two scenarios that end in a video, each once
    notes = [m["text"] for m in peer.sent() if to_admin(m, ADMIN)]
    assert len([n for n in notes if KEY_ENV[fake.provider] in n]) == 1  # the account fix, once
    assert any("链接已失效" in n for n in notes)  # the expired link, for the admin
    assert fake.key not in bot.log()
