"""A local web page that looks and feels like a WeChat group: try 小爱 with no WeChat account.

It is one more `Channel`: members typed on the page become `IncomingMessage`s for the same Router the
WeChat transport feeds, and the bot's `Reply`s come back live over server-sent events. Pictures and MP4s
are shown inline; they are served from the media folder only (anything else is copied in first), and
the media route refuses any path that leaves that folder. The page listens on a loopback address only:
it has no login.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from loguru import logger

from bot.background import cancel_and_wait
from bot.channels.base import LoginStatus, MessageHandler, RoomInfo
from bot.channels.playground.transcript import Transcript
from bot.channels.playground.web import MAX_TEXT, ChannelStopping, web_app
from bot.config import PlaygroundConfig
from bot.messages import ChatRef, IncomingMessage, MessageKind, Reply

ROOM_ID = "playground@chatroom"
BOT_ID = "xiaoai"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".webm"}
KEEPALIVE_S = 15.0
SEEN_CLIENT_IDS = 500
ADMIN_HINT = "想用管理命令？把成员 id 写进 config.yaml 的 bot.admins，例如 admins: [{id}]"


JobStatus = Callable[[], list[dict[str, Any]]]
"""Live jobs for the page's progress panel: [{id, label, asker, state, step, steps}]; [] when none."""


class PlaygroundChannel:
    """The web playground transport: a simulated group in a web page. `bot_name` is what the page shows."""

    name = "playground"

    def __init__(
        self,
        config: PlaygroundConfig,
        media_dir: Path,
        bot_name: Callable[[], str],
        *,
        job_status: JobStatus | None = None,
        notice: Callable[[], str] | str = "",
        media_labels: dict[str, str] | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.config = config
        self.media_dir = Path(media_dir)
        self._bot_name = bot_name
        self.job_status = job_status
        self.notice = notice  # shown above the chat (or what gives it), e.g. "还没有接上语言模型…"
        self.media_labels = media_labels or {}  # media kind -> line added to such replies ("演示模型：噪声")
        self.chat = ChatRef(ROOM_ID, is_room=True)
        self._members = {m.id: m.name for m in config.members}
        self._socket: socket.socket | None = None
        self._url: str | None = None
        self._server: Any = None  # uvicorn.Server while running
        self._on_message: MessageHandler | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.transcript = transcript or Transcript(None)  # replayed to a page that (re)connects
        self._posted: OrderedDict[str, dict[str, Any]] = OrderedDict()  # client id -> its shown event
        for event in self.transcript.since()[-SEEN_CLIENT_IDS:]:  # a resend after a restart is still known
            if event.get("client_id"):
                self._posted[event["client_id"]] = event
        self._busy = 0  # messages the bot is still working on (the "正在输入…" line)
        self._tasks: set[asyncio.Task] = set()
        self._serving = False
        self._stopping = False
        self._served = asyncio.Event()
        self._started_at = time.time()
        self._mounts: list[tuple[str, Any]] = []  # (path, ASGI app) served beside the page: the console

    # -- lifecycle ----------------------------------------------------------------------------
    def bind(self) -> str:
        """Open the listening socket now (so the URL can be printed before serving); returns the URL.

        When the configured port is taken, a free port is used instead.
        """
        if self._socket is None:
            family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.config.host, self.config.port))
            except OSError:
                logger.warning("playground: port {} is taken, using a free one", self.config.port)
                sock.bind((self.config.host, 0))
            sock.listen(128)
            sock.setblocking(False)
            self._socket = sock
            host, port = sock.getsockname()[:2]
            self._url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        return self.url

    @property
    def url(self) -> str:
        """Where the page is (still known after the server stopped)."""
        if self._url is None:
            raise RuntimeError("call bind() first")
        return self._url

    @property
    def connected(self) -> bool:
        return self._serving

    async def run(self, on_message: MessageHandler) -> None:
        import uvicorn

        self._on_message = on_message
        self.bind()
        config = uvicorn.Config(self.web_app(), log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=2, ws="none")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the CLI owns SIGINT/SIGTERM
        self._serving = True
        self._served.clear()
        logger.info("playground: serving on {}", self.url)
        ticker = asyncio.create_task(self._publish_jobs())
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._serving = False
            try:
                await cancel_and_wait(ticker)
            finally:
                if self._socket is not None:  # free the port for the next start
                    self._socket.close()
                    self._socket = None
                self._served.set()

    async def stop(self) -> None:
        self._stopping = True  # from now on posts are refused with 503, so the page keeps and resends them
        for queue in list(self._subscribers):
            queue.put_nowait(None)  # end every open event stream, so the server can shut down
        if self._server is not None:
            self._server.should_exit = True
            # let uvicorn close its connections itself before the caller cancels `run`: a cancelled
            # server leaves open keep-alive connections answering from a stopped app
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._served.wait(), 5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self.transcript.close)

    def mount(self, path: str, app: Any) -> None:
        """Serve another ASGI app under `path` on this page's server (call before `run`)."""
        self._mounts.append((path, app))

    def login_status(self) -> LoginStatus:
        return LoginStatus(state="playground", since=self._started_at,
                           reason="no WeChat: the local playground page is the only chat")

    async def rooms(self) -> list[RoomInfo]:
        return [RoomInfo(ROOM_ID, self.config.room_topic)]

    # -- sending ------------------------------------------------------------------------------
    async def find_room(self, topic: str) -> str | None:
        return ROOM_ID if topic == self.config.room_topic else None

    async def send(self, chat: ChatRef, reply: Reply) -> None:
        """Show the bot's reply in the room: text (with @names), then the file inline."""
        if chat != self.chat:
            raise ValueError(f"the playground has one room ({ROOM_ID}), not {chat.chat_id}")
        event = self._message_event(
            sender_id=BOT_ID, sender_name=self._bot_name(), text=reply.text, from_bot=True,
            mentions=[self._members.get(i, i) for i in reply.mention_ids],
        )
        if reply.file is not None:
            event["media"] = await self._publish_file(reply.file)
            label = self.media_labels.get(event["media"]["kind"])
            if label:
                event["text"] = f"{event['text']}\n{label}" if event["text"] else label
        self._broadcast(event)

    async def _publish_file(self, path: Path) -> dict[str, str]:
        """A URL under /media/ for `path`; a file outside the media folder is copied in first."""
        root, source = await asyncio.to_thread(lambda: (self.media_dir.resolve(), Path(path).resolve()))
        if not source.is_relative_to(root):
            target = root / "playground" / f"{uuid.uuid4().hex}{source.suffix.lower()}"
            await asyncio.to_thread(_copy, source, target)
            source = target
        suffix = source.suffix.lower()
        kind = "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else "file"
        return {"url": "/media/" + source.relative_to(root).as_posix(), "kind": kind, "name": source.name}

    # -- incoming -------------------------------------------------------------------------------
    def _shown_before(self, member_id: str, client_id: str | None) -> dict[str, Any] | None:
        """What every post checks first: the server is up, the member exists; a `client_id` seen before
        gives back the event already shown (the page resent it after a lost reply)."""
        if self._stopping:
            raise ChannelStopping("the playground is shutting down; send it again when it is back")
        if member_id not in self._members:
            raise KeyError(member_id)
        return self._posted.get(client_id) if client_id else None

    async def post(self, member_id: str, text: str, client_id: str | None = None) -> dict[str, Any]:
        """A member typed `text` on the page: show it to everyone, then hand it to the router.

        A `client_id` seen before returns the event already shown (the page resent it after a lost reply)."""
        if (shown := self._shown_before(member_id, client_id)) is not None:
            return shown
        text = text.strip()[:MAX_TEXT]
        if not text:
            raise ValueError("empty message")
        event = self._message_event(sender_id=member_id, sender_name=self._members[member_id], text=text)
        if client_id:
            event["client_id"] = client_id
            self._posted[client_id] = event
            while len(self._posted) > SEEN_CLIENT_IDS:
                self._posted.popitem(last=False)
        self._broadcast(event)
        message = IncomingMessage(
            id=f"pg-{uuid.uuid4().hex[:12]}", chat=self.chat, sender_id=member_id,
            sender_name=self._members[member_id], text=text, mentioned=False,
            room_topic=self.config.room_topic,
        )
        task = asyncio.create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return event

    async def post_photo(self, member_id: str, data: bytes, name: str,
                         client_id: str | None = None) -> dict[str, Any]:
        """A member sent a photo with the page's button: show it in the room, hand it to the router as a
        photo message (the photo gate checks and keeps it; nothing answers a photo by itself)."""
        if (shown := self._shown_before(member_id, client_id)) is not None:
            return shown
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix in IMAGE_SUFFIXES else ""
        shown = self.media_dir / "playground" / (uuid.uuid4().hex + suffix)
        await asyncio.to_thread(_write, shown, data)
        event = self._message_event(sender_id=member_id, sender_name=self._members[member_id], text="")
        event["media"] = await self._publish_file(shown)
        event["media"]["name"] = Path(name).name or "photo"
        if client_id:
            event["client_id"] = client_id
            self._posted[client_id] = event
        self._broadcast(event)
        message = IncomingMessage(
            id=f"pg-{uuid.uuid4().hex[:12]}", chat=self.chat, sender_id=member_id,
            sender_name=self._members[member_id], text="", mentioned=False, kind=MessageKind.PHOTO,
            attachment=data, room_topic=self.config.room_topic,
        )
        task = asyncio.create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return event

    async def _deliver(self, message: IncomingMessage) -> None:
        if self._on_message is None:
            return
        self._set_busy(+1)  # chatter not meant for the bot clears it within milliseconds
        try:
            await self._on_message(message)
        except Exception:  # noqa: BLE001 - one bad message must not stop the page
            logger.exception("playground: message {} failed", message.id)
        finally:
            self._set_busy(-1)

    def _set_busy(self, delta: int) -> None:
        self._busy = max(0, self._busy + delta)
        self._broadcast({"type": "typing", "on": self._busy > 0}, keep=False)

    # -- events -------------------------------------------------------------------------------
    def _message_event(self, *, sender_id: str, sender_name: str, text: str, from_bot: bool = False,
                       mentions: list[str] | None = None) -> dict[str, Any]:
        return {"type": "message", "id": self.transcript.next_id(), "sender_id": sender_id,
                "sender_name": sender_name, "from_bot": from_bot, "text": text, "mentions": mentions or [],
                "media": None, "ts": time.time()}

    def _broadcast(self, event: dict[str, Any], *, keep: bool = True) -> None:
        if keep:
            self.transcript.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    async def _publish_jobs(self) -> None:
        """Push the job list to the page whenever it changes (progress of images and videos)."""
        last: list[dict[str, Any]] | None = None
        while True:
            await asyncio.sleep(0.5)
            if self.job_status is None:
                continue
            try:
                jobs = await asyncio.to_thread(self.job_status)
            except Exception:  # noqa: BLE001 - a status hiccup must not stop the page
                logger.exception("playground: job status failed")
                continue
            if jobs != last:
                last = jobs
                self._broadcast({"type": "jobs", "jobs": jobs}, keep=False)

    async def events(self, since: int = 0, epoch: str | None = None) -> AsyncIterator[str]:
        """Server-sent events for one page: a hello, the kept messages after `since`, then live ones.

        A page that knew another transcript (`epoch`: the file was removed) gets everything, with
        `reset` in the hello so it clears what it shows first."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        reset = epoch is not None and epoch != self.transcript.epoch
        try:
            yield _sse({"type": "hello", "epoch": self.transcript.epoch, "reset": reset})
            for event in self.transcript.since(0 if reset else since):
                yield _sse(event)
            yield _sse({"type": "typing", "on": self._busy > 0})
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield _sse(event)
        finally:
            self._subscribers.discard(queue)

    # -- web ----------------------------------------------------------------------------------
    def media_path(self, relative: str) -> Path | None:
        """The file under the media folder that `relative` names, or None (also for any way out of it)."""
        if not relative or "\x00" in relative or relative.startswith(("/", "\\")):
            return None
        root = self.media_dir.resolve()
        try:
            candidate = (root / relative).resolve()
        except (OSError, ValueError):
            return None
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def web_app(self) -> Any:
        return web_app(self)

    # -- what the page reads (bot/channels/playground/web.py) ---------------------------------------
    def room_info(self) -> dict[str, Any]:
        """The room the page draws: topic, the bot, the members, the notice and the admin hint."""
        return {"topic": self.config.room_topic, "bot": {"id": BOT_ID, "name": self._bot_name()},
                "members": [{"id": i, "name": n} for i, n in self._members.items()],
                "notice": self.notice() if callable(self.notice) else self.notice,
                "admin_hint": ADMIN_HINT.format(id=next(iter(self._members)))}

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def mounts(self) -> list[tuple[str, Any]]:
        return list(self._mounts)


def job_status_of(jobs: Any) -> JobStatus:
    """The page's job panel from the bot's job queue; blocking (SQLite)."""

    def status() -> list[dict[str, Any]]:
        return [{"id": job.id, "label": jobs.label(job.request.kind), "asker": job.request.asker_name,
                 "state": job.state.text, "step": job.step, "steps": job.steps} for job in jobs.list()]

    return status


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
