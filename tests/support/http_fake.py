"""The scaffolding the loopback test fakes share: a real `ThreadingHTTPServer` on 127.0.0.1 (a free port)
served from a daemon thread, and a quiet request handler with JSON helpers, so production HTTP clients
are exercised over real sockets.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _BackloggedServer(ThreadingHTTPServer):
    """socketserver's backlog of 5 refuses connections when a bot under a flood opens hundreds at once;
    a real LLM server listens with a deep backlog, and so does this fake."""

    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up on a kept-alive connection (a bot stopping, a timeout test) is how HTTP
        clients behave, not a fault of the test: only other errors are printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serves `handler` on loopback from a daemon thread once `serve` is called; `close` (or leaving a
    `with` block) stops it."""

    _server: ThreadingHTTPServer

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _BackloggedServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def root(self) -> str:
        """`http://127.0.0.1:<port>`, without a trailing slash."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and tolerates clients that hang up (timeout tests)."""

    def log_message(self, *args: Any) -> None:
        pass

    def read_json(self) -> Any:
        """The request body as JSON; {} when it is empty or not JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            return {}

    def send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    def send_json(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.send_bytes(status, json.dumps(body, ensure_ascii=False).encode(), content_type)
