"""图生视频 through the real Node peer: photos posted in the group (camera-sized, so they take the puppet's
stream path), "@小爱 让这张照片动起来", the ack and the MP4 @asker made from that asker's photo; the
"把照片发给我吧" follow-up; a photo from another room never used; broken and non-image files answered
kindly. Tiny random text-to-video and image-to-video folders render on the CPU."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generators.photos import decode_photo
from tests.support.builtin_intents import Intent
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, OTHER, at

SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}
MOTION = ("The camera stays still at eye level in soft light. A woman in the photo smiles warmly and "
          "waves her hand slowly, her hair moving in a light breeze while the room stays calm.")
ASK = "让这张照片动起来"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from tests.support.tiny_models import build_cogvideox_folder

    root = tmp_path_factory.mktemp("photo-models")
    return {"text": build_cogvideox_folder(root / "t2v", "2b"),
            "photo": build_cogvideox_folder(root / "i2v", "5b-i2v")}


def config(models: dict[str, Path]) -> dict[str, Any]:
    return {"video": {"model": {"path": str(models["text"])}, "sampling": SMALL,
                      "queue": {"seconds_per_job": 3},
                      "photo": {"model": {"path": str(models["photo"])}, "sampling": SMALL}}}


def camera_photo(colour: tuple[int, int, int], size: tuple[int, int] = (480, 640)) -> str:
    """A JPEG well over 20 KB (noise on a coloured field), base64: what a phone sends."""
    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(rng.normal(0, 40, (size[1], size[0], 3)) + colour, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    assert len(buffer.getvalue()) > 20_000
    return base64.b64encode(buffer.getvalue()).decode()


def script(fake_llm) -> None:
    fake_llm.add(lambda req: "motion-prompt writer" in prompt_text(req), MOTION)
    fake_llm.classify(ASK, Intent.VIDEO.label)


async def wait_sent(peer, predicate, within: float = 60.0) -> dict:
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


def texts_to(peer, who: str) -> list[str]:
    return [m["text"] for m in peer.sent() if m.get("text") and who in (m.get("mentionIds") or [])]


def asked(message: dict, who: str) -> bool:
    return "把照片发给我吧" in (message.get("text") or "") and message["mentionIds"] == [who]


def all_jobs(app) -> list:
    return app.jobs.store.finished_since(0) + app.jobs.store.pending()


def job_colour(app, asker: str) -> np.ndarray:
    """The mean colour of the photo the asker's video job carried."""
    jobs = [job for job in all_jobs(app) if job.request.asker_id == asker]
    assert len(jobs) == 1
    return np.asarray(decode_photo(jobs[0].request.params["image"])).reshape(-1, 3).mean(axis=0)


async def test_alice_photo_then_request_and_bob_is_asked_for_his(running_bot, peer, fake_llm, models):
    script(fake_llm)
    red, blue, green = (200, 40, 40), (40, 40, 200), (40, 200, 40)
    async with running_bot(config(models)) as app:
        # Carol's photo in another room must never stand in for a photo in this one
        peer.say("carol", room=OTHER, type="image", base64=camera_photo(green), name="garden.jpg")
        peer.say("alice", room=FAMILY, type="image", base64=camera_photo(red), name="IMG_0001.jpg")
        await asyncio.sleep(1.5)
        assert not peer.sent()  # a photo without an @ gets no reply
        peer.say("alice", at() + ASK, room=FAMILY, mention=[BOT])
        ack = await wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
        assert ack["mentionIds"] == ["alice"] and "camera" not in ack["text"]  # plain words, no prompt
        assert any("motion-prompt writer" in prompt_text(r) for r in fake_llm.calls("other"))
        video = await wait_sent(peer, lambda m: bool(m.get("file")))
        assert video["file"]["mimeType"] == "video/mp4" and video["room"] == FAMILY
        assert any("照片动起来啦" in t for t in texts_to(peer, "alice"))
        assert np.abs(job_colour(app, "alice") - red).max() < 30

        # Bob has no photo: he is asked for one; a PDF and a broken picture are answered kindly
        peer.say("bob", at() + ASK, room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: asked(m, "bob"))
        peer.say("bob", room=FAMILY, type="image", base64=base64.b64encode(b"%PDF-1.4 minutes").decode(),
                 name="minutes.jpg")
        await wait_sent(peer, lambda m: "不是照片" in (m.get("text") or "") and m["mentionIds"] == ["bob"])
        peer.say("bob", room=FAMILY, type="image", base64=camera_photo(blue)[:4000], name="cut.jpg")
        await wait_sent(peer, lambda m: "打不开" in (m.get("text") or "") and m["mentionIds"] == ["bob"])
        peer.say("bob", room=FAMILY, type="image", base64=camera_photo(blue), name="IMG_0002.jpg")
        await wait_sent(peer, lambda m: len([x for x in peer.sent() if x.get("file")]) >= 2, within=90)
        assert np.abs(job_colour(app, "bob") - blue).max() < 30

        # Carol asks here: her photo is in the other room, so she is asked for one
        peer.say("carol", at() + ASK, room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: asked(m, "carol"))
        assert not [job for job in all_jobs(app) if job.request.asker_id == "carol"]


async def test_with_llm_vision_the_rewriter_sees_the_photo(running_bot, peer, fake_llm, models):
    script(fake_llm)
    overrides = config(models) | {"llm": {"vision": True}}
    async with running_bot(overrides):
        peer.say("alice", room=FAMILY, type="image", base64=camera_photo((90, 160, 90)), name="IMG_0004.jpg")
        await asyncio.sleep(1.5)
        peer.say("alice", at() + ASK, room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: "排队第" in (m.get("text") or ""))
    rewrites = [r for r in fake_llm.calls("other") if "motion-prompt writer" in prompt_text(r)]
    user = rewrites[0]["messages"][-1]["content"]
    assert isinstance(user, list) and user[0]["type"] == "text" and ASK in user[0]["text"]
    url = user[1]["image_url"]["url"]
    assert user[1]["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
    seen = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    colour = np.asarray(seen).reshape(-1, 3).mean(axis=0)
    assert max(seen.size) <= 768 and np.abs(colour - (90, 160, 90)).max() < 30
    assert "You can see the photo" in prompt_text(rewrites[0])
