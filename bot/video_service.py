"""`xiaoai serve-video`: the video generator as an HTTP service for a GPU host (the `remote` backend).

It runs the same `video` job kind with the `local` backend on the same `JobQueue` as the bot (one GPU
runs one job at a time, jobs survive restarts), minus the chat delivery: clients poll. Every route but
`/v1/health` needs `Authorization: Bearer $XIAOAI_VIDEO_TOKEN`.

    POST   /v1/videos/check     {prompt, num_frames?, seed?, steps?, guidance?, height?, width?}
                                -> 200 {ok} | 422 {detail}: validated, nothing queued
    POST   /v1/videos           same body -> 202 {id, status, position, eta_s}
    GET    /v1/videos/{id}      -> {id, status (queued|running|done|failed|cancelled), step, steps, error}
    GET    /v1/videos/{id}/content -> video/mp4 (409 until done)
    DELETE /v1/videos/{id}      -> {id, status}: cancels a queued or running render
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bot.config import AppConfig
from bot.jobs import JobQueue, JobRequest, JobState, Limits
from bot.messages import ChatRef
from bot.video import VideoKind
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


def _status(job: Any) -> dict[str, Any]:
    state = JobState.QUEUED if job.state is JobState.ACCEPTED else job.state
    steps = job.steps or job.request.params.get("steps", 0)
    return {"id": job.id, "status": state.value, "step": job.step, "steps": steps, "error": job.error,
            "seed": job.request.seed}


def create_app(config: AppConfig, token: str, *, kind: VideoKind | None = None,
               config_getter: Callable[[], AppConfig] | None = None) -> FastAPI:
    """The FastAPI app; jobs live under `data_dir/video-service`. `token` must be non-empty."""
    if not token:
        raise ValueError("serve-video needs a token (env XIAOAI_VIDEO_TOKEN)")
    current = config_getter or (lambda: config)
    video_kind = kind or VideoKind(lambda: current().video, force_local=True)
    queue = JobQueue(config.data_dir / "video-service", deliver=None)
    queue.register(video_kind, label="视频",
                   retention_s=lambda: current().video.queue.media_max_age_hours * 3600)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await queue.start()
        if current().video.load_at_start:
            import asyncio

            await asyncio.to_thread(video_kind.generator.load)
        try:
            yield
        finally:
            await queue.stop()

    app = FastAPI(title="xiaoai video service", lifespan=lifespan)
    app.state.queue = queue
    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]

    def params_of(body: VideoBody) -> tuple[dict[str, Any], int | None]:
        from generators.cogvideox import VideoRequest

        given = body.model_dump(exclude={"prompt", "seed"}, exclude_none=True)
        params = VideoRequest.from_config(body.prompt, current().video.sampling, **given).to_dict()
        return {k: v for k, v in params.items() if k != "seed"}, body.seed

    @app.exception_handler(GeneratorError)
    async def generator_error(request: Request, exc: GeneratorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, **queue.status()}

    @app.post("/v1/videos/check", dependencies=guarded)
    async def check(body: VideoBody) -> dict[str, Any]:
        params, seed = params_of(body)
        await queue.check("video", {**params, "seed": seed})
        return {"ok": True}

    @app.post("/v1/videos", status_code=202, dependencies=guarded)
    async def create(body: VideoBody) -> dict[str, Any]:
        import random

        params, seed = params_of(body)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        request = JobRequest(kind="video", params=params, seed=seed, asker_id="api", asker_name="api",
                             chat=API_CHAT, message_id=uuid.uuid4().hex)
        receipt = await queue.submit(request, Limits(seconds_per_job=current().video.queue.seconds_per_job))
        return {"id": receipt.job.id, "status": "queued", "position": receipt.position,
                "eta_s": receipt.eta_s, "seed": seed}

    def find(job_id: int) -> Any:
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, f"no video job {job_id}")
        return job

    @app.get("/v1/videos/{job_id}", dependencies=guarded)
    async def status(job_id: int) -> dict[str, Any]:
        return _status(find(job_id))

    @app.get("/v1/videos/{job_id}/content", dependencies=guarded)
    async def content(job_id: int) -> FileResponse:
        job = find(job_id)
        if job.state is not JobState.DONE:
            raise HTTPException(409, f"video job {job_id} is {job.state.value}, not done")
        if job.result is None or not job.result.is_file():
            raise HTTPException(404, f"the file of video job {job_id} has expired")
        return FileResponse(job.result, media_type="video/mp4", filename=job.result.name)

    @app.delete("/v1/videos/{job_id}", dependencies=guarded)
    async def cancel(job_id: int) -> dict[str, Any]:
        find(job_id)
        await queue.cancel(job_id)
        return _status(find(job_id))

    return app


def serve(config: AppConfig, token: str, host: str, port: int) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(config, token), host=host, port=port, log_level="info")
