"""A real `redis-server` on a loopback port for tests, with no persistence (a restart comes back empty),
and real `xiaoai worker` processes against it.

Where redis-server is missing the tests using it skip, except under CI=true where they fail
(`make test` installs it: see the Makefile's `redis` target)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.peer import free_port

REPO = Path(__file__).resolve().parents[2]


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed (make test installs it: apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class RedisServer:
    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--dir", "/tmp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: everything it held is gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Worker:
    """`python -m bot worker --config PATH --gpu N` as a subprocess; output kept in a log file."""

    def __init__(self, config: Path, gpu: int, log_dir: Path, queues: str = "video,image",
                 env: dict[str, str] | None = None) -> None:
        self.config, self.gpu, self.queues, self.env = config, gpu, queues, env or {}
        self.log = log_dir / f"worker-gpu{gpu}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def name_prefix(self) -> str:
        return f"gpu{self.gpu}@"

    def start(self) -> Worker:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **self.env}
        out = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--config", str(self.config), "--gpu", str(self.gpu),
             "--queues", self.queues], cwd=self.config.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        return self

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 180.0) -> None:  # a loaded CI machine loads slowly
        deadline = time.monotonic() + timeout
        while "ready." not in self.output():
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker gpu{self.gpu} did not start:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # cold shutdown: the tests never wait for a render
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
