"""`xiaoai bench queue`: jobs per minute through the job queue with the tiny CogVideoX model, in-process
(`local`) and on 1..N `xiaoai worker` processes (`celery`, a throwaway loopback redis-server), plus the
submit-to-ack and submit-to-result latency of a single job on an idle queue (the distributed path's
overhead). Needs redis-server on PATH."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bot.config import AppConfig
from bot.jobs import JobQueue, JobRequest, JobStore, LocalBackend, Outbox
from bot.jobs.kinds import VideoKind
from bot.messages import ChatRef

PROMPT = "A fluffy giant panda sits on a mossy rock and strums a small wooden guitar in soft light."


def _config(root: Path, model: Path, steps: int, backend: str, url: str) -> tuple[AppConfig, Path]:
    text = (f"data_dir: {root / 'data'}\nvideo:\n  model:\n    path: {model}\n"
            f"  sampling: {{num_frames: 9, steps: {steps}, height: 64, width: 96}}\n"
            f"jobs: {{backend: {backend}, broker_url: '{url}', max_in_flight: 8, heartbeat_s: 0.5}}\n")
    path = root / f"{backend}.yaml"
    path.write_text(text, encoding="utf-8")
    from bot.config import load

    return load(path), path


async def _measure(config: AppConfig, backend, jobs: int, steps: int) -> dict[str, float]:
    shutil.rmtree(config.data_dir, ignore_errors=True)
    done: list[float] = []
    arrived = asyncio.Event()

    async def deliver(chat, reply) -> bool:  # noqa: ANN001
        done.append(time.monotonic())
        arrived.set()
        return True

    async def delivered(count: int) -> None:
        while len(done) < count:
            arrived.clear()
            await arrived.wait()

    queue = JobQueue(JobStore(config.data_dir / "jobs.sqlite3"), [backend], media_dir=config.data_dir / "m",
                     outbox=Outbox(deliver))
    queue.register(VideoKind(lambda: config.video), label="视频")
    await queue.start()
    await asyncio.sleep(1.5)  # heartbeats seen

    async def one(n: int) -> float:
        acked: list[float] = []
        request = JobRequest("video", {"prompt": PROMPT, "num_frames": 9, "steps": steps, "height": 64,
                                       "width": 96}, n, f"u{n}", "U", ChatRef("bench", True), f"m{n}")

        async def on_accepted(_receipt) -> None:  # noqa: ANN001
            acked.append(time.monotonic())

        start = time.monotonic()
        await queue.submit(request, on_accepted=on_accepted)
        return acked[0] - start

    ack_s = await one(0)  # warm-up job: model loaded, then the single-job latency on an idle queue
    await delivered(1)
    start = time.monotonic()
    single_ack = await one(1)
    await delivered(2)
    single_s = done[1] - start
    start = time.monotonic()
    for n in range(2, 2 + jobs):
        await one(n)
    await delivered(2 + jobs)
    elapsed = done[-1] - start
    await queue.stop()
    return {"jobs_per_min": jobs / elapsed * 60, "ack_ms": single_ack * 1000, "result_s": single_s,
            "first_ack_ms": ack_s * 1000}


def run(workers: list[int], jobs: int, steps: int) -> list[dict]:
    from bot.jobs.celery_backend import CeleryBackend
    from generators.random_models import build_cogvideox_folder
    from tests.support.redis_server import RedisServer, Worker

    root = Path(tempfile.mkdtemp(prefix="xiaoai-bench-queue-"))
    model = build_cogvideox_folder(root / "tiny")
    rows = []
    config, _ = _config(root, model, steps, "local", "redis://127.0.0.1:6379/0")
    local = asyncio.run(_measure(config, LocalBackend(), jobs, steps))
    rows.append({"backend": "local", "workers": 1, **local})
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        print("redis-server is not installed: only the local row", file=sys.stderr)
        return rows
    cores = os.cpu_count() or 1
    for count in workers:
        server = RedisServer(redis_bin).start()
        config, path = _config(root, model, steps, "celery", server.url)
        threads = max(1, cores // count)  # on a CPU, a worker stands for a GPU: its own share of the cores
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            procs = [Worker(path, gpu, root).start() for gpu in range(count)]
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS")
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        try:
            for proc in procs:
                proc.wait_ready()
            backend = CeleryBackend(lambda config=config: config.jobs)
            rows.append({"backend": "celery", "workers": count, "threads_each": threads,
                         **asyncio.run(_measure(config, backend, jobs, steps))})
        finally:
            for proc in procs:
                proc.stop()
            server.stop()
    for row in rows:
        print(f"{row['backend']:>6} x{row['workers']}: {row['jobs_per_min']:.1f} jobs/min, ack "
              f"{row['ack_ms']:.1f} ms, one job submit->result {row['result_s']:.2f} s")
    return rows
