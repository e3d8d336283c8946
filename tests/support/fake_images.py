"""A fake OpenAI-compatible images endpoint: a real HTTP server on loopback, so the production `openai`
client (and its error mapping) is exercised for real.

`POST /v1/images/generations` answers per `mode`: "b64_json" (the picture inline), "url" (a link to
`GET /files/<name>` on this server), "refuse" (HTTP 400 content_policy_violation, as OpenAI answers a
filtered prompt), "error" (HTTP 500), "garbage" (b64 that is not an image). Every request is recorded.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

from tests.support.http_fake import LoopbackServer, QuietHandler

REFUSAL = {"error": {"code": "content_policy_violation", "type": "image_generation_user_error",
                     "message": "Your request was rejected as a result of our safety system.", "param": None}}


def png_bytes(width: int = 48, height: int = 32, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeImages(LoopbackServer):
    def __init__(self) -> None:
        self.mode = "b64_json"
        self.picture = png_bytes()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.downloads = 0
        self.released = threading.Event()  # mode "hold": answers wait for release() (a job that runs on)
        self._lock = threading.Lock()
        self.serve(self._handler_class())

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def reset(self, mode: str = "b64_json") -> None:
        with self._lock:
            self.mode = mode
            self.picture = png_bytes()
            self.requests.clear()
            self.headers.clear()
            self.downloads = 0
            self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def _handler_class(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self.path.startswith("/files/"):
                    self.send_bytes(404, b"not found", "text/plain")
                    return
                with fake._lock:
                    fake.downloads += 1
                self.send_bytes(200, fake.picture, "image/png")

            def do_POST(self) -> None:  # noqa: N802
                request = self.read_json()
                with fake._lock:
                    fake.requests.append(request)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    mode = fake.mode
                if mode == "hold":
                    fake.released.wait(60)
                if not self.path.rstrip("/").endswith("/images/generations"):
                    self.send_json(404, {"error": {"message": "not found"}})
                elif mode == "refuse":
                    self.send_json(400, REFUSAL)
                elif mode == "error":
                    self.send_json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
                elif mode == "url":
                    self.send_json(200, {"created": 1, "data": [{"url": f"{fake.root}/files/picture.png"}]})
                else:
                    raw = b"not a picture" if mode == "garbage" else fake.picture
                    picture = base64.b64encode(raw).decode()
                    self.send_json(200, {"created": 1, "data": [{"b64_json": picture}]})

        return Handler
