"""图生视频 through a hosted API end to end: the real `xiaoai run` process and the Node Wechaty peer, the
fake LLM and a fake 智谱 / DashScope server. Alice posts a photo, then "@小爱 让这张照片动起来": the ack, one
MP4 @Alice, and exactly one create that carries her photo as base64 in the provider's own field, within
the provider's size rules, to the provider's photo model, with the key header."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.faults.conftest import wait_sent
from tests.faults.test_video_api_e2e import KEY_ENV, overrides, replies_to, videos
from tests.intents.test_photo_video_e2e import ASK, camera_photo, script
from tests.support.fake_video_apis import FakeVideoApi
from tests.support.peer import BOT, FAMILY, at

RED = (200, 40, 40)
PHOTO_MODEL = {"zhipu": "cogvideox-flash", "dashscope": "wanx2.1-i2v-turbo"}


@pytest.fixture(params=["zhipu", "dashscope"])
def fake(request) -> Iterator[FakeVideoApi]:
    with FakeVideoApi(request.param, key=f"{request.param}-photo-key-0987654321") as server:
        yield server


def sent_photo(fake: FakeVideoApi, body: dict) -> Image.Image:
    """The photo one create carried, decoded from the provider's own field."""
    if fake.provider == "zhipu":
        value = body["image_url"]
        assert not value.startswith("data:")  # zhipu takes bare base64
    else:
        value = body["input"]["img_url"]
        head, sep, value = value.partition(";base64,")
        assert sep and head in ("data:image/jpeg", "data:image/png")
    image = Image.open(io.BytesIO(base64.b64decode(value, validate=True)))
    image.load()
    return image


def test_photo_to_video_through_the_peer(bot_process, peer, fake_llm, fake):
    script(fake_llm)
    bot = bot_process(overrides(fake), env={KEY_ENV[fake.provider]: fake.key})
    bot.wait_log(f"video: backend api ({fake.provider})")
    peer.say("alice", room=FAMILY, type="image", base64=camera_photo(RED), name="IMG_0001.jpg")
    time.sleep(1.5)  # the photo is stored before the request (as in a family chat)
    peer.say("alice", at() + ASK, room=FAMILY, mention=[BOT])
    ack = wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
    assert ack["mentionIds"] == ["alice"]
    video = wait_sent(peer, lambda m: bool(m.get("file")), timeout=40)
    assert video["file"]["mimeType"] == "video/mp4" and video["room"] == FAMILY
    assert len(videos(peer)) == 1 and any("照片动起来啦" in t for t in replies_to(peer, "alice"))

    assert len(fake.creates) == 1 and not fake.violations, fake.violations
    body = fake.creates[0]
    assert body["model"] == PHOTO_MODEL[fake.provider]
    photo = sent_photo(fake, body)
    low, high = (360, 2000) if fake.provider == "dashscope" else (1, 4096)
    assert all(low <= side <= high for side in photo.size), photo.size
    assert abs(photo.width / photo.height - 480 / 640) < 0.01  # the whole portrait, uncropped
    colour = np.asarray(photo.convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert np.abs(colour - RED).max() < 30  # Alice's photo, not some other picture
    # the fake answers a wrong or missing key with an error, so a paid task proves the header was right
    assert len(fake.paid_tasks) == 1
    assert fake.key not in bot.log()
