"""A `jobs.backend: celery` deployment for end-to-end tests: the real `python -m bot run --config PATH`
process, the Node Wechaty peer, a real redis-server on a loopback port and real `xiaoai worker`
processes rendering the tiny CogVideoX folder on the CPU; plus what the tests read back (videos,
captions, the workers' heartbeats)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.builtin_intents import Intent
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, at
from tests.support.redis_server import REPO, RedisServer, Worker, require_redis_server
from tests.support.tiny_models import build_cogvideox_folder, build_flux_folder

PROMPT = ("A gentle medium shot in soft morning light. A fluffy giant panda sits on a mossy rock and "
          "strums a small wooden guitar with its paw. Tall green bamboo rises around it in the mist.")
ADMIN = "carol"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    try:
        yield server
    finally:
        server.stop()


class Deployment:
    """One bot process and its workers sharing a config file and a data_dir."""

    def __init__(self, tmp_path: Path, peer, fake_llm, redis: RedisServer, model: Path, steps: int,
                 image: Path | None = None, worker_lost_s: float = 8, bot_heartbeat_s: float = 0.5,
                 photo_model: Path | None = None, num_frames: int = 9) -> None:
        self.tmp, self.peer, self.fake_llm = tmp_path, peer, fake_llm

        def config(heartbeat_s: float) -> str:
            max_steps = max(100, steps)
            return (
                f"data_dir: {tmp_path / 'data'}\nllm:\n  model: fake-model\nbot:\n  admins: [{ADMIN}]\n"
                f"quotas: {{user_videos_per_day: null, group_videos_per_day: null}}\n"
                f"video:\n  model:\n    path: {model}\n"
                f"  sampling: {{num_frames: {num_frames}, steps: {steps}, max_steps: {max_steps}, "
                "height: 64, width: 96}\n"
                f"  queue: {{max_pending_per_user: 4, seconds_per_job: 5}}\n"
                + (f"  photo:\n    model: {{path: {photo_model}}}\n"
                   f"    sampling: {{num_frames: 9, steps: {steps}, height: 64, width: 96}}\n"
                   if photo_model else "")
                + f"jobs:\n  backend: celery\n  broker_url: {redis.url}\n  heartbeat_s: {heartbeat_s}\n"
                f"  worker_lost_s: {worker_lost_s}\n"
                "offline:\n  classifier: {enabled: false}\n"  # the fake LLM classifies: no CPU on warm-ups
                + (f"image:\n  model: {{path: {image}}}\n  sampling: {{height: 64, width: 96, steps: 2}}\n"
                   if image else ""))

        self.config = tmp_path / "config.yaml"  # the workers'
        self.config.write_text(config(0.5), encoding="utf-8")
        self.bot_config = tmp_path / "bot.yaml"  # the bot looks at the heartbeats every bot_heartbeat_s
        self.bot_config.write_text(config(bot_heartbeat_s), encoding="utf-8")
        self.bot: subprocess.Popen | None = None
        self.workers: list[Worker] = []
        self.bot_log = tmp_path / "bot.log"

    def start_bot(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WECHATY_", "XIAOAI_"))}
        env.update({"OPENAI_BASE_URL": self.fake_llm.base_url, "OPENAI_API_KEY": "k", "PYTHONPATH": str(REPO),
                    "WECHATY_PUPPET_SERVICE_ENDPOINT": self.peer.endpoint,
                    "WECHATY_PUPPET_SERVICE_TOKEN": self.peer.token})
        out = open(self.bot_log, "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
        self.bot = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(self.bot_config)],
                                    cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.peer.wait_for_client(timeout=60)
        time.sleep(0.5)

    def kill_bot(self) -> None:
        assert self.bot is not None
        self.bot.send_signal(signal.SIGKILL)
        self.bot.wait(10)

    def start_workers(self, count: int, queues: str = "video,image", broker_url: str | None = None) -> None:
        """`broker_url`: connect as another Redis user (XIAOAI_BROKER_URL, as an operator would)."""
        env = {"XIAOAI_BROKER_URL": broker_url} if broker_url else {}
        started = [Worker(self.config, gpu, self.tmp, queues, env).start()
                   for gpu in range(len(self.workers), len(self.workers) + count)]
        for worker in started:
            worker.wait_ready()
        self.workers += started

    def close(self) -> None:
        """Signal every process at once, then wait for each (killed if it does not stop in time)."""
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGQUIT)  # cold shutdown: the tests never wait for a render
        if self.bot is not None and self.bot.poll() is None:
            self.bot.send_signal(signal.SIGTERM)
            procs.append(self.bot)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        parts = [self.bot_log.read_text(errors="replace")[-4000:]]
        parts += [w.output()[-2000:] for w in self.workers]
        return "\n-----\n".join(parts)


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> Path:
    return build_flux_folder(tmp_path_factory.mktemp("flux") / "FLUX.1-schnell")


@pytest.fixture
def deploy(tmp_path, peer, fake_llm, redis_server, tiny_model):
    fake_llm.add(lambda req: "CogVideoX prompt writer" in prompt_text(req), PROMPT)
    made: list[Deployment] = []

    def make(steps: int = 4, image: Path | None = None, photo_model: Path | None = None,
             num_frames: int = 9, **timing: float) -> Deployment:
        made.append(Deployment(tmp_path, peer, fake_llm, redis_server, tiny_model, steps, image,
                               photo_model=photo_model, num_frames=num_frames, **timing))
        return made[-1]

    yield make
    for deployment in made:
        deployment.close()


def ask(peer, fake_llm, user: str, text: str, room: str = FAMILY) -> None:
    fake_llm.classify(text, Intent.VIDEO.label)
    peer.say(user, at() + text, room=room, mention=[BOT])


def videos(peer) -> list[dict]:
    return [m for m in peer.sent() if m.get("file")]


def captions(peer) -> list[dict]:
    return [m for m in peer.sent() if "视频做好啦" in (m.get("text") or "")]


def wait_videos(peer, count: int, deployment: Deployment, timeout: float = 90) -> float:
    started = time.monotonic()
    try:
        peer.wait_for_sent(lambda m: len(videos(peer)) >= count, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - show what the processes said
        raise AssertionError(f"{len(videos(peer))}/{count} videos\n{deployment.logs()}") from exc
    return time.monotonic() - started


def heartbeat_jobs(redis: RedisServer) -> dict[str, dict]:
    import redis as redis_py

    client = redis_py.Redis(port=redis.port)
    try:
        found = {}
        for key in client.scan_iter("xiaoai:worker:*"):
            info = json.loads(client.get(key) or "{}")
            if info.get("job"):
                found[info["name"]] = info["job"]
        return found
    finally:
        client.close()


def wait_rendering(redis: RedisServer, count: int = 1, timeout: float = 60) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = heartbeat_jobs(redis)
        if len([j for j in jobs.values() if j.get("step", 0) >= 1]) >= count:
            return jobs
        time.sleep(0.1)
    raise AssertionError("no worker started rendering")
