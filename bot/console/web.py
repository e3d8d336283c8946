"""The console's web app: one page (static/) and a JSON API under /admin/api, all behind the login.

Routes and who may call them:
    GET  /admin/, /admin/static/*           anyone (no data in them)
    GET  /admin/api/session                 anyone: whether a login is needed; the CSRF token once in
    POST /admin/api/login                   anyone, rate-limited by the lock-out
    GET  /admin/api/{status,qr.svg,jobs,rooms,settings,keys,logs}                    a session
    POST /admin/api/{logout,jobs/N/cancel,rooms,settings,keys,keys/test/P,reconnect,reload}
                                                                    a session and its CSRF token
Every text the page shows comes in the visitor's language (cookie xiaoai_lang: zh, the default, or en).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from bot.config import AppConfig, ConfigError
from bot.console.actions import add_actions
from bot.console.auth import COOKIE, CSRF_HEADER, Auth, LockedOut, Session
from bot.console.channel_link import phase
from bot.console.deps import ConsoleDeps
from bot.console.forms import (
    ROOM_QUOTAS,
    SETTINGS,
    RoomForm,
    file_value,
    room_edit,
    settings_edit,
)
from bot.console.words import LANG_COOKIE, QUOTA_LABELS, error, lang_of, pick

if TYPE_CHECKING:
    from bot.jobs import JobQueue

FINISHED_WINDOW_S = 24 * 3600
_STATIC = {"console.js": "text/javascript", "console.css": "text/css"}


class LoginBody(BaseModel):
    password: str = Field(max_length=1024)


class RoomBody(BaseModel):
    room_id: str = Field(min_length=1, max_length=200)
    topic: str | None = Field(default=None, max_length=200)
    allowed: bool
    intents: list[str] | None = None
    persona: str = Field(default="", max_length=4000)
    quotas: dict[str, str] = Field(default_factory=dict)


class SettingsBody(BaseModel):
    values: dict[str, str | None]


def qr_svg(payload: str) -> str:
    """The login QR code as an SVG (the `qrcode` package; no image library needed)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(payload, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=12, border=2)
    return image.to_string(encoding="unicode")


def _job_row(jobs: JobQueue, job: Any, topics: dict[str, str]) -> dict[str, Any]:
    request = job.request
    room = request.chat.chat_id
    return {"id": job.id, "kind": request.kind, "label": jobs.label(request.kind),
            "asker": request.asker_name,
            "asker_id": request.asker_id, "room": room, "room_topic": topics.get(room, ""),
            "is_room": request.chat.is_room,
            "state": job.state.value, "state_text": job.state.text, "step": job.step, "steps": job.steps,
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "error": job.error}


@dataclass(frozen=True)
class Guards:
    """The request dependencies every route group uses: who is logged in, CSRF for changes, the language."""

    session_of: Callable[[Request], Session]
    changing: Callable[..., Session]
    lang: Callable[[Request], str]


def _guards(auth: Auth) -> Guards:
    def lang(request: Request) -> str:
        return lang_of(request.cookies.get(LANG_COOKIE))

    def session_of(request: Request) -> Session:
        session = auth.session(request.cookies.get(COOKIE))
        if session is None:
            raise HTTPException(401, error("login_first", lang(request)))
        return session

    def changing(request: Request, session: Session = Depends(session_of)) -> Session:  # noqa: B008
        if not auth.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, error("csrf", lang(request)))
        return session

    return Guards(session_of, changing, lang)


def _set_cookie(response: Response, session: Session) -> None:
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", path="/admin")


def build_console(deps: ConsoleDeps, auth: Auth) -> FastAPI:
    """The console as an ASGI app; mount it at /admin (its cookie and page links say /admin)."""
    app = FastAPI(title="小爱 console", docs_url=None, redoc_url=None, openapi_url=None)
    guards = _guards(auth)
    _add_page_and_login(app, deps, auth, guards)
    _add_status_and_queue(app, deps, guards)
    _add_rooms_and_settings(app, deps, guards)
    add_actions(app, deps, guards.session_of, guards.changing, guards.lang)
    return app


def _add_page_and_login(app: FastAPI, deps: ConsoleDeps, auth: Auth, guards: Guards) -> None:
    """The page itself, its static files, and logging in and out."""
    static = resources.files("bot.console") / "static"

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    @app.get("/static/{name}")
    async def static_file(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(404)
        return Response((static / name).read_text(encoding="utf-8"), media_type=_STATIC[name])

    @app.get("/api/session")
    async def session_info(request: Request, response: Response) -> dict[str, Any]:
        session = auth.session(request.cookies.get(COOKIE))
        if session is None and not auth.required:
            session = auth.open_session()
            _set_cookie(response, session)
        return {"password_required": auth.required, "authenticated": session is not None,
                "csrf": session.csrf if session else None, "bot": deps.config().bot.name,
                "lang": guards.lang(request)}

    @app.post("/api/login")
    async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        client = request.client.host if request.client else "?"
        try:
            session = await asyncio.to_thread(auth.login, body.password, client)
        except LockedOut as exc:
            wait_s = int(exc.seconds) + 1
            raise HTTPException(429, error("locked", guards.lang(request), seconds=wait_s)) from None
        if session is None:
            raise HTTPException(401, error("wrong_password", guards.lang(request)))
        _set_cookie(response, session)
        return {"authenticated": True, "csrf": session.csrf}

    @app.post("/api/logout")
    async def logout(response: Response, session: Session = Depends(guards.changing)) -> dict[str, Any]:  # noqa: B008
        auth.logout(session.token)
        response.delete_cookie(COOKIE, path="/admin")
        return {"authenticated": False}


def _add_status_and_queue(app: FastAPI, deps: ConsoleDeps, guards: Guards) -> None:
    """The status page (checks, the WeChat login and its QR) and the job queue."""
    topics: dict[str, str] = {}
    topics_read = [0.0]

    async def room_topics() -> dict[str, str]:
        """Room id -> topic for the queue page (the channel's list, read at most once a minute)."""
        if time.monotonic() - topics_read[0] > 60:
            topics_read[0] = time.monotonic()
            topics.update({room.room_id: room.topic for room in await deps.rooms()})
        return topics

    @app.get("/api/status", dependencies=[Depends(guards.session_of)])
    async def status(request: Request) -> dict[str, Any]:
        from bot.logs import redactor

        language = guards.lang(request)
        login_status = deps.login_status()
        checks = await deps.checks()
        watcher = deps.watcher
        key, words = phase(login_status)
        connection = {**login_status.__dict__, "has_qr": bool(login_status.qr_code), "phase": key,
                      "text": pick(words, language), "reason": redactor().redact(login_status.reason or "")}
        connection.pop("qr_code")  # the image route serves it; the payload is a login credential
        return {"connection": connection,
                "checks": [c.as_dict(language) for c in checks], "now": time.time(),
                "config": {"path": str(watcher.path) if watcher.path else None, "reloads": watcher.reloads}}

    @app.get("/api/qr.svg", dependencies=[Depends(guards.session_of)])
    async def qr_image(request: Request) -> Response:
        payload = deps.login_status().qr_code
        if not payload:
            raise HTTPException(404, error("no_qr", guards.lang(request)))
        return Response(qr_svg(payload), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs", dependencies=[Depends(guards.session_of)])
    async def jobs() -> dict[str, Any]:
        queue = deps.jobs
        pending = await asyncio.to_thread(queue.list)
        finished = await asyncio.to_thread(queue.store.finished_since, time.time() - FINISHED_WINDOW_S)
        names = await room_topics()
        return {"pending": [_job_row(queue, j, names) for j in pending],
                "finished": [_job_row(queue, j, names) for j in finished]}

    @app.post("/api/jobs/{job_id}/cancel", dependencies=[Depends(guards.changing)])
    async def cancel(job_id: int, request: Request) -> dict[str, Any]:
        job = await deps.jobs.cancel(job_id)
        if job is None:
            raise HTTPException(404, error("no_job", guards.lang(request), job=job_id))
        return {"cancelled": job_id}


def _add_rooms_and_settings(app: FastAPI, deps: ConsoleDeps, guards: Guards) -> None:
    """The groups page and the settings form, both written through the config watcher."""

    @app.get("/api/rooms", dependencies=[Depends(guards.session_of)])
    async def rooms(request: Request) -> dict[str, Any]:
        language = guards.lang(request)
        config = deps.config()
        groups = config.groups
        found = {room.room_id: room.topic for room in await deps.rooms()}
        for key in groups.rooms:  # configured rooms the account is not in (or not yet seen)
            if key not in found and key not in found.values():
                found[key] = key
        rows = []
        for room_id, topic in found.items():
            key, entry = groups.room_entry(room_id, topic)
            rows.append({
                "room_id": room_id, "topic": topic, "key": key, "allowed": groups.allows(room_id, topic),
                "intents": list(entry.intents) if entry and entry.intents is not None else None,
                "persona": (entry.persona or "") if entry else "",
                "quotas": {k: getattr(entry.quotas, k) for k in entry.quotas.model_fields_set}
                if entry and entry.quotas else {},
            })
        return {"rooms": rows, "intents": list(deps.intents), "quota_keys": list(ROOM_QUOTAS),
                "intent_labels": dict(deps.intents),
                "quota_labels": {k: pick(QUOTA_LABELS[k], language) for k in ROOM_QUOTAS},
                "writable": deps.watcher.path is not None}

    @app.post("/api/rooms", dependencies=[Depends(guards.changing)])
    async def save_room(body: RoomBody) -> dict[str, Any]:
        form = RoomForm(body.room_id, body.topic, body.allowed,
                        None if body.intents is None else tuple(body.intents), body.persona, body.quotas)
        key, _entry = deps.config().groups.room_entry(body.room_id, body.topic)
        config = await _update(room_edit, form, key, list(deps.intents))
        applied = config.for_chat(_chat(body.room_id), body.topic)
        return {"saved": True, "allowed": config.groups.allows(body.room_id, body.topic),
                "intents": sorted(applied.intents) if applied.intents is not None else None}

    @app.get("/api/settings", dependencies=[Depends(guards.session_of)])
    async def settings(request: Request) -> dict[str, Any]:
        language = guards.lang(request)
        values = await asyncio.to_thread(file_value, deps.watcher.path, deps.config())
        return {"fields": [{"path": f.path, "label": pick(f.label, language), "kind": f.kind,
                            "choices": list(f.choices), "hint": pick(f.hint, language),
                            "value": _shown(f.kind, values(f.path))}
                           for f in SETTINGS],
                "writable": deps.watcher.path is not None}

    @app.post("/api/settings", dependencies=[Depends(guards.changing)])
    async def save_settings(body: SettingsBody) -> dict[str, Any]:
        await _update(settings_edit, body.values)
        return {"saved": True}

    async def _update(make_edit: Callable[..., Any], *args: Any) -> AppConfig:
        """Validated, comment-keeping write; the validator's message as a 422 when refused."""
        try:
            return await deps.watcher.update(make_edit(*args))
        except ConfigError as exc:  # the form is about this file: its path would only be noise here
            raise HTTPException(422, str(exc).removeprefix(f"{deps.watcher.path}：")) from None


def _shown(kind: str, value: str | None) -> str | None:
    """A number field's null ("no limit") is written out, so an empty box only ever means "default"."""
    return "null" if kind == "number" and value is None else value


def _chat(room_id: str) -> Any:
    from bot.messages import ChatRef

    return ChatRef(room_id, is_room=True)
