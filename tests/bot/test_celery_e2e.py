"""`jobs.backend: celery` end to end: the real `python -m bot run --config PATH` process, the Node Wechaty
peer, a real redis-server on a loopback port and real `xiaoai worker` processes rendering the tiny
CogVideoX folder on the CPU. Faults are real signals: SIGKILL of a worker, of Redis, of the bot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from intents import Intent
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, OTHER, at
from tests.support.redis_server import REPO, RedisServer, Worker, require_redis_server
from tests.support.tiny_models import build_cogvideox_folder

pytestmark = pytest.mark.slow
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

    def __init__(self, tmp_path: Path, peer, fake_llm, redis: RedisServer, model: Path, steps: int) -> None:
        self.tmp, self.peer, self.fake_llm = tmp_path, peer, fake_llm
        self.config = tmp_path / "config.yaml"
        self.config.write_text(
            f"data_dir: {tmp_path / 'data'}\nllm:\n  model: fake-model\nbot:\n  admins: [{ADMIN}]\n"
            f"quotas: {{user_videos_per_day: null, group_videos_per_day: null}}\n"
            f"video:\n  model:\n    path: {model}\n"
            f"  sampling: {{num_frames: 9, steps: {steps}, height: 64, width: 96}}\n"
            f"  queue: {{max_pending_per_user: 4, seconds_per_job: 5}}\n"
            f"jobs:\n  backend: celery\n  broker_url: {redis.url}\n  heartbeat_s: 0.5\n  worker_lost_s: 8\n",
            encoding="utf-8")
        self.bot: subprocess.Popen | None = None
        self.workers: list[Worker] = []
        self.bot_log = tmp_path / "bot.log"

    def start_bot(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WECHATY_", "XIAOAI_"))}
        env.update({"OPENAI_BASE_URL": self.fake_llm.base_url, "OPENAI_API_KEY": "k", "PYTHONPATH": str(REPO),
                    "WECHATY_PUPPET_SERVICE_ENDPOINT": self.peer.endpoint,
                    "WECHATY_PUPPET_SERVICE_TOKEN": self.peer.token})
        out = open(self.bot_log, "a", encoding="utf-8")  # noqa: SIM115 - closed with the process
        self.bot = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(self.config)],
                                    cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.peer.wait_for_client(timeout=60)
        time.sleep(0.5)

    def kill_bot(self) -> None:
        assert self.bot is not None
        self.bot.send_signal(signal.SIGKILL)
        self.bot.wait(10)

    def start_workers(self, count: int) -> None:
        started = [Worker(self.config, gpu, self.tmp).start() for gpu in range(len(self.workers),
                                                                               len(self.workers) + count)]
        for worker in started:
            worker.wait_ready()
        self.workers += started

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.bot is not None and self.bot.poll() is None:
            self.bot.send_signal(signal.SIGTERM)
            try:
                self.bot.wait(15)
            except subprocess.TimeoutExpired:
                self.bot.kill()
                self.bot.wait()

    def logs(self) -> str:
        parts = [self.bot_log.read_text(errors="replace")[-4000:]]
        parts += [w.output()[-2000:] for w in self.workers]
        return "\n-----\n".join(parts)


@pytest.fixture
def deploy(tmp_path, peer, fake_llm, redis_server, tiny_model):
    fake_llm.add(lambda req: "CogVideoX prompt writer" in prompt_text(req), PROMPT)
    made: list[Deployment] = []

    def make(steps: int = 4) -> Deployment:
        made.append(Deployment(tmp_path, peer, fake_llm, redis_server, tiny_model, steps))
        return made[-1]

    yield make
    for deployment in made:
        deployment.close()


def ask(peer, fake_llm, user: str, text: str, room: str = FAMILY) -> None:
    fake_llm.classify(text, Intent.VIDEO.value)
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


def test_six_requests_from_three_people_in_two_rooms_on_two_workers(deploy, peer, fake_llm):
    deployment = deploy(steps=4)
    deployment.start_workers(2)
    deployment.start_bot()
    requests = [("alice", FAMILY), ("bob", FAMILY), ("carol", OTHER), ("alice", OTHER), ("bob", OTHER),
                ("carol", FAMILY)]
    for n, (user, room) in enumerate(requests):
        ask(peer, fake_llm, user, f"做一个熊猫弹吉他的视频 {n}", room)
    took = wait_videos(peer, 6, deployment)
    time.sleep(1.5)  # anything sent twice would arrive now
    assert len(videos(peer)) == 6
    delivered = Counter((c["mentionIds"][0], c["room"]) for c in captions(peer))
    assert delivered == Counter(requests)
    acks = [m for m in peer.sent() if "排队第" in (m.get("text") or "")]
    assert len(acks) == 6 and all("预计" in a["text"] for a in acks)
    rendered = [w.output().count("rendered in") for w in deployment.workers]
    assert sum(rendered) == 6 and all(rendered), rendered  # both GPUs took work
    print(f"6 videos on 2 workers in {took:.1f}s, split {rendered}")


def test_worker_killed_mid_render_job_is_delivered_once(deploy, peer, fake_llm, redis_server):
    deployment = deploy(steps=60)
    deployment.start_workers(2)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    [name] = wait_rendering(redis_server)
    victim = next(w for w in deployment.workers if name.startswith(w.name_prefix))
    killed = time.monotonic()
    victim.kill()
    wait_videos(peer, 1, deployment)
    recovered = time.monotonic() - killed
    time.sleep(1.5)
    assert len(videos(peer)) == 1 and len(captions(peer)) == 1
    survivor = next(w for w in deployment.workers if w is not victim)
    assert "rendered in" in survivor.output()
    print(f"worker SIGKILLed mid-render: delivered {recovered:.1f}s later by the other worker")


def test_redis_restarted_empty_jobs_are_submitted_again(deploy, peer, fake_llm, redis_server):
    deployment = deploy(steps=30)
    deployment.start_workers(1)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    ask(peer, fake_llm, "bob", "做一个熊猫吃竹子的视频")
    wait_rendering(redis_server)
    restarted = time.monotonic()
    redis_server.restart_empty()  # the waiting job and every key are gone
    wait_videos(peer, 2, deployment)
    recovered = time.monotonic() - restarted
    time.sleep(1.5)
    assert len(videos(peer)) == 2
    assert sorted(c["mentionIds"][0] for c in captions(peer)) == ["alice", "bob"]
    print(f"Redis restarted empty: both videos delivered {recovered:.1f}s later")


def test_bot_killed_while_workers_render_delivers_after_restart(deploy, peer, fake_llm, redis_server):
    deployment = deploy(steps=40)
    deployment.start_workers(1)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    wait_rendering(redis_server)
    deployment.kill_bot()
    time.sleep(4)  # the worker finishes while no bot is there
    restarted = time.monotonic()
    deployment.start_bot()
    wait_videos(peer, 1, deployment)
    recovered = time.monotonic() - restarted
    time.sleep(1.5)
    assert len(videos(peer)) == 1 and len(captions(peer)) == 1
    assert deployment.workers[0].output().count("rendered in") == 1  # followed, not rendered again
    print(f"bot SIGKILLed mid-render: delivered {recovered:.1f}s after its restart")


def test_cancel_stops_the_render_on_the_worker(deploy, peer, fake_llm, redis_server):
    deployment = deploy(steps=100)
    deployment.start_workers(1)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    wait_rendering(redis_server)
    asked = time.monotonic()
    peer.say(ADMIN, "#取消 1", room=FAMILY)
    peer.wait_for_sent(lambda m: "已取消" in (m.get("text") or ""), timeout=20)
    worker = deployment.workers[0]
    deadline = time.monotonic() + 10
    while "cancelled at step" not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = time.monotonic() - asked
    assert "cancelled at step" in worker.output() and "rendered in" not in worker.output()
    deadline = time.monotonic() + 5  # the heartbeat thread publishes the idle worker on its next beat
    while heartbeat_jobs(redis_server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert heartbeat_jobs(redis_server) == {} and videos(peer) == []
    print(f"cancel: render stopped on the worker {stopped:.1f}s after #取消")


def test_no_worker_alive_ack_says_so_and_admin_is_told(deploy, peer, fake_llm):
    deployment = deploy(steps=4)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    ack = peer.wait_for_sent(lambda m: "排队第" in (m.get("text") or ""), timeout=30)
    assert "没有在线的 GPU" in ack["text"]
    notice = peer.wait_for_sent(
        lambda m: not m.get("room") and "没有 GPU 工作进程在线" in (m.get("text") or ""), timeout=20)
    assert notice["to"] == ADMIN
    deployment.start_workers(1)
    wait_videos(peer, 1, deployment)
