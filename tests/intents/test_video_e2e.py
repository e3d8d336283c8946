"""视频生成 end to end: the real Node Wechaty peer, the fake OpenAI server, the real Application with the
job queue and a tiny CogVideoX folder loaded by the production loader. The MP4 that reaches the Node side
is decoded and checked."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pytest
import uvicorn

from tests.support.builtin_intents import Intent
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, at, free_port

PANDA = ("A gentle medium shot at eye level in soft morning light. A fluffy giant panda sits on a mossy "
         "rock holding a small wooden guitar. It strums the strings with its paw. Tall green bamboo rises "
         "around it.")
CAT = "A close up shot in warm evening light. A small white cat sits on a table and looks at the window."
DOG = "A wide aerial shot at sunset. A happy dog runs across a green field toward the river."
FISH = "A slow pan in bright sunlight. A red fish swims in a blue lake with green leaves on the water."
SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


def video_config(model: Path, *, sampling: dict[str, Any] | None = None, queue: dict[str, Any] | None = None,
                 **section: Any) -> dict[str, Any]:
    return {"video": {"model": {"path": str(model)}, "sampling": SMALL | (sampling or {}),
                      "queue": {"seconds_per_job": 3} | (queue or {}), **section}}


def script(fake_llm, request_text: str, prompt: str | list[str]) -> None:
    """Classify `request_text` as 视频生成 and answer its rewrite with `prompt` (a list: one per call)."""
    answers = list(prompt) if isinstance(prompt, list) else None

    def rewrite(req: dict) -> str:
        return answers.pop(0) if answers and len(answers) > 1 else (answers[0] if answers else prompt)

    fake_llm.add(lambda req: "CogVideoX prompt writer" in prompt_text(req)
                 and request_text in prompt_text(req).rpartition(" asks: ")[2], rewrite)
    fake_llm.classify(request_text, Intent.VIDEO.label)


def texts(peer) -> list[str]:
    return [m["text"] for m in peer.sent() if m.get("text")]


def videos(peer) -> list[dict]:
    return [m for m in peer.sent() if m.get("file")]


async def wait_sent(peer, predicate, within: float = 30.0) -> dict:
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


async def wait_videos(peer, count: int, within: float = 60.0) -> list[dict]:
    await wait_sent(peer, lambda m: len(videos(peer)) >= count, within)
    return videos(peer)


def videos_by_asker(peer) -> dict[str, dict]:
    """Each MP4 keyed by the asker @-mentioned in the caption sent just before it."""
    found, asker = {}, None
    for message in peer.sent():
        if "视频做好啦" in (message.get("text") or ""):
            asker = message["mentionIds"][0]
        elif message.get("file") and asker is not None:
            found[asker], asker = message, None
    return found


def decode(message: dict) -> tuple[np.ndarray, dict]:
    data = base64.b64decode(message["file"]["base64"])
    return iio.imread(data, extension=".mp4"), iio.immeta(data, extension=".mp4")


async def test_video_request_is_acked_then_the_mp4_arrives(running_bot, peer, fake_llm, tiny_model):
    script(fake_llm, "熊猫在竹林里弹吉他", PANDA)
    async with running_bot(video_config(tiny_model)):
        started = time.monotonic()
        peer.say("alice", at() + "生成一个熊猫在竹林里弹吉他的视频", room=FAMILY, mention=[BOT])
        ack = await wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
        ack_s = time.monotonic() - started
        [video] = await wait_videos(peer, 1)
        video_s = time.monotonic() - started
    assert ack["room"] == FAMILY and ack["mentionIds"] == ["alice"]
    assert ack["text"].startswith("@妈妈 收到，排队第 1 位。") and PANDA not in ack["text"]  # plain
    assert "预计" not in ack["text"]  # nothing like it was measured yet: no number rather than a guess
    caption = [m for m in peer.sent() if m.get("text") and "视频做好啦" in m["text"]]
    assert caption and caption[0]["mentionIds"] == ["alice"] and PANDA not in caption[0]["text"]
    assert video["file"]["mimeType"] == "video/mp4" and video["room"] == FAMILY
    frames, meta = decode(video)
    assert frames.shape == (9, 64, 96, 3) and meta["fps"] == 8 and meta["codec"] == "h264"
    print(f"ack after {ack_s * 1000:.0f} ms, MP4 after {video_s:.1f} s (first load included)")


async def test_same_seed_gives_identical_frames(running_bot, peer, fake_llm, tiny_model):
    script(fake_llm, "熊猫视频", PANDA)
    async with running_bot(video_config(tiny_model)):
        peer.say("alice", at() + "熊猫视频，种子 42", room=FAMILY, mention=[BOT])
        peer.say("bob", at() + "熊猫视频，种子 42", room=FAMILY, mention=[BOT])
        peer.say("carol", at() + "熊猫视频，种子 43", room=FAMILY, mention=[BOT])
        await wait_videos(peer, 3)
    by_asker = videos_by_asker(peer)
    a, b, c = (decode(by_asker[user])[0] for user in ("alice", "bob", "carol"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


async def test_three_requests_arrive_in_order_while_chat_is_answered(running_bot, peer, fake_llm, tiny_model):
    for key, prompt in (("猫的视频", CAT), ("狗的视频", DOG), ("鱼的视频", FISH)):
        script(fake_llm, key, prompt)
    fake_llm.classify("今天吃什么", Intent.CHAT.label)
    fake_llm.add(lambda req: "今天吃什么" in prompt_text(req).rpartition("问：")[2], "吃饺子吧！")
    # show_prompt: the captions name each video's prompt, which tells whose video is whose
    async with running_bot(video_config(tiny_model, sampling={"steps": 20}, show_prompt=True)):
        for user, key in (("alice", "猫的视频"), ("bob", "狗的视频"), ("carol", "鱼的视频")):
            peer.say(user, at() + "生成" + key, room=FAMILY, mention=[BOT])
            await wait_sent(peer, lambda m, u=user: "排队第" in (m.get("text") or "")
                            and m["mentionIds"] == [u])
        peer.say("alice", at() + "今天吃什么", room=FAMILY, mention=[BOT])
        chat = await wait_sent(peer, lambda m: "吃饺子吧" in (m.get("text") or ""))
        delivered = await wait_videos(peer, 3)
    captions = [m for m in peer.sent() if "视频做好啦" in (m.get("text") or "")]
    assert [c["mentionIds"] for c in captions] == [["alice"], ["bob"], ["carol"]]
    assert [CAT in captions[0]["text"], DOG in captions[1]["text"], FISH in captions[2]["text"]] == [True] * 3
    acks = [m for m in peer.sent() if "排队第" in (m.get("text") or "")]
    assert [a["text"].split("排队第 ")[1][0] for a in acks] == ["1", "2", "3"]
    assert chat["ts"] < delivered[-1]["ts"]  # answered while the renders were still going


async def test_generator_failure_is_reported_and_the_next_job_runs(running_bot, peer, fake_llm, tiny_model,
                                                                   monkeypatch):
    from generators.cogvideox import CogVideoXGenerator

    original = CogVideoXGenerator.generate

    def flaky(self, request, on_step=None, should_stop=None):  # a device fault on one prompt
        if "cat" in request.prompt:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return original(self, request, on_step, should_stop)

    monkeypatch.setattr(CogVideoXGenerator, "generate", flaky)
    script(fake_llm, "猫的视频", CAT)
    script(fake_llm, "狗的视频", DOG)
    async with running_bot(video_config(tiny_model)):
        peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: "排队第 1 位" in (m.get("text") or ""))
        peer.say("bob", at() + "生成狗的视频", room=FAMILY, mention=[BOT])
        failure = await wait_sent(peer, lambda m: "没有生成成功" in (m.get("text") or ""))
        [video] = await wait_videos(peer, 1)
    assert failure["mentionIds"] == ["alice"] and "CUDA" not in failure["text"]
    assert failure["ts"] < video["ts"]  # the failed job came first; the next one still ran
    assert decode(video)[0].shape[0] == 9
    assert [m["mentionIds"] for m in peer.sent() if "视频做好啦" in (m.get("text") or "")] == [["bob"]]


async def test_queued_jobs_are_delivered_after_a_restart(running_bot, peer, fake_llm, tiny_model, tmp_path):
    script(fake_llm, "猫的视频", CAT)
    script(fake_llm, "狗的视频", DOG)
    data_dir = tmp_path / "shared-data"
    async with running_bot(video_config(tiny_model, sampling={"steps": 60}), data_dir=data_dir) as app:
        peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: "排队第 1 位" in (m.get("text") or ""))
        peer.say("bob", at() + "生成狗的视频", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: "排队第 2 位" in (m.get("text") or ""))
        assert len(app.jobs.list()) == 2
    assert videos(peer) == []  # stopped before anything was delivered
    async with running_bot(video_config(tiny_model, sampling={"steps": 2}), data_dir=data_dir):
        delivered = await wait_videos(peer, 2)
    captions = [m for m in peer.sent() if "视频做好啦" in (m.get("text") or "")]
    assert [c["mentionIds"] for c in captions] == [["alice"], ["bob"]] and len(delivered) == 2


async def test_rewriter_answering_chinese_is_handled(running_bot, peer, fake_llm, tiny_model):
    script(fake_llm, "熊猫弹吉他", ["一只熊猫在竹林里弹吉他。", PANDA])  # Chinese first, then good
    script(fake_llm, "小猫跳舞", "好的！这是提示词：小猫在跳舞。")  # always Chinese/chatty
    async with running_bot(video_config(tiny_model)):
        peer.say("alice", at() + "生成一个熊猫弹吉他的视频", room=FAMILY, mention=[BOT])
        await wait_videos(peer, 1)
        peer.say("bob", at() + "生成一个小猫跳舞的视频", room=FAMILY, mention=[BOT])
        refusal = await wait_sent(peer, lambda m: "没能理解好你想要的画面" in (m.get("text") or ""))
    assert refusal["mentionIds"] == ["bob"]
    assert len(videos(peer)) == 1


async def test_bad_frame_count_and_pending_limit_get_clear_replies(running_bot, peer, fake_llm, tiny_model):
    script(fake_llm, "熊猫视频", PANDA)
    config = video_config(tiny_model, sampling={"steps": 60}, queue={"max_pending_per_user": 1})
    async with running_bot(config):
        peer.say("alice", at() + "熊猫视频，10帧", room=FAMILY, mention=[BOT])
        bad = await wait_sent(peer, lambda m: "8 的倍数加 1" in (m.get("text") or ""))
        peer.say("bob", at() + "熊猫视频", room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
        peer.say("bob", at() + "再来一个熊猫视频", room=FAMILY, mention=[BOT])
        limit = await wait_sent(peer, lambda m: "每人最多同时 1 个" in (m.get("text") or ""))
    assert bad["mentionIds"] == ["alice"] and limit["mentionIds"] == ["bob"]
    assert not any("排队第" in t for t in texts(peer) if t.startswith("@妈妈"))  # nothing queued for alice


async def test_remote_backend_through_the_service(running_bot, peer, fake_llm, tiny_model, tmp_path,
                                                  monkeypatch):
    from bot.config import AppConfig
    from bot.hosts.serve_video import create_app

    port = free_port()
    service = create_app(AppConfig.model_validate(
        {"data_dir": str(tmp_path / "gpu-box"), **video_config(tiny_model)}), "box-token")
    server = uvicorn.Server(uvicorn.Config(service, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(lambda: [time.sleep(0.02) for _ in range(500) if not server.started])
        script(fake_llm, "熊猫视频", PANDA)
        remote = video_config(tiny_model, backend="remote",
                              remote={"url": f"http://127.0.0.1:{port}", "poll_s": 0.1})
        monkeypatch.setenv("XIAOAI_VIDEO_TOKEN", "box-token")
        async with running_bot(remote):
            peer.say("alice", at() + "熊猫视频", room=FAMILY, mention=[BOT])
            [video] = await wait_videos(peer, 1)
        assert decode(video)[0].shape == (9, 64, 96, 3)
        monkeypatch.setenv("XIAOAI_VIDEO_TOKEN", "wrong")
        async with running_bot(remote):
            peer.say("bob", at() + "熊猫视频", room=FAMILY, mention=[BOT])
            refused = await wait_sent(peer, lambda m: "视频功能暂时用不了" in (m.get("text") or ""))
        assert "TOKEN" not in refused["text"]  # the fix (XIAOAI_VIDEO_TOKEN) is the admins' to read
        assert refused["mentionIds"] == ["bob"]
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


async def test_without_any_llm_the_askers_own_words_are_used_and_flagged(running_bot, peer, fake_llm,
                                                                         tiny_model):
    no_llm = {"OPENAI_BASE_URL": None, "OPENAI_API_KEY": None}
    async with running_bot(video_config(tiny_model), env=no_llm):
        peer.say("alice", at() + "生成一个熊猫弹吉他的视频", room=FAMILY, mention=[BOT])
        ack = await wait_sent(peer, lambda m: "排队" in (m.get("text") or ""))
        await wait_videos(peer, 1)
    assert "原话" in ack["text"] and "生成一个熊猫弹吉他的视频" not in ack["text"]  # said, not echoed
    assert fake_llm.calls() == []
