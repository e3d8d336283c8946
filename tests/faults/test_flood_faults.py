"""A flood of mentions while a video renders, through the real `xiaoai run` process and the Node peer:
every mention answered exactly once, and the render still running when the last answer arrives (GPU work
never blocks the event loop). Prints the p99 mention -> reply latency recorded in BENCHMARKS.md."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.faults.conftest import wait_sent
from tests.intents.test_video_e2e import CAT, script
from tests.support.builtin_intents import Intent
from tests.support.fake_llm import is_classify
from tests.support.peer import ALICE, BOB, BOT, CAROL, FAMILY, at

FLOOD = 200
SENDERS = [ALICE, BOB, CAROL]
# enough denoising steps on the tiny CPU model to outlast the flood on an idle machine too (checked below)
RENDER = {"num_frames": 33, "steps": 200, "max_steps": 1000, "height": 64, "width": 96}
NUMBERED = re.compile(r"第(\d{3})问")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


def answer_by_number(request: dict) -> str:
    asked = NUMBERED.findall(str(request["messages"][-1].get("content", "")))
    return f"答第{asked[-1]}问" if asked else "好的"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@pytest.mark.slow
def test_a_flood_while_a_video_renders_is_answered_once_each(bot_process, peer, fake_llm, tiny_model):
    script(fake_llm, "猫的视频", CAT)
    fake_llm.add(lambda req: is_classify(req) and "第" in str(req["messages"][-1].get("content", "")),
                 Intent.CHAT.label)
    fake_llm.add(lambda req: not is_classify(req) and bool(NUMBERED.search(
        str(req["messages"][-1].get("content", "")))), answer_by_number)
    # rate limits off and the LLM's usual deadlines: the flood measures the queueing, not the limits
    bot = bot_process({"quotas": {"user_messages_per_minute": None, "group_messages_per_minute": None},
                       "llm": {"timeout_s": 20, "classify_timeout_s": 10},
                       "video": {"model": {"path": str(tiny_model)}, "sampling": RENDER}})
    peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
    bot.wait_log("(10 %)", timeout=60)  # the render is under way: the model loaded and stepping

    flood_started = time.monotonic()
    asked_at: dict[str, float] = {}
    for n in range(FLOOD):
        number = f"{n:03d}"
        asked_at[number] = time.time() * 1000
        peer.say(SENDERS[n % len(SENDERS)], f"{at()}第{number}问：今天吃什么", room=FAMILY, mention=[BOT])

    def answers() -> list[dict]:
        return [m for m in peer.sent() if m.get("room") == FAMILY and "答第" in (m.get("text") or "")]

    posted_s = time.monotonic() - flood_started
    wait_sent(peer, lambda m: len(answers()) >= FLOOD or any("抱歉" in (x.get("text") or "")
                                                            for x in peer.sent()), timeout=45)
    answered_s = time.monotonic() - flood_started
    still_rendering = "done in" not in bot.log()
    time.sleep(1.0)  # a duplicate answer would arrive here
    got = answers()
    numbers = [NUMBERED.search(m["text"].replace("答第", "第")).group(1) for m in got]
    assert not [m["text"] for m in peer.sent() if "抱歉" in (m.get("text") or "")], "\n".join(
        line for line in bot.log().splitlines() if "WARNING" in line or "ERROR" in line)[-3000:]
    assert sorted(numbers) == sorted(asked_at), "each mention answered exactly once"
    assert still_rendering, "the flood was answered while the video was still rendering"
    assert not [m for m in peer.sent() if m.get("file")]  # the render is stopped with the bot, re-queued

    latencies = [m["ts"] - asked_at[number] for m, number in zip(got, numbers, strict=True)]
    load = os.getloadavg()
    print(f"\nflood of {FLOOD} during a render (posted in {posted_s:.1f} s, all answered after "
          f"{answered_s:.1f} s): p50 {percentile(latencies, 0.5):.0f} ms, "
          f"p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
