"""`jobs.backend: celery` under real faults (tests/support/celery_deploy.py): SIGKILL of a worker
mid-render, Redis restarted empty, the bot SIGKILLed while the workers render."""

from __future__ import annotations

import time

import pytest

from tests.support.celery_deploy import (
    ask,
    captions,
    videos,
    wait_rendering,
    wait_videos,
)

pytestmark = pytest.mark.slow


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
    assert not [m for m in peer.sent() if "失联" in (m.get("text") or "")]  # no worker counted lost
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
