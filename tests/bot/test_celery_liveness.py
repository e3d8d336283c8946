"""How the Celery backend decides a worker is gone, against a real redis-server: a heartbeat wiped by a
Redis restart is not a lost worker; a heartbeat that stays away while Redis answers is; a worker the bot
has just heard of (newer than its last look at the heartbeats, or not beating yet) is not."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.config.jobs import JobsConfig
from bot.hosts.celery_worker import Heartbeat
from bot.jobs.broker import redis_client
from bot.jobs.celery_backend import CeleryBackend
from tests.conftest import wait_until
from tests.support.redis_server import RedisServer

LOST_S = 2.0


@pytest.fixture
async def backend(redis_server: RedisServer):
    config = JobsConfig(backend="celery", broker_url=redis_server.url, heartbeat_s=0.2, worker_lost_s=LOST_S)
    backend = CeleryBackend(lambda: config, env={})
    await backend.start()
    yield backend
    await backend.stop()


def beat_once(url: str, name: str = "gpu0@test") -> None:
    """One heartbeat from a worker named `name`, as `xiaoai worker` writes it (TTL LOST_S)."""
    client = redis_client(url)
    Heartbeat(client, name, 0, ["video"], every_s=60, ttl_s=LOST_S).beat()
    client.close()


async def beat_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        beat_once(url)
        await asyncio.sleep(0.3)


async def test_a_heartbeat_wiped_by_a_redis_restart_gets_time_to_come_back(backend, redis_server):
    await beat_for(redis_server.url, LOST_S + 0.5)  # the start's own grace is over: only the restart's counts
    assert backend.live_workers() == 1
    redis_server.restart_empty()
    await wait_until(lambda: backend.live_workers() == 0, 5)  # the backend saw the empty Redis
    assert not backend.is_lost("gpu0@test")  # it had no chance to beat since Redis came back
    await wait_until(lambda: backend.is_lost("gpu0@test"), LOST_S + 2)  # and it never beat again


async def test_a_heartbeat_that_stays_away_while_redis_answers_is_a_lost_worker(backend, redis_server):
    await beat_for(redis_server.url, LOST_S + 0.5)
    await wait_until(lambda: backend.live_workers() == 0, LOST_S + 3)  # its key expired
    assert backend.is_lost("gpu0@test")  # Redis kept heartbeats longer than LOST_S: it is gone
    assert not backend.is_lost("")  # progress without a worker name (an old worker) is never a loss


async def test_a_worker_newer_than_the_last_look_is_alive_at_once(backend, redis_server):
    await asyncio.sleep(LOST_S + 0.3)  # the start's own grace is over
    beat_once(redis_server.url, "gpu1@new")  # the backend has not looked at the heartbeats since
    assert not backend.is_lost("gpu1@new")


async def test_a_worker_whose_first_heartbeat_is_slow_gets_worker_lost_s(backend, redis_server):
    await asyncio.sleep(LOST_S + 0.3)
    heard = time.monotonic()
    assert not backend.is_lost("gpu2@slow")  # named by a job's progress; no heartbeat yet
    await asyncio.sleep(LOST_S * 0.6)
    assert not backend.is_lost("gpu2@slow")
    beat_once(redis_server.url, "gpu2@slow")  # its first beat, late
    assert not backend.is_lost("gpu2@slow")
    await wait_until(lambda: backend.is_lost("gpu2@slow"), LOST_S + 2)  # then silence again: lost
    assert time.monotonic() - heard > LOST_S * 1.5  # counted from its beat, not from when it was named
    await wait_until(lambda: backend.is_lost("gpu3@never"), LOST_S + 2)  # a heartbeat that never comes


async def test_workers_are_seen_by_a_redis_user_without_info(redis_server):
    """A common ACL (+@all -@dangerous) refuses INFO; the heartbeats still count."""
    import redis

    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("ACL", "SETUSER", "xiaoai", "on", ">s3cret-pw", "~*", "&*", "+@all", "-@dangerous")
    admin.close()
    url = f"redis://xiaoai:s3cret-pw@127.0.0.1:{redis_server.port}/0"
    config = JobsConfig(backend="celery", broker_url=url, heartbeat_s=0.2, worker_lost_s=LOST_S)
    backend = CeleryBackend(lambda: config, env={})
    await backend.start()
    try:
        beat_once(url)
        await wait_until(lambda: backend.live_workers() == 1, 5)
    finally:
        await backend.stop()
