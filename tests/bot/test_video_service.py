"""`xiaoai serve-video`: the real FastAPI app over a tiny CogVideoX folder, through httpx's ASGI transport,
and the bot's `RemoteBackend` against it on a loopback uvicorn."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import imageio.v3 as iio
import pytest
import uvicorn

from bot.config import AppConfig, VideoConfig
from bot.hosts.serve_video import create_app
from bot.jobs import Job, JobRequest, JobState, JobStore, RemoteBackend
from bot.jobs.kinds import VideoKind
from bot.jobs.remote import REFUSED
from bot.messages import ChatRef
from generators.base import GenerationCancelled, GeneratorError
from generators.cogvideox import VideoRequest
from tests.support.peer import free_port

TOKEN = "s3cret-token"
PROMPT = "A slow tracking shot of a fluffy panda playing a guitar in a green bamboo forest."
SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


def service_config(tmp_path: Path, model: Path) -> AppConfig:
    video = {"model": {"path": str(model)}, "sampling": SMALL}
    return AppConfig.model_validate({"data_dir": str(tmp_path), "video": video})


@pytest.fixture
async def client(tmp_path: Path, tiny_model: Path):
    app = create_app(service_config(tmp_path, tiny_model), TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield http


def stored_job(data_dir: Path, job_id: int) -> Job | None:
    """A service job as its store keeps it, read from the SQLite file as another process would."""
    store = JobStore(data_dir / "video-service" / "jobs.sqlite3")
    try:
        return store.get(job_id)
    finally:
        store.close()


async def finished(http: httpx.AsyncClient, job_id: int, within: float = 30) -> dict:
    deadline = time.monotonic() + within
    while True:
        status = (await http.get(f"/v1/videos/{job_id}")).json()
        if status["status"] in ("done", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


async def test_wrong_or_missing_token_is_refused(client: httpx.AsyncClient):
    body = {"prompt": PROMPT}
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = await client.post("/v1/videos", json=body, headers=headers)
        assert response.status_code == 401
        assert (await client.get("/v1/videos/1", headers=headers)).status_code == 401
    assert (await client.get("/v1/health", headers={"Authorization": ""})).status_code == 200
    assert (await client.get("/v1/health")).json()["queued"] == 0  # nothing was queued by refused calls


async def test_render_and_download_mp4(client: httpx.AsyncClient, tmp_path: Path):
    created = await client.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 9, "seed": 3})
    assert created.status_code == 202 and created.json()["status"] == "queued"
    status = await finished(client, created.json()["id"])
    assert status["status"] == "done" and status["seed"] == 3
    assert status["steps"] == SMALL["steps"]  # what the request left out comes from video.sampling
    content = await client.get(f"/v1/videos/{status['id']}/content")
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    assert stored_job(tmp_path, status["id"]).delivered_at is not None  # polled and fetched
    frames = iio.imread(content.content, extension=".mp4")
    assert frames.shape == (9, 64, 96, 3)
    assert iio.immeta(content.content, extension=".mp4")["fps"] == 8

    again = await client.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 9, "seed": 3})
    await finished(client, again.json()["id"])
    repeat = await client.get(f"/v1/videos/{again.json()['id']}/content")
    assert (iio.imread(repeat.content, extension=".mp4") == frames).all()


async def test_bad_parameters_are_refused_before_queueing(client: httpx.AsyncClient):
    bad_frames = await client.post("/v1/videos/check", json={"prompt": PROMPT, "num_frames": 10})
    assert bad_frames.status_code == 422 and "8 的倍数加 1" in bad_frames.json()["detail"]
    bad_size = await client.post("/v1/videos", json={"prompt": PROMPT, "height": 72})
    assert bad_size.status_code == 422 and "16 的倍数" in bad_size.json()["detail"]
    unknown = await client.post("/v1/videos", json={"prompt": PROMPT, "fps": 30})
    assert unknown.status_code == 422
    assert (await client.post("/v1/videos/check", json={"prompt": PROMPT})).json() == {"ok": True}
    assert (await client.get("/v1/health")).json()["queued"] == 0


class CountedVideoKind(VideoKind):
    """The real video kind, counting its checks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checks = 0

    def check(self, request) -> None:
        self.checks += 1
        super().check(request)


async def test_a_body_is_checked_once_where_it_enters(tmp_path: Path, tiny_model: Path):
    config = service_config(tmp_path, tiny_model)
    kind = CountedVideoKind(lambda: config.video)
    app = create_app(config, TOKEN, kind=kind)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            bad_seed = await http.post("/v1/videos", json={"prompt": PROMPT, "seed": -1})
            assert bad_seed.status_code == 422 and "随机数" in bad_seed.json()["detail"]
            bad_frames = await http.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 10})
            assert bad_frames.status_code == 422 and "8 的倍数加 1" in bad_frames.json()["detail"]
            assert kind.checks == 2 and (await http.get("/v1/health")).json()["queued"] == 0
            created = await http.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 9})
            assert created.status_code == 202 and kind.checks == 3  # once, not again on submit
            assert (await finished(http, created.json()["id"]))["status"] == "done"


async def test_content_before_done_and_cancel(client: httpx.AsyncClient):
    first = (await client.post("/v1/videos", json={"prompt": PROMPT, "steps": 50})).json()
    second = (await client.post("/v1/videos", json={"prompt": PROMPT})).json()
    assert (await client.get(f"/v1/videos/{second['id']}/content")).status_code == 409
    cancelled = await client.delete(f"/v1/videos/{second['id']}")
    assert cancelled.json()["status"] == "cancelled"
    await client.delete(f"/v1/videos/{first['id']}")  # running: stops at the next step
    assert (await finished(client, first["id"]))["status"] == "cancelled"
    assert (await client.get("/v1/videos/999")).status_code == 404


@pytest.fixture
def served(tmp_path: Path, tiny_model: Path):
    """The service on a real loopback port (uvicorn in a thread)."""
    port = free_port()
    app = create_app(service_config(tmp_path / "service", tiny_model), TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def remote(url: str, token: str | None) -> RemoteBackend:
    config = VideoConfig(backend="remote", remote={"url": url, "poll_s": 0.05}, sampling=SMALL)
    return RemoteBackend(lambda: config, lambda: token)


def video_job(request: VideoRequest, job_id: int = 1) -> Job:
    params = {k: v for k, v in request.to_dict().items() if k != "seed"}
    return Job(id=job_id, request=JobRequest("video", params, request.seed or 0, "alice", "妈妈",
                                             ChatRef("family@chatroom", True), f"m{job_id}"),
               state=JobState.RUNNING, attempts=1, created_at=time.time())


KIND = VideoKind(VideoConfig)  # only its name reaches the remote backend


async def test_remote_backend_renders_over_http(served: str, tmp_path: Path):
    backend = remote(served, TOKEN)
    request = VideoRequest(PROMPT, seed=5, **SMALL)
    assert backend.handles("video") and not backend.handles("image")
    await backend.check(KIND, request)
    steps: list[tuple[int, int]] = []
    path = await backend.execute(KIND, video_job(request), tmp_path / "downloads" / "000001-5",
                                 lambda i, n: steps.append((i, n)), lambda: False)
    assert path == tmp_path / "downloads" / "000001-5.mp4" and path.parent == tmp_path / "downloads"
    assert iio.imread(path).shape == (9, 64, 96, 3)
    assert not list((tmp_path / "downloads").glob("*.part"))
    assert steps and steps[-1][1] == 2
    with pytest.raises(GeneratorError, match="8 的倍数加 1"):
        await backend.check(KIND, VideoRequest(PROMPT, **{**SMALL, "num_frames": 12}))
    with pytest.raises(GenerationCancelled):
        await backend.execute(KIND, video_job(VideoRequest(PROMPT, **{**SMALL, "steps": 50}), 2),
                              tmp_path / "downloads" / "000002-0", lambda i, n: None, lambda: True)
    await backend.stop()


async def test_remote_backend_with_wrong_token_or_no_service(served: str, tmp_path: Path):
    with pytest.raises(GeneratorError) as caught:
        await remote(served, "wrong").check(KIND, VideoRequest(PROMPT, **SMALL))
    assert str(caught.value) == REFUSED and "XIAOAI_VIDEO_TOKEN" in caught.value.admin_detail
    with pytest.raises(GeneratorError, match="视频服务暂时连不上") as caught:
        nobody = remote(f"http://127.0.0.1:{free_port()}", TOKEN)
        await nobody.check(KIND, VideoRequest(PROMPT, **SMALL))
    assert "serve-video" in caught.value.admin_detail and "127.0.0.1" in caught.value.admin_detail


def test_remote_backend_follows_the_config_switch():
    current = {"config": VideoConfig(backend="local")}
    backend = RemoteBackend(lambda: current["config"], lambda: TOKEN)
    assert not backend.handles("video")  # video.backend: local renders in the bot
    current["config"] = VideoConfig(backend="remote", remote={"url": "http://gpu-box:8000"})
    assert backend.handles("video") and backend.live_workers() == 1


def test_service_refuses_to_start_without_a_token(tmp_path: Path, tiny_model: Path):
    with pytest.raises(ValueError, match="XIAOAI_VIDEO_TOKEN"):
        create_app(service_config(tmp_path, tiny_model), "")


class FlakyService:
    """A scripted serve-video: answers from `polls` in order (an exception = the network dropped)."""

    def __init__(self, polls: list) -> None:
        self.polls = polls
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return httpx.Response(202, json={"id": 7, "status": "queued"})
        if request.method == "DELETE":
            return httpx.Response(200, json={"id": 7, "status": "cancelled"})
        if request.url.path.endswith("/content"):
            return httpx.Response(200, content=b"mp4 bytes")
        answer = self.polls.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def flaky_remote(service: FlakyService) -> RemoteBackend:
    remote = {"url": "http://gpu-box:8000", "poll_s": 0.01}
    config = VideoConfig(backend="remote", remote=remote, sampling=SMALL)
    return RemoteBackend(lambda: config, lambda: TOKEN, transport=httpx.MockTransport(service))


def test_remote_backend_rides_out_a_dropped_poll(tmp_path: Path):
    running = httpx.Response(200, json={"id": 7, "status": "running", "step": 1, "steps": 2})
    done = httpx.Response(200, json={"id": 7, "status": "done", "step": 2, "steps": 2})
    service = FlakyService([running, httpx.ConnectError("wifi dropped"), done])
    path = flaky_remote(service).render(video_job(VideoRequest(PROMPT, **SMALL)), tmp_path / "000001-0")
    assert path.read_bytes() == b"mp4 bytes"
    assert "DELETE /v1/videos/7" not in service.calls


def test_remote_backend_that_gives_up_polling_cancels_the_render(tmp_path: Path):
    service = FlakyService([httpx.Response(500, json={"detail": "boom"})])
    with pytest.raises(GeneratorError, match="视频服务出错了") as caught:
        flaky_remote(service).render(video_job(VideoRequest(PROMPT, **SMALL)), tmp_path / "000001-0")
    assert "HTTP 500" in caught.value.admin_detail and "boom" in caught.value.admin_detail
    assert service.calls[-1] == "DELETE /v1/videos/7"  # the GPU host does not keep rendering for nobody
    assert not list(tmp_path.iterdir())  # no partial file left behind


async def test_omitted_fields_take_the_service_config_defaults(tmp_path: Path, tiny_model: Path):
    app = create_app(service_config(tmp_path, tiny_model), TOKEN)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            created = await http.post("/v1/videos", json={"prompt": PROMPT})
            assert created.status_code == 202
            job = stored_job(tmp_path, created.json()["id"])
            assert {k: job.request.params[k] for k in SMALL} == SMALL  # num_frames 9 from config, not 49
            await finished(http, job.id)
