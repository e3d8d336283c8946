"""The fault suite's harness: the real `python -m bot run --config PATH` process against the Node peer,
the fake LLM and the fake AMap, with its log kept in a file the tests read.

`bot_process(config)` writes the config, starts the process with the four environment variables (plus
AMAP_KEY when the fake AMap is used), waits until it holds the peer's event stream, and stops it with
SIGTERM at the end of the test.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import deep_merge, test_config_data
from tests.support.fake_amap import TEST_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
# the developer's own settings and keys never reach the bot under test (a real video API key would be used)
ENV_PREFIXES = ("OPENAI_", "WECHATY_", "AMAP_", "XIAOAI_", "ZHIPUAI_", "DASHSCOPE_")


def yaml_text(data: dict[str, Any]) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


class BotProcess:
    """One `xiaoai run` process; `log()` is everything it wrote to stdout and stderr so far."""

    def __init__(self, workdir: Path, config_path: Path, env: dict[str, str],
                 preexec: Callable[[], None] | None = None) -> None:
        self.workdir = workdir
        self.config_path = config_path
        self.env = env
        self.preexec = preexec
        self.log_path = workdir / f"bot-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> BotProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(self.config_path)],
                cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=self.preexec)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(20) is None:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def bot_process(peer: Any, fake_llm: Any, tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Factory: `bot_process(overrides, amap=fake_amap, connect=True, data_dir=..., preexec=...)`."""
    started: list[BotProcess] = []

    def start(overrides: dict[str, Any] | None = None, *, amap: Any = None, connect: bool = True,
              data_dir: Path | None = None, preexec: Callable[[], None] | None = None,
              config_path: Path | None = None, env: dict[str, str] | None = None) -> BotProcess:
        config_path = config_path or tmp_path / "config.yaml"
        if overrides is not None or not config_path.exists():
            data = test_config_data(data_dir or tmp_path / "data", overrides)
            if amap is not None:
                data = deep_merge({"amap": {"base_url": amap.base_url, "retries": 0, "timeout_s": 2}}, data)
            config_path.write_text(yaml_text(data), encoding="utf-8")
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(ENV_PREFIXES)}
        environment.update({
            "OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "test-key",
            "WECHATY_PUPPET_SERVICE_ENDPOINT": peer.endpoint, "WECHATY_PUPPET_SERVICE_TOKEN": peer.token,
            "PYTHONPATH": str(REPO_ROOT), "AMAP_KEY": TEST_KEY,
        })
        environment.update(env or {})
        bot = BotProcess(tmp_path, config_path, environment, preexec).start()
        started.append(bot)
        if connect:
            deadline = time.monotonic() + 60
            while not peer.health().get("streaming"):
                if bot.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bot did not connect (rc={bot.proc.poll()}):\n"
                                       f"{bot.log()[-3000:]}")
                time.sleep(0.05)
            time.sleep(0.5)  # the channel marks itself connected just after opening the stream
        return bot

    yield start
    for bot in reversed(started):
        bot.stop()


def sent_since(peer: Any, seen: set[str]) -> list[dict]:
    return [m for m in peer.sent() if m["id"] not in seen]


def wait_sent(peer: Any, predicate: Callable[[dict], bool], timeout: float = 20.0) -> dict:
    return peer.wait_for_sent(predicate, timeout)


def to_admin(message: dict, admin: str = "alice") -> bool:
    return not message.get("room") and message.get("to") == admin
