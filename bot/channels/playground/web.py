"""The playground's web page and its API: the page, a message posted by a member, the event stream the
page reads (replayed after a reconnect), and the generated media. Served by `PlaygroundChannel.bind`."""

from __future__ import annotations

import base64
import binascii
from importlib import resources
from typing import TYPE_CHECKING, Any

from bot.channels.playground.channel import ADMIN_HINT, BOT_ID, ChannelStopping, PostedMessage, PostedPhoto

if TYPE_CHECKING:
    from bot.channels.playground.channel import PlaygroundChannel


def web_app(channel: PlaygroundChannel) -> Any:
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

    static = resources.files("bot.channels.playground") / "static"
    app = FastAPI(title="小爱 playground", docs_url=None, redoc_url=None, openapi_url=None)

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
        return {"topic": channel.config.room_topic, "bot": {"id": BOT_ID, "name": channel._bot_name()},
                "members": [{"id": i, "name": n} for i, n in channel._members.items()],
                "notice": channel.notice,
                "admin_hint": ADMIN_HINT.format(id=next(iter(channel._members)))}

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

    @app.get("/api/events")
    async def events(since: int = 0, epoch: str | None = None) -> StreamingResponse:
        if channel._stopping:  # the page must not think it is back; it retries in a second
            raise HTTPException(503, "shutting down", headers={"Connection": "close"})
        return StreamingResponse(channel.events(since, epoch), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/media/{relative:path}")
    def media(relative: str) -> FileResponse:  # sync: FastAPI runs it in a thread (disk access)
        path = channel.media_path(relative)
        if path is None:
            raise HTTPException(404, "no such media file")
        return FileResponse(path)

    for path, mounted in channel._mounts:
        app.mount(path, mounted)
    return app
