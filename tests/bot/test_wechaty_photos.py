"""Downloading a WeChat photo (bot/channels/wechaty/photos.py) against scripted puppet answers: the
stream path when python-wechaty cannot read a >20 KB file box, one retry after a failure, and None
(logged) after two. The real gateway path is crossed in tests/intents/test_photo_video_e2e.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bot.channels.wechaty.photos import photo_bytes
from generators.photos import MAX_PHOTO_BYTES


class Puppet:
    """`puppet_stub.message_image_stream` yielding the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.streams = 0
        self.puppet_stub = self

    async def message_image_stream(self, *, id: str, type: int) -> Any:  # noqa: A002 - the RPC's names
        self.streams += 1
        for chunk in self.chunks:
            yield SimpleNamespace(file_box_chunk=SimpleNamespace(data=chunk))


class Message:
    """`to_file_box` raising each of `errors` in turn (a ValueError = the stream-reference trap)."""

    def __init__(self, *errors: Exception) -> None:
        self.message_id = "m1"
        self.errors = list(errors)

    async def to_file_box(self) -> Any:
        raise self.errors.pop(0) if self.errors else ValueError("unknown file_box json object")


async def test_a_large_photo_comes_through_the_image_stream() -> None:
    puppet = Puppet([b"\xff\xd8part one ", b"part two"])
    assert await photo_bytes(Message(ValueError("unknown file_box json object")), puppet) == \
        b"\xff\xd8part one part two"
    assert puppet.streams == 1


async def test_one_failure_is_retried_and_two_give_none() -> None:
    puppet = Puppet([b"photo"])
    assert await photo_bytes(Message(ConnectionError("gateway blip")), puppet) == b"photo"
    assert await photo_bytes(Message(ConnectionError("down"), ConnectionError("still down")), puppet) is None


async def test_an_endless_stream_stops_past_the_photo_limit() -> None:
    puppet = Puppet([b"\0" * 4_000_000] * 10)
    data = await photo_bytes(Message(), puppet)
    assert data is not None and MAX_PHOTO_BYTES < len(data) <= MAX_PHOTO_BYTES + 4_000_000
