"""`xiaoai worker --gpus 0,1` end to end on the CPU: a real redis-server, the real worker process with its
second rank (gloo), one video job sent the way the bot sends it; the MP4 comes back through the result
backend, the worker reports a rank group, and SIGTERM stops both ranks."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import AppConfig
from bot.jobs.broker import TASK, TOKEN_KEY, celery_app, redis_client
from tests.support.redis_server import REPO, RedisServer, require_redis_server
from tests.support.tiny_models import build_cogvideox_folder

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_two_rank_worker_renders_a_video_and_stops_on_sigterm(tmp_path: Path) -> None:
    redis = RedisServer(require_redis_server()).start()
    model = build_cogvideox_folder(tmp_path / "tiny-2b")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nvideo:\n  parallel: cfg\n  model:\n    path: {model}\n"
        f"  sampling: {{num_frames: 9, steps: 3, height: 64, width: 96}}\n"
        f"jobs:\n  backend: celery\n  broker_url: {redis.url}\n  heartbeat_s: 0.5\n", encoding="utf-8")
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    with log.open("a", encoding="utf-8") as out:
        worker = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--config", str(config), "--gpus",
                                   "0,1", "--queues", "video"], cwd=tmp_path, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    app = celery_app(redis.url, AppConfig().jobs)
    client = redis_client(redis.url)
    try:
        deadline = time.monotonic() + 120
        while "serving video via" not in log.read_text(errors="replace"):  # jobs wait in Redis meanwhile
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        followers = _children(worker.pid)
        assert "rank group of 2 ready (gloo)" in log.read_text()
        client.set(TOKEN_KEY + "msg-1", "t1", ex=600)
        result = app.send_task(TASK, kwargs={"kind": "video", "params": {"prompt": "a panda plays guitar",
                                                                         "num_frames": 9, "steps": 3},
                                             "seed": 5, "token": "t1"}, task_id="msg-1", queue="video")
        outcome = result.get(timeout=120)
        assert outcome["status"] == "done", (outcome, log.read_text()[-3000:])
        data = base64.b64decode(outcome["data"])
        assert outcome["suffix"] == ".mp4" and data[4:8] == b"ftyp" and len(data) > 1000
        assert followers, "the second rank is not a child of the worker"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        assert "rank group stopped" in log.read_text()

        def gone(pid: int) -> bool:
            stat = Path(f"/proc/{pid}") / "stat"
            try:
                return "Z" in stat.read_text().split(")")[-1][:3]
            except OSError:
                return True

        deadline = time.monotonic() + 20  # the other rank leaves once rank 0 has said stop
        while not all(gone(pid) for pid in followers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_children(worker.pid)) and all(gone(pid) for pid in followers)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        client.close()
        redis.stop()
