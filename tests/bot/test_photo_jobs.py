"""Photo jobs on the job path: the `video` kind picks the image-to-video model when the job carries a
photo (one model resident at a time), `serve-video` takes the photo in its body and the bot's
`RemoteBackend` carries it there unchanged, and the MP4's rate follows the frame size."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from bot.config import AppConfig, VideoConfig
from bot.hosts.serve_video import create_app
from bot.jobs import Job, JobRequest, JobState, RemoteBackend
from bot.jobs.kinds import VideoKind
from bot.messages import ChatRef
from generators.cogvideox import VideoRequest
from generators.mp4 import scaled_bitrate
from generators.photos import encode_photo
from tests.bot.test_video_service import stored_job
from tests.support.tiny_models import build_cogvideox_folder

TOKEN = "photo-token"
PROMPT = "the grandmother smiles and turns her head slowly toward the camera"
SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"text": build_cogvideox_folder(root / "t2v", "2b"),
            "photo": build_cogvideox_folder(root / "i2v", "5b-i2v")}


def photo(colour: tuple[int, int, int]) -> str:
    pixels = np.zeros((120, 90, 3), dtype=np.uint8)
    pixels[:] = colour
    return encode_photo(Image.fromarray(pixels))


def video_config(models: dict[str, Path], **extra: object) -> dict:
    return {"model": {"path": str(models["text"])}, "sampling": SMALL,
            "photo": {"model": {"path": str(models["photo"])}, "sampling": SMALL}, **extra}


def job_request(params: dict, message_id: str = "m1") -> JobRequest:
    return JobRequest(kind="video", params=params, seed=4, asker_id="alice", asker_name="Alice",
                      chat=ChatRef("family@chatroom", True), message_id=message_id)


def test_the_kind_renders_a_photo_job_with_the_photo_model_and_swaps_models(models, tmp_path: Path):
    config = VideoConfig.model_validate(video_config(models))
    kind = VideoKind(lambda: config)
    request = VideoRequest(PROMPT, image=photo((200, 40, 40)), **SMALL)
    kind.check(request)
    params = request.to_dict()
    params.pop("seed")
    path = kind.run(job_request(params), tmp_path / "000001-4", lambda *_: None, lambda: False)
    assert iio.imread(path).shape == (9, 64, 96, 3)
    assert kind.photo.generator.loaded and not kind.generator.loaded
    assert kind.photo.generator.info.variant == "5b-i2v"
    text = {k: v for k, v in params.items() if k != "image"}
    kind.run(job_request(text, "m2"), tmp_path / "000002-4", lambda *_: None, lambda: False)
    assert kind.generator.loaded and not kind.photo.generator.loaded  # one model in memory at a time


async def test_serve_video_and_the_remote_backend_carry_the_photo(models, tmp_path: Path):
    config = AppConfig.model_validate({"data_dir": str(tmp_path), "video": video_config(models)})
    app = create_app(config, TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        red, blue = photo((220, 30, 30)), photo((30, 30, 220))
        async with httpx.AsyncClient(transport=transport, base_url="http://service",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            bad = await http.post("/v1/videos/check", json={"prompt": PROMPT, "image": "bm90IGEgcGhvdG8="})
            assert bad.status_code == 422 and "不是照片" in bad.json()["detail"]
            ids = []
            for image in (red, blue):
                created = await http.post("/v1/videos", json={"prompt": PROMPT, "seed": 1, "image": image})
                assert created.status_code == 202
                ids.append(created.json()["id"])
            frames = []
            for job_id in ids:
                await finished(http, job_id)
                content = await http.get(f"/v1/videos/{job_id}/content")
                frames.append(iio.imread(content.content, extension=".mp4"))
            assert frames[0].shape == (9, 64, 96, 3)
            assert not np.array_equal(frames[0], frames[1])  # each job used its own photo
            assert stored_job(tmp_path, ids[0]).request.params["image"] == red

    # the bot's RemoteBackend hands the job's params (the photo among them) to a service unchanged
    seen: list[dict] = []

    def service(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen.append(json.loads(request.content))
            return httpx.Response(202, json={"id": 3, "status": "queued"})
        if request.url.path.endswith("/content"):
            return httpx.Response(200, content=b"mp4")
        return httpx.Response(200, json={"id": 3, "status": "done", "step": 2, "steps": 2})

    remote = VideoConfig(backend="remote", remote={"url": "http://gpu:8000", "poll_s": 0.01})
    backend = RemoteBackend(lambda: remote, lambda: TOKEN, transport=httpx.MockTransport(service))
    params = {k: v for k, v in VideoRequest(PROMPT, image=red, **SMALL).to_dict().items() if k != "seed"}
    job = Job(id=1, request=job_request(params), state=JobState.RUNNING, attempts=1, created_at=time.time())
    await asyncio.to_thread(backend.render, job, tmp_path / "000001-4")
    assert seen[0]["image"] == red and seen[0]["seed"] == 4


async def finished(http: httpx.AsyncClient, job_id: int, within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while True:
        status = (await http.get(f"/v1/videos/{job_id}")).json()
        if status["status"] in ("done", "failed", "cancelled"):
            assert status["status"] == "done", status
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


def test_larger_frames_get_a_proportionally_higher_rate_within_the_cap() -> None:
    assert scaled_bitrate(2000, 480, 720) == 2000
    assert scaled_bitrate(2000, 768, 1360) == 6044
    assert scaled_bitrate(2000, 64, 96) == 2000  # never below the configured rate
