"""How many of our files one weather @-mention passes through, channel to reply, and that no file calls
back into one that is still waiting on it (the cycles that made the old path hard to follow). The one
call allowed into a file further down the stack is the reply leaving through the channel's `send`.

The real bot runs in this process behind the Node Wechaty peer; a profiler hook records every call
into the project's own files (not tests, not libraries) on the event loop's thread and worker threads.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from tests.intents.test_amap_e2e import ask, overrides, question
from tests.support.builtin_intents import Intent

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "intents", "nlu", "generators", "services", "prompts")
MAX_FILES = 15  # 12, and the request-cue check before the classifier (pipeline/ahead.py, nlu)
# loguru calls these for every line written (redaction filter, the console's log page): not hops on the path
LOG_SINKS = ("bot/logs.py", "bot/console/log_tail.py")
CHANNEL = "bot/channels/wechaty/channel.py"


_NAMES: dict[str, str | None] = {}


def _product_file(frame: FrameType) -> str | None:
    filename = frame.f_code.co_filename
    if filename not in _NAMES:
        try:
            relative = Path(filename).resolve().relative_to(ROOT)
            name = str(relative) if relative.parts and relative.parts[0] in PRODUCT else None
            _NAMES[filename] = None if name in LOG_SINKS else name
        except (ValueError, OSError):
            _NAMES[filename] = None
    return _NAMES[filename]


class Walk:
    """Files entered in order, and any call into a file that is already further down the same stack."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.first_calls: list[str] = []  # file:function through which each file was first entered
        self.cycles: list[list[str]] = []
        self.active = False

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or not self.active:
            return
        here = _product_file(frame)
        if here is None:
            return
        if here not in self.files:
            self.files.append(here)
            self.first_calls.append(f"{here}:{frame.f_code.co_name}")
        stack, caller = [], frame.f_back
        while caller is not None:
            name = _product_file(caller)
            if name is not None and (not stack or stack[-1] != name):
                stack.append(name)
            caller = caller.f_back
        reply_out = here == CHANNEL and frame.f_code.co_name == "send"  # where the walk ends, by design
        if stack and stack[0] != here and here in stack and not reply_out:  # here -> ... -> here
            self.cycles.append([here, *stack[: stack.index(here) + 1]])


async def test_a_weather_mention_crosses_at_most_fifteen_files_without_cycles(
        running_bot, peer, fake_llm, amap) -> None:
    question(fake_llm, "明天北京天气怎么样", Intent.WEATHER, "weather", {"place": "北京", "day": "明天"})
    walk = Walk()
    # the disconnect alerts' periodic check and the gateway's port probe are no hops of the message: keep
    # them from ticking mid-walk
    config = overrides(amap)
    config["wechaty"] = {**config.get("wechaty", {}), "health_interval_s": 3600}
    async with running_bot({**config, "alerts": {"check_interval_s": 3600}}):
        await ask(peer, "你好")  # warm: the first message of a session loads contacts and rooms
        sys.setprofile(walk)
        threading.setprofile(walk)
        walk.active = True
        try:
            text = await ask(peer, "明天北京天气怎么样")
        finally:
            walk.active = False
            sys.setprofile(None)
            threading.setprofile(None)
        await asyncio.sleep(0)
    assert "北京" in text and "明天" in text
    print("\n".join(walk.files))
    assert walk.files[0] == CHANNEL, walk.files
    assert len(walk.files) <= MAX_FILES, " ".join(walk.first_calls)
    assert walk.cycles == [], walk.cycles[:5]
