"""The playground's web page and its API: the page, a message posted by a member, the event stream the
page reads (replayed after a reconnect), and the generated media. Served by `PlaygroundChannel.bind`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

MAX_TEXT = 2000  # characters in one posted message
MAX_PHOTO_BASE64 = 32_000_000  # base64 of a little over 20 MB: larger files get the kind "too large" reply


class ChannelStopping(Exception):
    """A post arrived while the server shuts down: the bot would not answer it any more."""


class PostedMessage(BaseModel):
    """What the page sends when a member types: who, the text (with any typed @小爱), and the page's own
    id for it, so a message sent again after a lost answer is shown and answered once."""

    member_id: str
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    client_id: str | None = Field(default=None, max_length=64)


class PostedPhoto(BaseModel):
    """A photo a member sent with the page's photo button: the file as base64, and its name."""

    member_id: str
    name: str = Field(default="photo.jpg", max_length=200)
    data: str = Field(min_length=1, max_length=MAX_PHOTO_BASE64)
    client_id: str | None = Field(default=None, max_length=64)


class Page(Protocol):
    """What the web app reads from the playground channel (its public side)."""

    stopping: bool
    mounts: list[tuple[str, Any]]

    def room_info(self) -> dict[str, Any]: ...

    async def post(self, member_id: str, text: str, client_id: str | None) -> dict[str, Any]: ...

    async def post_photo(self, member_id: str, data: bytes, name: str,
                         client_id: str | None) -> dict[str, Any]: ...

    def events(self, since: int, epoch: str | None) -> AsyncIterator[str]: ...

    def media_path(self, relative: str) -> Path | None: ...


def web_app(channel: Page) -> Any:
    from fastapi import FastAPI

    app = FastAPI(title="小爱 playground", docs_url=None, redoc_url=None, openapi_url=None)
    _add_page(app, channel)
    _add_posts(app, channel)
    _add_stream_and_media(app, channel)
    for path, mounted in channel.mounts:
        app.mount(path, mounted)
    return app


def _add_page(app: Any, channel: Page) -> None:
    """The page itself, its script and style, and the room it shows."""
    from fastapi import HTTPException
    from fastapi.responses import HTMLResponse

    static = resources.files("bot.channels.playground") / "static"

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    @app.get("/static/{name}")
    async def static_file(name: str) -> Any:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            raise HTTPException(404)
        return HTMLResponse((static / name).read_text(encoding="utf-8"), media_type=allowed[name])

    @app.get("/api/room")
    async def room() -> dict[str, Any]:
        return channel.room_info()


def _add_posts(app: Any, channel: Page) -> None:
    """What a member sends: a text message, a photo."""
    from fastapi import HTTPException

    @app.post("/api/messages")
    async def post_message(body: PostedMessage) -> dict[str, Any]:
        try:
            return await channel.post(body.member_id, body.text, body.client_id)
        except ChannelStopping as exc:
            raise HTTPException(503, str(exc)) from None
        except KeyError:
            raise HTTPException(400, f"unknown member {body.member_id!r}") from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.post("/api/photos")
    async def post_photo(body: PostedPhoto) -> dict[str, Any]:
        try:
            data = base64.b64decode(body.data, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(400, "the photo is not base64") from None
        try:
            return await channel.post_photo(body.member_id, data, body.name, body.client_id)
        except ChannelStopping as exc:
            raise HTTPException(503, str(exc)) from None
        except KeyError:
            raise HTTPException(400, f"unknown member {body.member_id!r}") from None


def _add_stream_and_media(app: Any, channel: Page) -> None:
    """What the page reads: the event stream (replayed after a reconnect) and the generated media."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse, StreamingResponse

    @app.get("/api/events")
    async def events(since: int = 0, epoch: str | None = None) -> StreamingResponse:
        if channel.stopping:  # the page must not think it is back; it retries in a second
            raise HTTPException(503, "shutting down", headers={"Connection": "close"})
        return StreamingResponse(channel.events(since, epoch), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/media/{relative:path}")
    def media(relative: str) -> FileResponse:  # sync: FastAPI runs it in a thread (disk access)
        path = channel.media_path(relative)
        if path is None:
            raise HTTPException(404, "no such media file")
        return FileResponse(path)
