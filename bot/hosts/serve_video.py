"""`xiaoai serve-video`: the video generator as an HTTP service for a GPU host (the bot's `RemoteBackend`).

It runs the same `video` job kind on a `JobQueue` over the same store as the bot (one GPU runs one job
at a time, jobs survive restarts), composed without an outbox: clients poll, and a job counts as
delivered once its file was downloaded. Every route but `/v1/health` needs
`Authorization: Bearer $XIAOAI_VIDEO_TOKEN`.

    POST   /v1/videos/check     {prompt, num_frames?, seed?, steps?, guidance?, height?, width?, image?}
                                (image: base64 JPEG/PNG = image-to-video with `video.photo`'s model)
                                -> 200 {ok} | 422 {detail}: validated, nothing queued
    POST   /v1/videos           same body -> 202 {id, status, position, eta_s}
    GET    /v1/videos/{id}      -> {id, status (queued|running|done|failed|cancelled), step, steps, error}
    GET    /v1/videos/{id}/content -> video/mp4 (409 until done)
    DELETE /v1/videos/{id}      -> {id, status}: cancels a queued or running render
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bot.config import AppConfig
from bot.jobs import Job, JobQueue, JobState, JobStore, Limits, LocalBackend
from bot.jobs.kinds import VideoKind
from bot.messages import ChatRef
from generators.base import GeneratorError

API_CHAT = ChatRef("api", is_room=False)
BEARER = HTTPBearer(auto_error=False)  # module level: route annotations are resolved from globals


class VideoBody(BaseModel):
    """One render. Omitted fields take the service's `video` config defaults."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)
    num_frames: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    image: str | None = Field(default=None, max_length=30_000_000)  # base64 photo: image-to-video


def _status(job: Job) -> dict[str, Any]:
    state = JobState.QUEUED if job.state is JobState.ACCEPTED else job.state
    steps = job.steps or job.request.params.get("steps", 0)
    return {"id": job.id, "status": state.value, "step": job.step, "steps": steps, "error": job.error,
            "seed": job.request.seed}


class VideoRoutes:
    """The service's handlers over one queue; `config` is read per request (defaults, retention)."""

    def __init__(self, queue: JobQueue, config: Callable[[], AppConfig]) -> None:
        self.queue = queue
        self.config = config

    def _request(self, body: VideoBody) -> Any:
        """The body as the kind's typed request; omitted fields take the config's defaults (the photo
        model's for a body with a photo)."""
        from generators.cogvideox import VideoRequest

        given = body.model_dump(exclude={"prompt"}, exclude_none=True)
        video = self.config().video
        sampling = video.photo.sampling if body.image else video.sampling
        return VideoRequest.from_config(body.prompt, sampling, **given)

    def _find(self, job_id: int) -> Job:
        job = self.queue.get(job_id)
        if job is None:
            raise HTTPException(404, f"no video job {job_id}")
        return job

    async def health(self) -> dict[str, Any]:
        return {"ok": True, **self.queue.status()}

    async def check(self, body: VideoBody) -> dict[str, Any]:
        await self.queue.check("video", self._request(body))
        return {"ok": True}

    async def create(self, body: VideoBody) -> dict[str, Any]:
        """The body is checked here once (422 on a broken rule), then queued as checked."""
        seed = random.SystemRandom().randrange(2**31) if body.seed is None else body.seed
        checked = await self.queue.check("video", replace(self._request(body), seed=seed))
        job = checked.job(asker_id="api", asker_name="api", chat=API_CHAT, message_id=uuid.uuid4().hex)
        limits = Limits(seconds_per_job=self.config().video.queue.seconds_per_job)
        receipt = await self.queue.submit(job, limits)
        return {"id": receipt.job.id, "status": "queued", "position": receipt.position,
                "eta_s": receipt.eta_s, "seed": seed}

    async def status(self, job_id: int) -> dict[str, Any]:
        return _status(self._find(job_id))

    async def content(self, job_id: int) -> FileResponse:
        job = self._find(job_id)
        if job.state is not JobState.DONE:
            raise HTTPException(409, f"video job {job_id} is {job.state.value}, not done")
        if job.result is None or not job.result.is_file():
            raise HTTPException(404, f"the file of video job {job_id} has expired")
        await asyncio.to_thread(self.queue.store.mark_delivered, job.id, time.time())
        return FileResponse(job.result, media_type="video/mp4", filename=job.result.name)

    async def cancel(self, job_id: int) -> dict[str, Any]:
        self._find(job_id)
        await self.queue.cancel(job_id)
        return _status(self._find(job_id))


def _bearer_check(token: str) -> Callable[..., None]:
    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return authorised


async def _generator_error(request: Request, exc: GeneratorError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


def create_app(config: AppConfig, token: str, *, kind: VideoKind | None = None,
               config_getter: Callable[[], AppConfig] | None = None) -> FastAPI:
    """The FastAPI app; jobs live under `data_dir/video-service`. `token` must be non-empty."""
    if not token:
        raise ValueError("serve-video needs a token (env XIAOAI_VIDEO_TOKEN)")
    current = config_getter or (lambda: config)
    video_kind = kind or VideoKind(lambda: current().video)
    folder = config.data_dir / "video-service"
    queue = JobQueue(JobStore(folder / "jobs.sqlite3"), [LocalBackend()], media_dir=folder / "media")
    queue.register(video_kind, label="视频",
                   retention_s=lambda: current().video.queue.media_max_age_hours * 3600)
    routes = VideoRoutes(queue, current)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await queue.start()
        if current().video.load_at_start:
            await asyncio.to_thread(video_kind.generator.load)
        try:
            yield
        finally:
            await queue.stop()

    app = FastAPI(title="xiaoai video service", lifespan=lifespan)
    app.add_exception_handler(GeneratorError, _generator_error)  # type: ignore[arg-type]
    guarded = [Depends(_bearer_check(token))]
    app.get("/v1/health")(routes.health)
    app.post("/v1/videos/check", dependencies=guarded)(routes.check)
    app.post("/v1/videos", status_code=202, dependencies=guarded)(routes.create)
    app.get("/v1/videos/{job_id}", dependencies=guarded)(routes.status)
    app.get("/v1/videos/{job_id}/content", dependencies=guarded)(routes.content)
    app.delete("/v1/videos/{job_id}", dependencies=guarded)(routes.cancel)
    return app


def serve(config: AppConfig, token: str, host: str, port: int) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(config, token), host=host, port=port, log_level="info")
