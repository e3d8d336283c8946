"""What the bot and its Celery GPU workers agree on: the broker URL and its safety rules, the Celery
settings, the task name and the Redis keys beside Celery's own.

Celery carries the job (`xiaoai.render`, task id = the job's name) and its result; three small keys
carry what Celery cannot while a solo worker is busy rendering:

* `xiaoai:worker:<name>`   a worker's heartbeat (JSON: host, GPU, queues, current job), with a TTL:
                           gone = the worker is gone (a solo worker cannot answer a ping mid-render).
* `xiaoai:token:<task id>` the current submission of a job; a task whose token differs (an old copy
                           the broker restored after a resubmission) is dropped by the worker.
* `xiaoai:cancel:<task id>` set by the bot; the worker's step callback reads it and stops the render.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.config.jobs import JobsConfig

BROKER_ENV = "XIAOAI_BROKER_URL"
TASK = "xiaoai.render"
WORKER_KINDS = ("video", "image")
WORKER_KEY = "xiaoai:worker:"
TOKEN_KEY = "xiaoai:token:"
CANCEL_KEY = "xiaoai:cancel:"
RESULT_SUFFIXES = (".mp4", ".jpg", ".jpeg", ".png", ".webp")
UNACKED_RESTORE_S = 2  # how often a worker sweeps for unacked messages whose visibility timeout passed


class BrokerUrlError(ValueError):
    """The broker URL is malformed or would expose Redis without a password."""


def broker_url(config: JobsConfig, env: Mapping[str, str] | None = None) -> str:
    """`XIAOAI_BROKER_URL` when set (where the password belongs), else `jobs.broker_url`."""
    env = os.environ if env is None else env
    return env.get(BROKER_ENV) or config.broker_url


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_broker_url(url: str) -> str:
    """The URL when it is safe to use: redis:// or rediss://, and a password unless on loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerUrlError(f"the broker URL must start with redis:// or rediss://, got {redact(url)!r}")
    host = parts.hostname or ""
    if not _is_loopback(host) and not parts.password:
        raise BrokerUrlError(
            f"refusing a Redis broker on {host} without a password: anyone who reaches it could queue "
            f"work on the GPUs or read results. Use redis://:PASSWORD@{host}:{parts.port or 6379}/0 "
            f"(or rediss:// for TLS), preferably in {BROKER_ENV}")
    return url


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def celery_app(url: str, config: JobsConfig) -> Any:
    """The Celery app both sides use: JSON only (a forged task must not run code on a GPU host), late
    acks with prefetch 1 (a job a dead worker held goes back to the queue), a visibility timeout longer
    than any job (else a long render is handed out twice) and a short sweep for unacked messages."""
    from celery import Celery

    app = Celery("xiaoai", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=False,  # the worker publishes its own state (after its duplicate checks)
        task_default_queue="video", result_expires=int(config.visibility_timeout_s) * 2,
        broker_transport_options={"visibility_timeout": int(config.visibility_timeout_s),
                                  "unacked_restore_interval": UNACKED_RESTORE_S,
                                  "unacked_restore_throttle": 1},
        result_backend_transport_options={"retry_policy": {"max_retries": 2, "interval_start": 0,
                                                           "interval_step": 0.5, "interval_max": 1}},
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False, worker_send_task_events=False, task_send_sent_event=False,
    )
    return app


def redis_client(url: str) -> Any:
    """A plain redis-py client on the same server, for the heartbeat, token and cancel keys."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=10)


def live_workers(client: Any) -> list[dict[str, Any]]:
    """The heartbeats present now (each expires on its own when its worker stops refreshing it)."""
    keys = sorted(client.scan_iter(match=WORKER_KEY + "*", count=100))
    if not keys:
        return []
    workers = []
    for raw in client.mget(keys):
        if raw:
            try:
                workers.append(json.loads(raw))
            except ValueError:
                continue
    return workers
