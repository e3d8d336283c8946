""""预计 N 秒" comes from measured run times of jobs like this one (kind, model, preset, size), kept in the
job store across restarts; before anything like it was measured the ack gives no number. Through the real
Node peer and the fake OpenAI images server."""

from __future__ import annotations

import asyncio
import re
import threading

from tests.intents.test_image import REQUEST, api_config, script
from tests.support.peer import BOT, FAMILY, at

HELD_S = 3.0  # how long the fake images server takes with the first picture


async def ack_for(peer, sender: str) -> str:
    seen = {m["id"] for m in peer.sent()}
    peer.say(sender, at() + REQUEST, room=FAMILY, mention=[BOT])
    ack = await asyncio.to_thread(
        peer.wait_for_sent, lambda m: m["id"] not in seen and "收到" in (m.get("text") or ""), 30)
    return ack["text"]


async def picture_delivered(peer, count: int) -> None:
    def delivered(_message: dict) -> bool:
        return len([x for x in peer.sent() if x.get("file")]) >= count

    await asyncio.to_thread(peer.wait_for_sent, delivered, 30)


def seconds_in(text: str) -> int | None:
    found = re.search(r"预计 (\d+) 秒", text)
    return int(found.group(1)) if found else None


async def test_estimate_is_measured_per_profile_and_survives_a_restart(running_bot, peer, fake_llm, images,
                                                                     tmp_path) -> None:
    script(fake_llm)
    data = tmp_path / "data"
    images.reset("hold")
    threading.Timer(HELD_S, images.release).start()
    async with running_bot(api_config(images), data_dir=data):
        first = await ack_for(peer, "alice")
        await picture_delivered(peer, 1)
        second = await ack_for(peer, "bob")
        await picture_delivered(peer, 2)
    assert seconds_in(first) is None, first  # nothing measured: no guess
    assert seconds_in(second) is not None and HELD_S - 1 <= seconds_in(second) <= HELD_S + 2, second

    async with running_bot(api_config(images), data_dir=data):  # a restart: the store remembers
        after_restart = await ack_for(peer, "carol")
        await picture_delivered(peer, 3)
    assert seconds_in(after_restart) is not None, after_restart

    other_size = api_config(images)
    other_size["image"]["api"]["size"] = "512x512"
    async with running_bot(other_size, data_dir=data):  # another size is another profile: not measured
        resized = await ack_for(peer, "alice")
    assert seconds_in(resized) is None, resized
