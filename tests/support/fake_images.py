"""A fake OpenAI-compatible images endpoint: a real HTTP server on loopback, so the production `openai`
client (and its error mapping) is exercised for real.

`POST /v1/images/generations` answers per `mode`: "b64_json" (the picture inline), "url" (a link to
`GET /files/<name>` on this server), "refuse" (HTTP 400 content_policy_violation, as OpenAI answers a
filtered prompt), "error" (HTTP 500), "garbage" (b64 that is not an image). Every request is recorded.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REFUSAL = {"error": {"code": "content_policy_violation", "type": "image_generation_user_error",
                     "message": "Your request was rejected as a result of our safety system.", "param": None}}


def png_bytes(width: int = 48, height: int = 32, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeImages:
    def __init__(self) -> None:
        self.mode = "b64_json"
        self.picture = png_bytes()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.downloads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, mode: str = "b64_json") -> None:
        with self._lock:
            self.mode = mode
            self.picture = png_bytes()
            self.requests.clear()
            self.headers.clear()
            self.downloads = 0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self.path.startswith("/files/"):
                    self._send(404, b"not found", "text/plain")
                    return
                with fake._lock:
                    fake.downloads += 1
                self._send(200, fake.picture, "image/png")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    request = {}
                with fake._lock:
                    fake.requests.append(request)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    mode = fake.mode
                if not self.path.rstrip("/").endswith("/images/generations"):
                    self._json(404, {"error": {"message": "not found"}})
                elif mode == "refuse":
                    self._json(400, REFUSAL)
                elif mode == "error":
                    self._json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
                elif mode == "url":
                    self._json(200, {"created": 1, "data": [{"url": f"{fake.root}/files/picture.png"}]})
                else:
                    raw = b"not a picture" if mode == "garbage" else fake.picture
                    self._json(200, {"created": 1, "data": [{"b64_json": base64.b64encode(raw).decode()}]})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
