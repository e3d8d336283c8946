"""`xiaoai worker`: a Celery worker process for one GPU that renders video and image jobs for the bot.

It loads the generators once, takes one job at a time (`--pool=solo`, prefetch 1), publishes step
progress as the task's state, stops a render when the bot sets the job's cancel key, and sends the
finished MP4/JPEG back through the result backend (no shared filesystem; size-capped). A heartbeat
thread keeps `xiaoai:worker:<name>` alive so the bot sees it even while the main thread renders.

`render_one` is the one step that turns a job into a file; a worker that spreads one video over
several GPUs swaps only that function.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from bot.config import AppConfig
from bot.jobs.broker import (
    CANCEL_KEY,
    TASK,
    TOKEN_KEY,
    WORKER_KEY,
    WORKER_KINDS,
    broker_url,
    celery_app,
    check_broker_url,
    redact,
    redis_client,
)
from bot.jobs.types import JobKind, JobRequest, ShouldStop, StepCallback
from bot.messages import ChatRef
from generators.base import GenerationCancelled, GeneratorError

STOP_CHECK_S = 0.2  # how often the step callback may ask Redis whether the job was cancelled


def render_one(kind: JobKind, request: JobRequest, output_stem: Path, on_step: StepCallback,
               should_stop: ShouldStop) -> Path:
    """Render one job on this worker's GPU to a file next to `output_stem` (the swappable step)."""
    return kind.run(request, output_stem, on_step, should_stop)


def worker_name(gpu: int | str | None) -> str:
    host = socket.gethostname()
    return f"gpu{gpu}@{host}" if gpu is not None else f"cpu{os.getpid()}@{host}"


class Heartbeat:
    """Refreshes this worker's key (with a TTL) from its own thread; `job` is what it renders now."""

    def __init__(self, client: Any, name: str, gpu: int | str | None, queues: Sequence[str], every_s: float,
                 ttl_s: float) -> None:
        self._client = client
        self.name = name
        self._info = {"name": name, "host": socket.gethostname(), "gpu": gpu, "queues": list(queues),
                      "pid": os.getpid(), "ttl_s": ttl_s}  # the bot tells the key's age from what is left
        self.job: dict[str, Any] | None = None
        self._every_s = every_s
        self._ttl_ms = max(1000, int(ttl_s * 1000))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._client.delete(WORKER_KEY + self.name)
        except Exception:  # noqa: BLE001 - the key expires anyway
            pass

    def beat(self) -> None:
        try:
            self._client.set(WORKER_KEY + self.name, json.dumps({**self._info, "job": self.job}),
                             px=self._ttl_ms)
            if self._failing:
                logger.info("worker: Redis reachable again")
            self._failing = False
        except Exception as exc:  # noqa: BLE001 - Redis restarting: keep beating until it is back
            if not self._failing:
                logger.warning("worker: heartbeat failed ({}); retrying", type(exc).__name__)
            self._failing = True

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self.beat()


def _job_request(kind: str, params: Mapping[str, Any], seed: int) -> JobRequest:
    """The request as a job kind takes it; who asked and where stays on the bot host."""
    return JobRequest(kind=kind, params=dict(params), seed=int(seed), asker_id="", asker_name="",
                      chat=ChatRef("", False), message_id="")


class Renderer:
    """The body of the `xiaoai.render` task: duplicate checks, progress, cancellation, the result."""

    def __init__(self, kinds: Mapping[str, JobKind], client: Any, heartbeat: Heartbeat, max_result_mb: float,
                 work_dir: Path, render: Callable[..., Path] = render_one) -> None:
        self.kinds = kinds
        self._client = client
        self._heartbeat = heartbeat
        self._max_bytes = int(max_result_mb * 1e6)
        self._max_result_mb = max_result_mb
        self._work_dir = work_dir
        self._render = render

    def __call__(self, task: Any, kind: str, params: Mapping[str, Any], seed: int, token: str) -> dict:
        from celery.exceptions import Ignore

        task_id = task.request.id
        if self._is_copy(task, token):
            raise Ignore()
        if kind not in self.kinds:
            return {"status": "failed", "error": f"这个 GPU 工作进程不做「{kind}」类任务"}
        name = self._heartbeat.name
        job = {"task": task_id, "kind": kind, "step": 0, "steps": 0, "since": time.time()}
        self._heartbeat.job = job
        task.update_state(state="PROGRESS", meta={"step": 0, "steps": 0, "worker": name, "token": token})
        self._heartbeat.beat()
        on_step, should_stop = self._progress_and_stop(task, job, token)
        started = time.monotonic()
        stem = self._work_dir / task_id.replace(":", "_").replace("/", "_")
        try:
            request = _job_request(kind, params, seed)
            path = self._render(self.kinds[kind], request, stem, on_step, should_stop)
        except GenerationCancelled:
            logger.info("worker: {} cancelled at step {}/{}", task_id, job["step"], job["steps"])
            return {"status": "cancelled", "worker": name}
        except GeneratorError as exc:
            logger.warning("worker: {} failed: {}{}", task_id, exc,
                           f" ({exc.admin_detail})" if exc.admin_detail else "")
            return {"status": "failed", "error": str(exc), "admin_detail": exc.admin_detail,
                    "problem": exc.problem, "worker": name}
        except Exception as exc:  # noqa: BLE001 - one bad job must never stop the worker
            logger.exception("worker: {} crashed", task_id)
            return {"status": "crashed", "error": type(exc).__name__, "worker": name}
        finally:
            self._heartbeat.job = None
        return self._result(path, task_id, time.monotonic() - started)

    def _is_copy(self, task: Any, token: str) -> bool:
        """Whether this delivery is one not to render: an old copy, a job the bot finished, or one
        already rendered."""
        task_id = task.request.id
        current = self._client.get(TOKEN_KEY + task_id)
        if current is None or current.decode() != token:  # an old copy, or a job the bot finished
            logger.info("worker: dropping stale copy of {}", task_id)
            return True
        if task.backend.get_task_meta(task_id).get("status") == "SUCCESS":
            logger.info("worker: {} already rendered, dropping the copy", task_id)
            return True
        return False

    def _progress_and_stop(self, task: Any, job: dict[str, Any], token: str
                           ) -> tuple[Callable[[int, int], None], Callable[[], bool]]:
        """The render's step callback (progress published as the task's state, for the bot to poll) and
        its stop question (the bot's cancel key, read at most every STOP_CHECK_S)."""
        task_id, name = task.request.id, self._heartbeat.name
        last_check = [0.0, False]

        def on_step(step: int, steps: int) -> None:
            job.update(step=step, steps=steps)
            try:
                task.update_state(state="PROGRESS",
                                  meta={"step": step, "steps": steps, "worker": name, "token": token})
            except Exception as exc:  # noqa: BLE001 - Redis restarting: progress is best effort, keep rendering
                logger.warning("worker: progress of {} not published ({})", task_id, type(exc).__name__)

        def should_stop() -> bool:
            now = time.monotonic()
            if not last_check[1] and now - last_check[0] >= STOP_CHECK_S:
                last_check[0] = now
                try:
                    last_check[1] = bool(self._client.exists(CANCEL_KEY + task_id))
                except Exception:  # noqa: BLE001 - Redis blip: keep rendering, ask again next step
                    pass
            return last_check[1]

        return on_step, should_stop

    def _result(self, path: Path, task_id: str, took: float) -> dict:
        """The rendered file as the task's result (base64), removed here; too big to send back: failed."""
        name = self._heartbeat.name
        try:
            data = path.read_bytes()
        finally:
            path.unlink(missing_ok=True)
        logger.info("worker: {} rendered in {:.1f}s ({} bytes)", task_id, took, len(data))
        if len(data) > self._max_bytes:
            return {"status": "failed", "worker": name,
                    "error": f"做好的文件有 {len(data) / 1e6:.1f} MB，超过了能传回来的上限 "
                             f"{self._max_result_mb:g} MB（jobs.max_result_mb），请换个短一点或小一点的要求"}
        return {"status": "done", "suffix": path.suffix, "data": base64.b64encode(data).decode("ascii"),
                "worker": name}


def worker_kinds(config: AppConfig, ranks: Any = None) -> dict[str, JobKind]:
    from bot.jobs.kinds import ImageKind, VideoKind, image_api_key

    return {"video": VideoKind(lambda: config.video, ranks=ranks),
            "image": ImageKind(lambda: config.image, api_key=image_api_key)}


def run_worker(config: AppConfig, *, gpu: int | None, queues: Sequence[str],
               env: Mapping[str, str] | None = None, gpus: Sequence[int] = ()) -> int:
    """Serve `queues` until stopped (SIGTERM: finish the current job first). 2 on a refused setup.

    `gpus` (two or more): one video on all of them (`video.parallel`, bot/hosts/group_worker.py)."""
    url = broker_url(config.jobs, env)
    check_broker_url(url)
    unknown = [q for q in queues if q not in WORKER_KINDS]
    if unknown or not queues:
        raise ValueError(f"--queues takes {', '.join(WORKER_KINDS)}; got {', '.join(queues) or 'nothing'}")
    if gpu is not None and gpus:
        raise ValueError("give --gpu N (one GPU per video) or --gpus N,M (one video on several), not both")
    if len(gpus) == 1:
        gpu, gpus = gpus[0], ()
    group, render, ranks = None, render_one, None
    if gpus:  # before anything imports torch: rank r uses cuda:r of these cards
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        from bot.hosts.group_worker import GroupRender, start_group

        group, ranks = start_group(config, gpus)
        render = GroupRender(group)
    elif gpu is not None:  # before anything imports torch: this process sees one card, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    try:
        return _serve(config, url, gpu if not gpus else "-".join(map(str, gpus)), queues, render, ranks)
    finally:
        if group is not None:
            group.stop()


def _serve(config: AppConfig, url: str, gpu: int | str | None, queues: Sequence[str],
           render: Callable[..., Path], ranks: Any) -> int:
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # it would log whole results
    name = worker_name(gpu)
    kinds = worker_kinds(config, ranks)
    served = {q: kinds[q] for q in queues}
    for queue, kind in served.items():
        if getattr(kind, "backend", "local") == "local":
            logger.info("worker: loading the {} model", queue)
            try:
                kind.generator.load()
            except GeneratorError as exc:  # its jobs report this to the asker, as in the bot
                logger.error("worker: the {} model is not usable here: {}", queue, exc)
    client = redis_client(url)
    heartbeat = Heartbeat(client, name, gpu, queues, config.jobs.heartbeat_s, config.jobs.worker_lost_s)
    app = celery_app(url, config.jobs)
    work_dir = Path(tempfile.mkdtemp(prefix="xiaoai-worker-"))
    renderer = Renderer(served, client, heartbeat, config.jobs.max_result_mb, work_dir, render)

    @app.task(name=TASK, bind=True)
    def render(task: Any, kind: str, params: dict, seed: int, token: str) -> dict:
        return renderer(task, kind, params, seed, token)

    from celery.signals import worker_ready

    @worker_ready.connect(weak=False)
    def announce(**_: Any) -> None:  # Celery's own banner is library INFO, shown at DEBUG only
        logger.info("worker {}: ready.", name)

    logger.info("worker {} serving {} via {}", name, ",".join(queues), redact(url))
    heartbeat.start()
    try:
        app.worker_main(["worker", "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1",
                         f"--queues={','.join(queues)}", f"--hostname={name}", "--without-gossip",
                         "--without-mingle", "--without-heartbeat", "--loglevel=INFO"])
    finally:
        heartbeat.stop()
    return 0
