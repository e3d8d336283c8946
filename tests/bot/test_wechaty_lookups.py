"""What the WeChat channel remembers between messages: bounded, expiring, shared by concurrent asks, a
failure never kept; and a message that arrives before the answer of the send that made it is its echo."""

from __future__ import annotations

import asyncio

from bot.channels.wechaty.channel import RoomLookups, SentIds


class Gateway:
    """Answers alias lookups after a moment, counting them; `fail` makes the next one raise."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.fail = False

    def loader(self, room: str, member: str):  # noqa: ANN201
        async def load() -> str:
            self.asked.append((room, member))
            await asyncio.sleep(0.01)
            if self.fail:
                self.fail = False
                raise ConnectionError("gateway hiccup")
            return f"{member}@{room}"
        return load


async def test_concurrent_asks_share_one_call_and_later_asks_none() -> None:
    rooms, gateway = RoomLookups(), Gateway()
    answers = await asyncio.gather(*(rooms.get("r1", "bot", gateway.loader("r1", "bot")) for _ in range(20)))
    assert set(answers) == {"bot@r1"} and gateway.asked == [("r1", "bot")]
    assert await rooms.get("r1", "bot", gateway.loader("r1", "bot")) == "bot@r1"
    assert len(gateway.asked) == 1


async def test_room_events_forget_only_that_room_and_clear_forgets_all() -> None:
    rooms, gateway = RoomLookups(), Gateway()
    for room in ("r1", "r2"):
        await rooms.get(room, "bot", gateway.loader(room, "bot"))
    rooms.forget_room("r1")
    await rooms.get("r1", "bot", gateway.loader("r1", "bot"))
    await rooms.get("r2", "bot", gateway.loader("r2", "bot"))
    assert gateway.asked == [("r1", "bot"), ("r2", "bot"), ("r1", "bot")]
    rooms.clear()
    assert len(rooms) == 0


async def test_bounded_and_expiring() -> None:
    now = [0.0]
    rooms, gateway = RoomLookups(size=3, ttl_s=60, clock=lambda: now[0]), Gateway()
    for member in "abcd":
        await rooms.get("r", member, gateway.loader("r", member))
    assert len(rooms) == 3  # the oldest went
    await rooms.get("r", "a", gateway.loader("r", "a"))
    assert gateway.asked[-1] == ("r", "a") and len(gateway.asked) == 5
    now[0] = 61.0
    await rooms.get("r", "d", gateway.loader("r", "d"))
    assert gateway.asked[-1] == ("r", "d") and len(gateway.asked) == 6


async def test_a_failed_lookup_answers_empty_and_is_asked_again() -> None:
    rooms, gateway = RoomLookups(), Gateway()
    gateway.fail = True
    assert await rooms.get("r", "bot", gateway.loader("r", "bot")) == ""
    assert await rooms.get("r", "bot", gateway.loader("r", "bot")) == "bot@r"
    assert len(gateway.asked) == 2


async def test_an_echo_that_comes_before_the_send_answers_is_still_known() -> None:
    sent = SentIds()
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sending = asyncio.create_task(sent.send(answer))
    await asyncio.sleep(0)
    echo = asyncio.create_task(sent.is_echo("m1"))  # the echo's event, before the send's answer
    await asyncio.sleep(0.01)
    answer.set_result("m1")
    assert await echo and await sending is None
    assert not await sent.is_echo("m2")  # nothing in flight: no wait


async def test_a_message_waits_for_a_slow_send_only_so_long() -> None:
    sent = SentIds(wait_s=0.05)
    stuck: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sending = asyncio.create_task(sent.send(stuck))
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    assert not await sent.is_echo("from-alice")
    assert asyncio.get_running_loop().time() - started < 0.5
    sending.cancel()
