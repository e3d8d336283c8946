"""When a Celery GPU worker counts as lost, end to end (tests/support/celery_deploy.py: the real bot, the
Node peer, redis-server, `xiaoai worker` processes): a worker newer than the bot's last look at the
heartbeats is not lost, a worker whose first heartbeat is slow gets `worker_lost_s`, and a render that
finishes after its job was given up on is kept for the admins (its asker was told it failed).

A slow heartbeat is made the way it happens: Redis refuses the worker's heartbeat writes (an ACL on the
worker's Redis user) until the test lets them through; everything else the worker does goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tests.support.celery_deploy import (
    ADMIN,
    Deployment,
    ask,
    captions,
    videos,
    wait_rendering,
    wait_videos,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow
USER = "slowbeat"
LOST = "stopped while rendering"  # the bot's log line for a lost worker


def heartbeats_refused(server: RedisServer) -> str:
    """A Redis user that may do all a worker does except write its heartbeat key (SET on anything but
    Celery's results and kombu's restore lock is refused); its URL."""
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", USER, "reset", "on", ">pw", "~*", "&*", "+@all", "-set", "-setex",
                          "-psetex", "(~celery-task-meta-* ~unacked_mutex +set +setex +psetex)")
    admin.close()
    return f"redis://{USER}:pw@127.0.0.1:{server.port}/0"


def let_heartbeats_through(server: RedisServer) -> None:
    admin = redis.Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", USER, "+set", "+setex", "+psetex")
    admin.close()


def rendering_by(server: RedisServer, timeout: float = 60) -> str:
    """The worker a job's progress names once a step was rendered (read from Celery's result)."""
    client = redis.Redis(port=server.port)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for key in client.scan_iter("celery-task-meta-*"):
                meta = json.loads(client.get(key) or "{}")
                result = meta.get("result") or {}
                if meta.get("status") == "PROGRESS" and result.get("step", 0) >= 1:
                    return result["worker"]
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError("no worker started rendering")


def wait_log(deployment: Deployment, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in deployment.bot_log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the bot's log\n{deployment.logs()}")
        time.sleep(0.1)


def lost_lines(deployment: Deployment) -> list[str]:
    return [line for line in deployment.bot_log.read_text(errors="replace").splitlines() if LOST in line]


def test_a_worker_started_after_a_kill_takes_the_job_again_and_delivers_it(deploy, peer, fake_llm,
                                                                           redis_server):
    # the bot looks at all heartbeats every 20 s: the new worker is not in its last look when it starts
    deployment = deploy(steps=60, bot_heartbeat_s=20)
    deployment.start_workers(1)
    deployment.start_bot()
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    wait_rendering(redis_server)
    deployment.workers[0].kill()
    killed = time.monotonic()
    wait_log(deployment, "again (its worker was lost)")  # waiting in the queue for a worker
    noticed = time.monotonic() - killed
    deployment.start_workers(1)
    newcomer = deployment.workers[1]
    wait_videos(peer, 1, deployment)
    print(f"killed worker noticed after {noticed:.1f}s; delivered by the new one "
          f"{time.monotonic() - killed:.1f}s after the kill")
    time.sleep(1.5)
    assert len(videos(peer)) == 1 and len(captions(peer)) == 1
    assert newcomer.output().count("rendered in") == 1
    [lost] = lost_lines(deployment)  # the killed worker, once; never the new one
    assert lost.split("worker ")[1].startswith("gpu0@")
    assert not [m for m in peer.sent() if "两次" in (m.get("text") or "")]


def test_a_worker_whose_first_heartbeat_is_slow_is_not_lost_before_worker_lost_s(deploy, peer, fake_llm,
                                                                                  redis_server):
    deployment = deploy(steps=60)  # worker_lost_s: 8
    deployment.start_bot()
    started = time.monotonic()
    deployment.start_workers(1, broker_url=heartbeats_refused(redis_server))
    assert "heartbeat failed" in deployment.workers[0].output()  # Redis refused it: no heartbeat yet
    time.sleep(max(0.0, started + 9 - time.monotonic()))  # past the grace the bot gives every worker on start
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    rendering_by(redis_server)
    time.sleep(4)  # half of worker_lost_s without a heartbeat
    let_heartbeats_through(redis_server)
    wait_videos(peer, 1, deployment)
    time.sleep(1.5)
    assert len(videos(peer)) == 1 and lost_lines(deployment) == []
    assert deployment.workers[0].output().count("rendered in") == 1
    assert not [m for m in peer.sent() if "失联" in (m.get("text") or "")]  # nothing told to the admins


def test_a_render_that_finishes_after_its_job_was_given_up_is_kept_for_the_admins(deploy, peer, fake_llm,
                                                                                    redis_server):
    deployment = deploy(steps=200, num_frames=49, worker_lost_s=1.5)  # given up ~4 s after the ask,
    # long before the render (13 latent frames, 200 steps) ends even on an idle box
    deployment.start_bot()
    # two workers whose heartbeats never get through: both count as lost while they still render
    deployment.start_workers(2, broker_url=heartbeats_refused(redis_server))
    time.sleep(3.5)  # past the bot's start-up grace
    ask(peer, fake_llm, "alice", "做一个熊猫弹吉他的视频")
    failure = peer.wait_for_sent(lambda m: "两次中途停掉了" in (m.get("text") or ""), timeout=90)
    try:  # two renders side by side on a shared CPU
        kept = peer.wait_for_sent(
            lambda m: not m.get("room") and "没有再发到群里" in (m.get("text") or ""), timeout=240)
    except TimeoutError as exc:
        raise AssertionError(deployment.logs()) from exc
    assert kept["to"] == ADMIN
    assert failure["mentionIds"] == ["alice"] and "不会再自动重做" in failure["text"]  # what happens next
    path = Path(kept["text"].rsplit("文件留在 ", 1)[1])
    assert path.is_file() and path.suffix == ".mp4" and path.stat().st_size > 0
    time.sleep(1.5)
    assert videos(peer) == [] and len(lost_lines(deployment)) == 2
    assert "after its asker was told it failed" in deployment.bot_log.read_text()
    print(f"the render came back {(kept['ts'] - failure['ts']) / 1000:.1f}s after its asker was told it "
          "failed: kept for the admins")
