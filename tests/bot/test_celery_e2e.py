"""`jobs.backend: celery` end to end (tests/support/celery_deploy.py): many requests on two workers,
cancellation on the worker, no worker alive, a picture drawn by an image-only worker from the tiny FLUX
folder. The faults (SIGKILL of a worker, of Redis, of the bot) are in test_celery_faults_e2e.py, a file
of their own so the two run side by side."""

from __future__ import annotations

import base64
import io
import time
from collections import Counter

import pytest
from PIL import Image

from tests.support.builtin_intents import Intent
from tests.support.celery_deploy import (
    ADMIN,
    ask,
    captions,
    heartbeat_jobs,
    videos,
    wait_rendering,
    wait_videos,
)
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, OTHER, at

pytestmark = pytest.mark.slow
SHIBA = ("A fluffy Shiba Inu with a red-and-cream coat sits in fresh white snow, its curled tail wrapped "
         "around its paws, looking up with a gentle smile. Snow-covered pine trees fade into a pale winter "
         "sky behind it. Warm natural photograph, soft daylight, eye-level view.")


def test_six_requests_from_three_people_in_two_rooms_on_two_workers(deploy, peer, fake_llm):
    deployment = deploy(steps=4)
    deployment.start_workers(2)
    deployment.start_bot()
    requests = [("alice", FAMILY), ("bob", FAMILY), ("carol", OTHER), ("alice", OTHER), ("bob", OTHER),
                ("carol", FAMILY)]
    for n, (user, room) in enumerate(requests):
        ask(peer, fake_llm, user, f"做一个熊猫弹吉他的视频 {n}", room)
    took = wait_videos(peer, 6, deployment)
    time.sleep(1.5)  # anything sent twice would arrive now
    assert len(videos(peer)) == 6
    delivered = Counter((c["mentionIds"][0], c["room"]) for c in captions(peer))
    assert delivered == Counter(requests)
    acks = [m for m in peer.sent() if "排队第" in (m.get("text") or "")]
    assert len(acks) == 6  # an estimate only once renders like these were measured (test_estimates.py)
    rendered = [w.output().count("rendered in") for w in deployment.workers]
    assert sum(rendered) == 6 and all(rendered), rendered  # both GPUs took work
    print(f"6 videos on 2 workers in {took:.1f}s, split {rendered}")


def test_cancel_stops_the_render_on_the_worker(deploy, peer, fake_llm, redis_server):
    deployment = deploy(steps=200)  # long enough that the cancel, not the last step, ends it
    deployment.start_workers(1)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    wait_rendering(redis_server)
    asked = time.monotonic()
    peer.say(ADMIN, "#取消 1", room=FAMILY)
    peer.wait_for_sent(lambda m: "已取消" in (m.get("text") or ""), timeout=20)
    worker = deployment.workers[0]
    deadline = time.monotonic() + 10
    while "cancelled at step" not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = time.monotonic() - asked
    assert "cancelled at step" in worker.output() and "rendered in" not in worker.output()
    deadline = time.monotonic() + 5  # the heartbeat thread publishes the idle worker on its next beat
    while heartbeat_jobs(redis_server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert heartbeat_jobs(redis_server) == {} and videos(peer) == []
    print(f"cancel: render stopped on the worker {stopped:.1f}s after #取消")


def test_no_worker_alive_ack_says_so_and_admin_is_told(deploy, peer, fake_llm):
    deployment = deploy(steps=4)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    ack = peer.wait_for_sent(lambda m: "排队第" in (m.get("text") or ""), timeout=30)
    assert "机器现在不在线" in ack["text"]
    notice = peer.wait_for_sent(
        lambda m: not m.get("room") and "没有 GPU 工作进程在线" in (m.get("text") or ""), timeout=20)
    assert notice["to"] == ADMIN
    deployment.start_workers(1)
    wait_videos(peer, 1, deployment)


def test_a_picture_is_drawn_by_an_image_worker_from_the_tiny_flux_folder(deploy, peer, fake_llm, tiny_flux):
    deployment = deploy(image=tiny_flux)
    deployment.start_workers(1, queues="image")  # only this worker can draw: the bot renders nothing itself
    deployment.start_bot()
    fake_llm.add(lambda req: "FLUX image prompt writer" in prompt_text(req), SHIBA)
    fake_llm.classify("帮我画一只在雪地里的柴犬", Intent.IMAGE.label)
    peer.say("bob", at() + "帮我画一只在雪地里的柴犬", room=FAMILY, mention=[BOT])
    picture = peer.wait_for_sent(lambda m: bool(m.get("file")), timeout=120)
    caption = next(m for m in peer.sent() if "画好啦" in (m.get("text") or ""))
    assert caption["mentionIds"] == ["bob"] and picture["room"] == FAMILY
    assert picture["file"]["name"].endswith(".jpg")
    image = Image.open(io.BytesIO(base64.b64decode(picture["file"]["base64"])))
    assert image.format == "JPEG" and image.size == (96, 64)
    assert deployment.workers[0].output().count("rendered in") == 1


@pytest.fixture(scope="module")
def tiny_photo_model(tmp_path_factory):
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("i2v") / "CogVideoX-5b-I2V", "5b-i2v")


def test_a_photo_job_travels_to_the_worker_with_its_photo(deploy, peer, fake_llm, tiny_photo_model):
    deployment = deploy(steps=2, photo_model=tiny_photo_model)
    deployment.start_workers(1)
    deployment.start_bot()
    buffer = io.BytesIO()
    Image.new("RGB", (300, 400), (200, 60, 60)).save(buffer, format="JPEG")
    peer.say("alice", room=FAMILY, type="image", base64=base64.b64encode(buffer.getvalue()).decode(),
             name="IMG_0003.jpg")
    time.sleep(1.0)
    fake_llm.add(lambda req: "motion-prompt writer" in prompt_text(req),
                 "The camera stays still. The woman in the photo smiles and waves slowly while the curtains "
                 "behind her sway in a light breeze.")
    ask(peer, fake_llm, "alice", "让这张照片动起来")
    wait_videos(peer, 1, deployment)
    assert [c["mentionIds"] for c in peer.sent() if "照片动起来啦" in (c.get("text") or "")] == [["alice"]]
    assert deployment.workers[0].output().count("rendered in") == 1
