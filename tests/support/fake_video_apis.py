"""Fake 智谱 BigModel and DashScope video APIs: real HTTP servers on loopback, built from the documented
shapes (../shared/notes/video-apis.md), so the production client is exercised over real sockets.

    with FakeVideoApi("zhipu", key="zk-test-1234") as fake:   # or "dashscope"
        config: video.api.base_url = fake.base_url; env ZHIPUAI_API_KEY = fake.key
        fake.script(create=["throttle", "ok"], polls=2, result="ok")

What it checks on every create (a violation answers the provider's "bad parameter" error and is kept in
`violations`): the key header, DashScope's `X-DashScope-Async: enable`, the fields (model, prompt within
the provider's length, zhipu duration 5/10, DashScope `input`/`parameters`), and a photo: zhipu's
`image_url` raw base64 of a PNG/JPEG <= 5 MB, DashScope's `img_url` a `data:` URI of a JPEG/PNG with
sides 360-2000 px, <= 10 MB. Tasks go PROCESSING (or PENDING/RUNNING) for `polls` reads, then SUCCESS
with a URL on this server serving a real small MP4.

Scripted create answers, one per create call (the last one repeats): "ok", "refuse" (moderation),
"no_balance", "bad_key", "throttle" (429 busy), "overload" (503), "garbage" (200, not JSON).
Task outcomes (`tasks`, one per created task, last repeats): "ok", "fail", "stuck" (never finishes),
"refuse" (DashScope: FAILED DataInspectionFailed). Result (`result`): "ok", "gone" (404), "big"
(`big_mp4`), "not_mp4". `hang_polls`: a poll request that never answers.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.http_fake import LoopbackServer, QuietHandler

ZHIPU_ERRORS = {
    "refuse": (400, {"error": {"code": "1301", "message": "系统检测到输入或生成内容不安全"}}),
    "no_balance": (429, {"error": {"code": "1113", "message": "您的账户已欠费，请充值后重试。"}}),
    "bad_key": (401, {"error": {"code": "1000", "message": "身份验证失败。"}}),
    "throttle": (429, {"error": {"code": "1302", "message": "您当前使用该API的并发数过高，请降低并发"}}),
    "overload": (503, {"error": {"code": "1305", "message": "当前API请求过多，请稍后重试。"}}),
    "bad_param": (400, {"error": {"code": "1214", "message": "参数不合法"}}),
}
DASHSCOPE_ERRORS = {
    "refuse": (400, {"code": "DataInspectionFailed", "message": "inappropriate content.",
                     "request_id": "r-1"}),
    "no_balance": (400, {"code": "Arrearage", "message": "Access denied, please make sure your account is in "
                         "good standing.", "request_id": "r-1"}),
    "bad_key": (401, {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r-1"}),
    "throttle": (429, {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded",
                       "request_id": "r-1"}),
    "overload": (503, {"code": "InternalError", "message": "service unavailable", "request_id": "r-1"}),
    "bad_param": (400, {"code": "InvalidParameter", "message": "parameter invalid", "request_id": "r-1"}),
}


def small_mp4(frames: int = 16, height: int = 64, width: int = 96, fps: int = 8,
              noise: bool = False) -> bytes:
    """A real H.264 MP4 made by the production encoder (noise frames make a big file at a high rate)."""
    import tempfile

    import numpy as np

    from generators.mp4 import encode_mp4

    rng = np.random.default_rng(0)
    if noise:
        array = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    else:
        base = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, width, 3))
        array = np.stack([np.roll(base, 4 * i, axis=1) for i in range(frames)])
    with tempfile.TemporaryDirectory() as folder:
        path = encode_mp4(array, Path(folder) / "fake.mp4", fps, 20000 if noise else 400, 200_000_000)
        return path.read_bytes()


class FakeVideoApi(LoopbackServer):
    def __init__(self, provider: str, key: str = "test-video-key-1234") -> None:
        assert provider in ("zhipu", "dashscope")
        self.provider = provider
        self.key = key
        self.mp4 = small_mp4()
        self.big_mp4 = b""
        self._lock = threading.Lock()
        self.reset()
        self.serve(self._handler_class())

    @property
    def base_url(self) -> str:
        return self.root + ("/api/paas/v4" if self.provider == "zhipu" else "/api/v1")

    def reset(self) -> None:
        with self._lock:
            self.create_script: list[str] = ["ok"]
            self.task_script: list[str] = ["ok"]
            self.polls_before_done = 1
            self.result = "ok"
            self.hang_polls = False
            self.creates: list[dict[str, Any]] = []  # accepted or not, every create body
            self.tasks: dict[str, dict[str, Any]] = {}  # task id -> {"outcome", "polls", "photo"}
            self.violations: list[str] = []
            self.polls = 0
            self.downloads = 0
            self.create_answered = threading.Event()  # set when a task was created (a test may kill then)
            self._ids = itertools.count(1)

    def script(self, *, create: list[str] | None = None, tasks: list[str] | None = None,
               polls: int | None = None, result: str | None = None, hang_polls: bool | None = None) -> None:
        with self._lock:
            if create is not None:
                self.create_script = list(create)
            if tasks is not None:
                self.task_script = list(tasks)
            if polls is not None:
                self.polls_before_done = polls
            if result is not None:
                self.result = result
            if hang_polls is not None:
                self.hang_polls = hang_polls

    @property
    def paid_tasks(self) -> list[str]:
        """Tasks that succeeded (what the account would be charged for)."""
        return [task_id for task_id, task in self.tasks.items() if task.get("succeeded")]

    def _next(self, script: list[str]) -> str:
        return script.pop(0) if len(script) > 1 else script[0]

    # -- checks ----------------------------------------------------------------------------------------
    def _photo_problem(self, value: Any) -> str | None:
        from PIL import Image

        if not isinstance(value, str):
            return "photo is not a string"
        if self.provider == "dashscope":
            head, sep, data = value.partition(";base64,")
            if not sep or head not in ("data:image/jpeg", "data:image/png"):
                return f"img_url is not a data URI of a JPEG/PNG: {value[:40]!r}"
            limit, side_range = 10_000_000, (360, 2000)
        else:
            if value.startswith("data:"):
                return "zhipu image_url given a data: URI instead of base64"
            data, limit, side_range = value, 5_000_000, (1, 100_000)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return "photo is not valid base64"
        if len(raw) > limit:
            return f"photo is {len(raw)} bytes (limit {limit})"
        try:
            image = Image.open(io.BytesIO(raw))
            image.load()
        except OSError:
            return "photo does not decode"
        if image.format not in ("JPEG", "PNG"):
            return f"photo format {image.format}"
        if not all(side_range[0] <= side <= side_range[1] for side in image.size):
            return f"photo size {image.size} outside {side_range}"
        return None

    def _body_problem(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        if headers.get("authorization") != f"Bearer {self.key}":
            return "key"
        if self.provider == "zhipu":
            if not body.get("model") or not (body.get("prompt") or body.get("image_url")):
                return "zhipu: model and prompt or image_url are required"
            if len(body.get("prompt") or "") > 512:
                return "zhipu: prompt over 512 characters"
            if body.get("duration", 5) not in (5, 10):
                return "zhipu: duration must be 5 or 10"
            if "image_url" in body:
                return self._photo_problem(body["image_url"])
            return None
        if headers.get("x-dashscope-async") != "enable":
            return "dashscope: X-DashScope-Async: enable is required"
        task_input, parameters = body.get("input"), body.get("parameters", {})
        if not body.get("model") or not isinstance(task_input, dict) or not task_input.get("prompt"):
            return "dashscope: model and input.prompt are required"
        if len(task_input["prompt"]) > 800 or not isinstance(parameters, dict):
            return "dashscope: prompt over 800 characters or parameters not an object"
        if "img_url" in task_input:
            return self._photo_problem(task_input["img_url"])
        return None

    # -- answers ---------------------------------------------------------------------------------------
    def _error(self, name: str) -> tuple[int, dict[str, Any]]:
        return (ZHIPU_ERRORS if self.provider == "zhipu" else DASHSCOPE_ERRORS)[name]

    def _create(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.creates.append(body)
            problem = self._body_problem(body, headers)
            if problem == "key":
                return self._error("bad_key")
            if problem:
                self.violations.append(problem)
                return self._error("bad_param")
            answer = self._next(self.create_script)
            if answer == "garbage":
                return 200, "<html>502 Bad Gateway</html>"
            if answer != "ok":
                return self._error(answer)
            task_id = f"task-{next(self._ids)}"
            photo = body.get("image_url") or (body.get("input") or {}).get("img_url")
            self.tasks[task_id] = {"outcome": self._next(self.task_script), "polls": 0, "photo": photo,
                                   "body": body}
        self.create_answered.set()
        if self.provider == "zhipu":
            return 200, {"model": body["model"], "id": task_id, "request_id": body.get("request_id"),
                         "task_status": "PROCESSING"}
        return 200, {"output": {"task_status": "PENDING", "task_id": task_id}, "request_id": "r-2"}

    def _poll(self, task_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.key}":
            return self._error("bad_key")
        with self._lock:
            self.polls += 1
            task = self.tasks.get(task_id)
            if task is None:
                if self.provider == "dashscope":
                    return 200, {"output": {"task_id": task_id, "task_status": "UNKNOWN"}}
                return 404, {"error": {"code": "1214", "message": "task not found"}}
            task["polls"] += 1
            outcome, done = task["outcome"], task["polls"] > self.polls_before_done
        if not done or outcome == "stuck":
            state = "PROCESSING" if self.provider == "zhipu" else "RUNNING"
            return 200, self._status(task_id, state)
        if outcome == "fail":
            return 200, self._status(task_id, "FAIL" if self.provider == "zhipu" else "FAILED",
                                     code="InternalError.Algo")
        if outcome == "refuse":
            return 200, self._status(task_id, "FAILED", code="DataInspectionFailed")
        with self._lock:
            task["succeeded"] = True
        return 200, self._status(task_id, "SUCCESS" if self.provider == "zhipu" else "SUCCEEDED",
                                 url=f"{self.root}/results/{task_id}.mp4")

    def _status(self, task_id: str, state: str, url: str | None = None, code: str | None = None) -> Any:
        if self.provider == "zhipu":
            body: dict[str, Any] = {"model": "cogvideox-flash", "task_status": state, "request_id": "r-3"}
            if url:
                body["video_result"] = [{"url": url, "cover_image_url": url + ".jpg"}]
            return body
        output: dict[str, Any] = {"task_id": task_id, "task_status": state}
        if url:
            output["video_url"] = url
        if code:
            output.update(code=code, message="task failed")
        return {"output": output, "request_id": "r-4", "usage": {"duration": 5} if url else {}}

    def _handler_class(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0]
                wanted = ("/api/paas/v4/videos/generations" if fake.provider == "zhipu"
                          else "/api/v1/services/aigc/video-generation/video-synthesis")
                body = self.read_json()
                if path != wanted:
                    self.send_json(404, {"error": {"message": f"no route {path}"}})
                    return
                status, answer = fake._create(body, self._headers())
                if isinstance(answer, str):
                    self.send_bytes(status, answer.encode(), "text/html")
                else:
                    self.send_json(status, answer)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if path.startswith("/results/"):
                    self._result()
                    return
                prefix = "/api/paas/v4/async-result/" if fake.provider == "zhipu" else "/api/v1/tasks/"
                if not path.startswith(prefix):
                    self.send_json(404, {"error": {"message": f"no route {path}"}})
                    return
                if fake.hang_polls:
                    time.sleep(120)
                    return
                status, answer = fake._poll(path[len(prefix):], self._headers())
                self.send_json(status, answer)

            def _result(self) -> None:
                with fake._lock:
                    fake.downloads += 1
                    result = fake.result
                if result == "gone":
                    self.send_bytes(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
                elif result == "not_mp4":
                    self.send_bytes(200, b"<html>this is not a video</html>" * 10, "video/mp4")
                else:
                    self.send_bytes(200, fake.big_mp4 if result == "big" else fake.mp4, "video/mp4")

        return Handler
