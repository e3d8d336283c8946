"""A fake OpenAI-compatible server: a real HTTP server on loopback, so the production `openai` client,
timeouts and retries are exercised for real.

Rules map a request to a scripted answer (text, HTTP error, delay). The newest matching rule wins; with
no match the server answers `default_reply`. Every request is recorded. A held rule answers only once the
test releases it, and records the requests whose client hung up while they waited (a cancelled call).
Connections are kept alive (HTTP/1.1), as real OpenAI-compatible endpoints keep them, so a call does not
pay a new TCP connection that production would not; `close` hangs up on the ones still open.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_fake import LoopbackServer, QuietHandler

Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Rule:
    match: Matcher
    reply: str | Callable[[dict[str, Any]], str] | None
    status: int = 200
    delay: float = 0.0
    times: int | None = None  # how many times it may fire; None = forever
    hits: int = 0
    trickle_s: float = 0.0  # > 0: send the answer one byte every `trickle_s` seconds
    held: threading.Event | None = None  # set: answer only once `release` is called

    def release(self) -> None:
        if self.held is not None:
            self.held.set()


@dataclass
class FakeLLM(LoopbackServer):
    default_reply: str = "好的，我知道啦。"
    rules: list[Rule] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0  # client connections accepted so far
    hung_up: list[dict[str, Any]] = field(default_factory=list)  # held requests whose client went away

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # kept-alive client connections, closed by `close`
        self.serve(self._handler_class())

    def close(self) -> None:
        super().close()
        with self._lock:
            for rule in self.rules:
                rule.release()
            open_now, self._open = list(self._open), set()
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def reset(self) -> None:
        with self._lock:
            for rule in self.rules:
                rule.release()  # no handler thread waits on a rule that is gone
            self.rules.clear()
            self.requests.clear()
            self.hung_up.clear()

    # -- scripting -------------------------------------------------------------------------------
    def add(self, match: str | Matcher, reply: str | Callable[[dict[str, Any]], str] | None = None, *,
            status: int = 200, delay: float = 0.0, times: int | None = None, trickle_s: float = 0.0,
            held: bool = False) -> Rule:
        """Answer requests whose prompt text contains `match` (or for which `match(request)` is true);
        `held`: not before `rule.release()` (at most 30 s), and not at all once the client has hung up."""
        matcher = match if callable(match) else (lambda req, s=match: s in prompt_text(req))
        rule = Rule(matcher, reply, status, delay, times, trickle_s=trickle_s,
                    held=threading.Event() if held else None)
        with self._lock:
            self.rules.append(rule)
        return rule

    def classify(self, question: str, label: str, **kwargs: Any) -> Rule:
        """Answer the intent classifier with `label` when the latest message contains `question`."""
        return self.add(lambda req: is_classify(req) and question in latest_question(req), label, **kwargs)

    def fail_all(self, status: int = 500, delay: float = 0.0) -> Rule:
        return self.add(lambda req: True, None, status=status, delay=delay)

    def trickle_all(self, every_s: float) -> Rule:
        """Answer everything one byte every `every_s` seconds (a per-read timeout never fires)."""
        return self.add(lambda req: True, "好的", trickle_s=every_s)

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests; kind 'classify' or 'other' filters."""
        with self._lock:
            reqs = list(self.requests)
        if kind == "classify":
            return [r for r in reqs if is_classify(r)]
        if kind == "other":
            return [r for r in reqs if not is_classify(r)]
        return reqs

    # -- serving ---------------------------------------------------------------------------------
    def _answer(self, request: dict[str, Any]
                ) -> tuple[int, str | None, float, float, threading.Event | None]:
        with self._lock:
            self.requests.append(request)
            for rule in reversed(self.rules):
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                if rule.match(request):
                    rule.hits += 1
                    reply = rule.reply(request) if callable(rule.reply) else rule.reply
                    return rule.status, reply, rule.delay, rule.trickle_s, rule.held
        return 200, self.default_reply, 0.0, 0.0, None

    def _handler_class(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer carries its Content-Length

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._open.add(self.connection)
                    fake.connections += 1

            def finish(self) -> None:
                with fake._lock:
                    fake._open.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                request = self.read_json()
                request["authorization"] = self.headers.get("Authorization")  # which key the bot sent
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self.send_json(404, {"error": {"message": "not found"}})
                    return
                status, reply, delay, trickle_s, held = fake._answer(request)
                if delay:
                    time.sleep(delay)
                if held is not None and not self.wait_released(held):
                    with fake._lock:
                        fake.hung_up.append(request)
                    return
                if status != 200:
                    error = {"message": f"scripted error {status}", "type": "server"}
                    self.send_json(status, {"error": error})
                    return
                body = {
                    "id": f"chatcmpl-{len(fake.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                if trickle_s:
                    self.trickle(json.dumps(body, ensure_ascii=False).encode(), trickle_s)
                else:
                    self.send_json(200, body)

            def wait_released(self, held: threading.Event, limit_s: float = 30.0) -> bool:
                """False as soon as the client hangs up before `held` is set (then nothing is sent)."""
                deadline = time.monotonic() + limit_s
                while not held.wait(0.01) and time.monotonic() < deadline:
                    if self.client_gone():
                        return False
                return not self.client_gone()

            def client_gone(self) -> bool:
                """The client closed its end: a kept-alive connection says nothing while it waits."""
                try:
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def trickle(self, data: bytes, every_s: float) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for index in range(len(data)):
                        self.wfile.write(data[index:index + 1])
                        self.wfile.flush()
                        time.sleep(every_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

        return Handler


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.get("messages", []))


def is_classify(request: dict[str, Any]) -> bool:
    return "意图分类器" in prompt_text(request)


def latest_question(request: dict[str, Any]) -> str:
    """The latest message as the classify prompt states it (after its last '最新一条消息')."""
    text = prompt_text(request)
    return text.rpartition("最新一条消息")[2]
