"""The WeChat connection's life: a supervisor that never gives up, and the login state machine.

python-wechaty's own `Wechaty.start()` exits the process when the gateway is down at start, waits a fixed
60 s after a mid-session drop, and sits idle on a refused token. So we drive the puppet ourselves: each
*session* builds a fresh Wechaty object, connects, and serves until the event stream ends; the
supervisor loop reconnects with a short capped backoff (back within seconds of the gateway's return) and
logs every state change.

Within a session, login, logout, a new QR code and a login as another account may come at any time (a
WeChat session drops every day or two). python-wechaty's event bridge forwards only the first login of a
connection and logs a failing listener as "internal error <>", so the channel bridges the puppet's events
itself and this class follows each login and logout: the self id, the names the bot answers to and the
state move with it. The message path is `channel.py`'s, which builds on this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from enum import StrEnum

from loguru import logger

# isort: off
from bot.channels.wechaty import compat  # noqa: F401  (must precede the wechaty imports below)
from bot.background import cancel_and_wait
from bot.channels.base import LoginStatus, MessageHandler, RoomInfo
from bot.config import WechatyConfig
from bot.logs import ConnectionLog, redactor, route_stdlib_logging

from wechaty import Wechaty, WechatyOptions  # noqa: E402  (after the compat fix)
from wechaty_puppet import EventErrorPayload, EventLoginPayload, EventLogoutPayload  # noqa: E402
from wechaty_puppet.schemas.puppet import PuppetOptions  # noqa: E402
import wechaty_puppet_service  # noqa: E402, F401  (wechaty imports it lazily; its logger prints the token)
# isort: on

route_stdlib_logging()  # python-wechaty's loggers print to stderr themselves, the token included

STATE_CHANGES_KEPT = 64  # the latest connection states (the login status reads the last)


class State(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    LOGGED_OUT = "logged_out"  # stream open, no account logged in: waiting for a scan or the login
    SERVING = "serving"  # logged in, messages flow
    DISCONNECTED = "disconnected"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host or "127.0.0.1", int(port)


class Session(Wechaty):
    """One connection to the gateway; dies with its stream. Its puppet's events reach the channel through
    `WechatyChannel._bridge_events`, not through Wechaty's own bridge."""


class SessionSupervisor:
    """Connects, reconnects and follows the login; `channel.WechatyChannel` adds the messages."""

    def __init__(self, endpoint: str, token: str | None, config: WechatyConfig) -> None:
        self.endpoint = endpoint
        self.token = token
        self.config = config  # reconnect backoff, health-check interval, the plugin's port
        self._state = State.STOPPED
        self._session: Session | None = None
        self._self_name: str | None = None
        self._self_id: str | None = None  # the logged-in account: its messages are our own echo
        self._on_message: MessageHandler | None = None
        self._stopping = asyncio.Event()
        self.state_changes: deque[tuple[float, str, str]] = deque(maxlen=STATE_CHANGES_KEPT)
        self.log = ConnectionLog("wechaty", endpoint)
        redactor().add(token)
        self._account: str | None = None
        self._login_qr: tuple[str, str, float] | None = None  # (payload, status, when) while logged out

    # -- hooks of the channel -----------------------------------------------------------------
    def _bridge_events(self, session: Session) -> None:
        raise NotImplementedError

    def _account_changed(self, session: Session | None) -> None:
        """A login or a logout: what was learned under the previous account no longer holds."""

    # -- state --------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is State.SERVING

    def login_status(self) -> LoginStatus:
        """The one reading of where the login stands (console, doctor, #状态 and the alerts share it)."""
        since, _state, reason = self.state_changes[-1] if self.state_changes else (0.0, "", "")
        qr = None if self.connected else self._login_qr
        return LoginStatus(state=self._state.value, since=since, reason=reason, account=self._account,
                           qr_code=qr[0] if qr else None, qr_status=qr[1] if qr else None,
                           qr_at=qr[2] if qr else None)

    def _on_scan(self, qr_code: str, status: object) -> None:
        """The puppet's login QR code (or its scan progress): kept for the admin console."""
        name = str(getattr(status, "name", status)).lower()
        previous = self._login_qr[0] if self._login_qr else None
        self._login_qr = (qr_code or previous or "", name, time.time())
        logger.info("wechaty: login QR code {} (scan status {})", "updated" if qr_code else "unchanged", name)

    def _set_state(self, state: State, reason: str = "") -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        self.state_changes.append((time.time(), state.value, reason))
        self.log.changed(previous.value, state.value, reason)

    # -- supervisor ---------------------------------------------------------------------------
    async def run(self, on_message: MessageHandler) -> None:
        """Serve until `stop()`: connect, serve, and reconnect with capped backoff on any failure."""
        self._on_message = on_message
        self._stopping.clear()
        delay = self.config.reconnect_initial_s
        while not self._stopping.is_set():
            self._set_state(State.CONNECTING, self.endpoint)
            started = time.monotonic()
            reason = "event stream ended"
            try:
                await self._serve_one_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means "reconnect"
                reason = _describe(exc)
            finally:
                await self._close_session()
            if self._stopping.is_set():
                break
            self._set_state(State.DISCONNECTED, reason)
            if time.monotonic() - started > 30:
                delay = self.config.reconnect_initial_s  # up for a while: start the backoff afresh
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, self.config.reconnect_max_s)
        self._set_state(State.STOPPED)

    async def _serve_one_session(self) -> None:
        host, port = split_endpoint(self.endpoint)
        # A cheap async probe first: wechaty's own check is a blocking telnet with a 3 s timeout.
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3)
        writer.close()
        options = WechatyOptions(
            puppet_options=PuppetOptions(end_point=self.endpoint, token=self.token),
            endpoint=self.endpoint,
            token=self.token,
            port=self.config.port,
        )
        session = Session(options)
        self._session = session
        self._login_qr = None  # a gateway still waiting on a code sends it again when the stream opens
        # We use no wechaty plugins; their manager would start a web server and a scheduler per login.
        session._plugin_manager.start = _no_plugins  # type: ignore[method-assign]
        await session.init_puppet()
        fresh_object_pools(session)
        self._bridge_events(session)
        self._set_state(State.LOGGED_OUT, "waiting for the login")
        watchdog = asyncio.create_task(self._watch(host, port))
        stream = asyncio.create_task(session.puppet.start())  # returns when the stream ends
        try:
            done, _ = await asyncio.wait({stream, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            (stream if stream in done else watchdog).result()
        finally:
            await cancel_and_wait(stream, watchdog)

    async def _watch(self, host: str, port: int) -> None:
        """End the session when the gateway stops accepting connections (a dead peer may not say so)."""
        failures = 0
        while failures < 2:
            await asyncio.sleep(self.config.health_interval_s)
            try:
                _r, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                writer.close()
                failures = 0
            except (OSError, TimeoutError):
                failures += 1
        raise ConnectionError("gateway stopped answering")

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        self._forget_account()
        if session is None:
            return
        with contextlib.suppress(Exception):
            if session._puppet is not None:
                await asyncio.wait_for(session.puppet.stop(), 2)
        channel = getattr(session._puppet, "channel", None)  # stop() skips closing it when its RPC fails
        if channel is not None:
            channel.close()

    async def stop(self) -> None:
        self._stopping.set()
        await self._close_session()

    # -- login and logout ---------------------------------------------------------------------
    async def _on_login(self, session: Session, payload: EventLoginPayload) -> None:
        """A login, the first of the connection or any later one (the same account or another)."""
        if session is not self._session:
            return
        self._account_changed(session)
        contact_id = payload.contact_id
        session.contact_id = contact_id
        name = contact_id
        try:
            contact = session.ContactSelf.load(contact_id)
            await asyncio.wait_for(contact.ready(), 5)
            name = contact.name or contact_id
        except Exception as exc:  # noqa: BLE001 - serve under the id rather than not at all
            logger.warning("wechaty: could not read the logged-in account's name: {}", exc)
        self._self_id, self._self_name = contact_id, name
        self._account, self._login_qr = f"{name} ({contact_id})", None
        self._set_state(State.SERVING, f"logged in as {self._account}")

    async def _on_logout(self, session: Session, payload: EventLogoutPayload) -> None:
        if session is not self._session:
            return
        self._forget_account()
        self._set_state(State.LOGGED_OUT, "logged out")

    def _forget_account(self) -> None:
        self._account = self._self_id = self._self_name = None
        self._account_changed(None)

    def _on_puppet_error(self, payload: object) -> None:
        text = payload.data if isinstance(payload, EventErrorPayload) else repr(payload)
        logger.warning("wechaty: the gateway reported an error: {}", redactor().redact(str(text)))

    # -- rooms --------------------------------------------------------------------------------
    async def find_room(self, topic: str) -> str | None:
        """Look the room up among the account's rooms by its exact topic (None when not connected)."""
        session = self._session
        if session is None or not self.connected:
            return None
        try:
            rooms = await session.Room.find_all()
        except Exception as exc:  # noqa: BLE001 - a failed lookup is "not found", logged
            logger.warning("wechaty: room lookup by topic failed: {}", exc)
            return None
        for room in rooms:
            if room.payload is not None and room.payload.topic == topic:
                return room.room_id
        return None

    async def rooms(self) -> list[RoomInfo]:
        """Every room the account is in, with its topic ([] when not connected or the lookup fails)."""
        session = self._session
        if session is None or not self.connected:
            return []
        try:
            found = await session.Room.find_all()
            for room in found:
                await room.ready()
        except Exception as exc:  # noqa: BLE001 - the console shows "none" rather than an error page
            logger.warning("wechaty: room list failed: {}", exc)
            return []
        return [RoomInfo(room.room_id, room.payload.topic if room.payload else room.room_id)
                for room in found]


def fresh_object_pools(session: Wechaty) -> None:
    """Give this session's user classes their own caches.

    python-wechaty caches loaded rooms/contacts in class-level `_pool` dicts shared by every Wechaty in
    the process; after a reconnect they would still point at the dead session's puppet.
    """
    for cls in (session.Room, session.Contact, session.ContactSelf, session.Message, session.Tag,
                session.Friendship, session.RoomInvitation, session.Image, session.Favorite):
        if "_pool" in {name for klass in cls.__mro__ for name in vars(klass)}:
            cls._pool = {}


async def _no_plugins() -> None:
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "UNAUTHENTICATED" in text.upper() or "token" in text.lower():
        return f"the gateway refused the token: {text}"
    if isinstance(exc, ConnectionRefusedError | OSError | TimeoutError):
        return f"gateway unreachable: {text}"
    return f"{type(exc).__name__}: {text}"
