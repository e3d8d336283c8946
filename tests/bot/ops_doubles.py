"""Small test doubles for the issue-6 tests (config watch, admin, schedules, quotas, alerts).

`RecordingChannel` is an in-memory transport: tests inject `IncomingMessage`s through the real Router
and read what the bot sent. End-to-end variants of the same scenarios use the Node Wechaty peer.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bot.channels.base import LoginStatus, MessageHandler
from bot.config import Secrets, parse
from bot.messages import ChatRef, IncomingMessage, Reply
from bot.runtime.app import Application, build_app
from tests.support.http_fake import LoopbackServer, QuietHandler

FAMILY_ID, FAMILY_TOPIC = "family@chatroom", "相亲相爱一家人"
OTHER_ID, OTHER_TOPIC = "other@chatroom", "工作群"
ADMIN = "alice"

_counter = 0


class RecordingChannel:
    """A transport that records sends; `connected` is settable to simulate outages."""

    name = "recording"

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[ChatRef, Reply]] = []
        self._stop = asyncio.Event()

    async def run(self, on_message: MessageHandler) -> None:
        await self._stop.wait()

    async def send(self, chat: ChatRef, reply: Reply) -> None:
        if not self.connected:
            raise ConnectionError("not connected")
        self.sent.append((chat, reply))

    def login_status(self) -> LoginStatus:
        return LoginStatus("serving" if self.connected else "disconnected", 0.0, account="小爱 (xiaoai)")

    async def find_room(self, topic: str) -> str | None:
        return {FAMILY_TOPIC: FAMILY_ID, OTHER_TOPIC: OTHER_ID}.get(topic)

    async def stop(self) -> None:
        self._stop.set()

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [r.text for c, r in self.sent if chat_id is None or c.chat_id == chat_id]

    def private_texts(self, contact_id: str) -> list[str]:
        return [r.text for c, r in self.sent if not c.is_room and c.chat_id == contact_id]


def message(text: str, sender: str = "bob", *, room: str | None = FAMILY_ID, mentioned: bool = True,
            topic: str | None = None) -> IncomingMessage:
    """A text message as a channel would deliver it (private when room is None)."""
    global _counter
    _counter += 1
    if room is None:
        return IncomingMessage(id=f"m{_counter}", chat=ChatRef(sender, is_room=False), sender_id=sender,
                               sender_name=sender, text=text, mentioned=True)
    topic = topic or {FAMILY_ID: FAMILY_TOPIC, OTHER_ID: OTHER_TOPIC}.get(room)
    return IncomingMessage(id=f"m{_counter}", chat=ChatRef(room, is_room=True), sender_id=sender,
                           sender_name=sender, text=text, mentioned=mentioned, room_topic=topic)


def make_app(tmp_path: Path, yaml_text: str, *, with_file: bool = True
             ) -> tuple[Application, RecordingChannel]:
    """The real app (build_app) over a RecordingChannel; config from `yaml_text` (also written to a file)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    config = parse(yaml_text)
    if "data_dir" not in config.model_fields_set:  # never the repository's own ./data
        config = config.model_copy(update={"data_dir": tmp_path / "data"})
    channel = RecordingChannel()
    app = build_app(config, Secrets(None, None, None, None), channel, config_path=path if with_file else None)
    return app, channel


def record_classifications(app: Application) -> list[IncomingMessage]:
    """Replace the LLM classifier: record each message that reached classification, answer as chat."""
    from tests.support.builtin_intents import Intent

    seen: list[IncomingMessage] = []

    async def classifier(ctx: Any) -> Intent:
        seen.append(ctx.message)
        return Intent.CHAT

    app.dispatcher.classify = classifier
    return seen


class WebhookServer(LoopbackServer):
    """A real HTTP server on loopback that records JSON POSTs (the alert webhook's receiver)."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[Any] = []
        self.status = status
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests.append(json.loads(body or b"null"))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.serve(Handler)

    @property
    def url(self) -> str:
        return self.root + "/hook"
