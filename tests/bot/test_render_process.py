"""The render process, for real: a tiny random CogVideoX rendered by a child `python -m
bot.hosts.render_child` through `RenderProcessBackend` — progress, the MP4, the model kept loaded (and
said so by #状态), cancellation, a killed child failing one job only, config reloads, the warm-up done
there and not here, and no child left behind by a stop or by the bot dying."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import AppConfig, VideoConfig
from bot.hosts import REPO_ROOT
from bot.jobs import Job, JobRequest, JobState
from bot.jobs.kinds import VideoKind
from bot.jobs.render_process import DIED, RenderProcessBackend, renders_in_child
from bot.jobs.warmup import LibraryWarmup, ModelPreload
from bot.messages import ChatRef
from bot.ops.admin import _model_lines
from generators.base import GenerationCancelled, GeneratorError
from generators.cpu_share import cpu_render_running
from tests.support.job_doubles import make_queue

ROOM = ChatRef("family@chatroom", is_room=True)
SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}
LOADED, NOT_LOADED = "已加载", "未加载（首次使用时加载）"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


class Wired:
    """A video kind over a config the test may edit, and the backend that renders it in a child."""

    def __init__(self, model: Path, data_dir: Path, **sampling: Any) -> None:
        self.config = VideoConfig(model={"path": model}, sampling=SMALL | sampling)
        self.kind = VideoKind(lambda: self.config, backend=lambda: "local")
        self.backend = RenderProcessBackend({"video": self.kind}, mode=lambda: "child",
                                            gpu_present=lambda: False)
        self.progress: list[tuple[int, int]] = []
        self.queue = make_queue(data_dir, kinds=[self.kind], label="视频")  # for #状态's model lines

    async def render(self, out: Path, n: int = 1, should_stop: Any = lambda: False, **params: Any) -> Path:
        params = {"prompt": "a small cat", **SMALL, **params}
        request = JobRequest("video", params, 7, "bob", "爸爸", ROOM, f"m{n}")
        job = Job(n, request, JobState.RUNNING, 1, time.time())
        return await self.backend.execute(self.kind, job, out / f"{n:06d}", self.note, should_stop)

    def note(self, step: int, steps: int) -> None:
        self.progress.append((step, steps))

    def status(self) -> str:
        return "\n".join(_model_lines(self.queue, self.backend.loaded))


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a parent that has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def wait_for(predicate: Any, within: float = 120.0) -> None:  # a child's start: torch's import
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_auto_renders_in_a_child_only_without_a_gpu() -> None:
    assert renders_in_child("auto", lambda: False) and not renders_in_child("auto", lambda: True)
    assert renders_in_child("child", lambda: True) and not renders_in_child("inline", lambda: False)
    assert AppConfig().jobs.render_process == "auto"  # old configs load unchanged, with the default


async def test_a_job_renders_in_the_child_and_its_model_stays_loaded_there(tiny_model, tmp_path):
    wired = Wired(tiny_model, tmp_path)
    try:
        assert NOT_LOADED in wired.status()
        path = await wired.render(tmp_path)
        pid = wired.backend.child_pid()
        assert path.suffix == ".mp4" and path.stat().st_size > 1000
        assert wired.progress == [(1, 2), (2, 2)]
        assert pid is not None and pid != os.getpid()
        assert nice(pid) > nice(os.getpid())  # the bot's replies win the cores
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE  # and the render only takes a core they leave
        assert LOADED in wired.status() and NOT_LOADED not in wired.status()
        assert not wired.kind.generator.loaded  # the bot's own generator never loads

        await wired.render(tmp_path, 2)
        assert wired.backend.child_pid() == pid  # the same child, the model resident

        wired.config = wired.config.model_copy(update={"model": wired.config.model.model_copy(
            update={"path": tmp_path / "nowhere"})})
        assert NOT_LOADED in wired.status()  # a new model path: what the child holds is not it
        with pytest.raises(GeneratorError) as failed:
            await wired.render(tmp_path, 3)
        in_process = VideoKind(lambda: wired.config, backend=lambda: "local")
        with pytest.raises(GeneratorError) as here:
            in_process.generator.locate()
        assert str(failed.value) == str(here.value)  # the asker reads the same sentence
        assert failed.value.admin_detail == here.value.admin_detail
    finally:
        await wired.backend.stop()
    assert gone(pid)


async def test_cancel_stops_the_render_and_a_killed_child_fails_one_job(tiny_model, tmp_path):
    wired = Wired(tiny_model, tmp_path, max_steps=1000)
    try:
        stop = asyncio.Event()
        job = asyncio.create_task(wired.render(tmp_path, should_stop=stop.is_set, steps=500))
        await wait_for(lambda: len(wired.progress) >= 2)
        assert not cpu_render_running()  # no GIL shared with the render: chat is still answered ahead
        stop.set()
        with pytest.raises(GenerationCancelled):
            await job
        assert len(wired.progress) < 500
        first = wired.backend.child_pid()

        wired.progress.clear()
        job = asyncio.create_task(wired.render(tmp_path, 2, steps=500))
        await wait_for(lambda: len(wired.progress) >= 2)
        assert wired.backend.child_pid() == first  # cancelling kept the child
        os.kill(first, signal.SIGKILL)  # what the out-of-memory killer does
        with pytest.raises(GeneratorError) as died:
            await asyncio.wait_for(job, 10)
        assert str(died.value) == DIED and "SIGKILL" in (died.value.admin_detail or "")
        assert NOT_LOADED in wired.status()

        path = await wired.render(tmp_path, 3)
        assert path.is_file() and wired.backend.child_pid() not in (None, first)
    finally:
        await wired.backend.stop()


async def test_warm_up_and_preload_happen_in_the_child_not_here(tiny_model, tmp_path, monkeypatch):
    import generators.heavy_imports

    imported: list[str] = []

    def imported_here(*args: Any) -> float:
        imported.append("here")  # not raised: the warm-up's own error handling would swallow it
        return 0.0

    monkeypatch.setattr(generators.heavy_imports, "import_heavy", imported_here)
    wired = Wired(tiny_model, tmp_path)
    wired.config = wired.config.model_copy(update={"load_at_start": True})
    warmup = LibraryWarmup(lambda: [wired.kind], wired.backend)
    preload = ModelPreload(wired.kind, lambda: wired.config, wired.backend)
    try:
        await warmup.start()
        await preload.start()
        await wait_for(lambda: wired.backend.loaded("video"))
        assert LOADED in wired.status()
        assert not wired.kind.generator.loaded
        await asyncio.wait_for(warmup._task, 60)  # the child's import finished (or failed) ...
        assert imported == []  # ... and the bot itself never imported the libraries
    finally:
        await preload.stop()
        await warmup.stop()
        await wired.backend.stop()


async def test_a_group_stop_leaves_the_job_to_the_bot_and_the_child_logs_through_it(tiny_model, tmp_path):
    """SIGTERM to the whole process group (a service manager's stop) must not end the child under its job:
    the bot decides (back to the queue); and the child's log lines come out of the bot's own logger."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    wired = Wired(tiny_model, tmp_path, max_steps=1000)
    try:
        job = asyncio.create_task(wired.render(tmp_path, steps=6))
        await wait_for(lambda: len(wired.progress) >= 1)
        pid = wired.backend.child_pid()
        assert LOADED in wired.status()  # during the first render, once its model is in memory
        os.kill(pid, signal.SIGTERM)
        path = await asyncio.wait_for(job, 60)
        assert path.is_file() and wired.backend.child_pid() == pid
        assert f"render process {pid}: serving (idle priority)\n" in lines
    finally:
        logger.remove(sink)
        await wired.backend.stop()


async def test_a_child_that_cannot_start_says_so_and_keeps_no_secrets(tiny_model, tmp_path, monkeypatch):
    import bot.jobs.render_process as render_process

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-the-child-0123456789")
    wired = Wired(tiny_model, tmp_path)
    try:
        monkeypatch.setattr(render_process, "CHILD_MODULE", "bot.no_such_module")
        with pytest.raises(GeneratorError) as failed:
            await wired.render(tmp_path)
        assert str(failed.value) == render_process.NOT_STARTED
        assert "exit code 1" in (failed.value.admin_detail or "") and "dmesg" not in failed.value.admin_detail

        monkeypatch.setattr(render_process, "CHILD_MODULE", "bot.hosts.render_child")
        await wired.render(tmp_path, 2)  # the next job starts a child that works
        environ = await asyncio.to_thread(Path(f"/proc/{wired.backend.child_pid()}/environ").read_bytes)
        assert b"OPENAI_API_KEY" not in environ and b"sk-not-for-the-child" not in environ
    finally:
        await wired.backend.stop()


async def test_a_child_no_longer_used_is_stopped(tiny_model, tmp_path):
    """The config moved renders back into the bot's process: the idle child and its model go."""
    mode = ["child"]
    wired = Wired(tiny_model, tmp_path)
    wired.backend = RenderProcessBackend({"video": wired.kind}, mode=lambda: mode[0],
                                         gpu_present=lambda: False)
    try:
        await wired.render(tmp_path)
        pid = wired.backend.child_pid()
        assert wired.backend.handles("video") and not gone(pid)
        mode[0] = "inline"
        assert not wired.backend.handles("video")  # the queue asks: the job goes to the bot's process
        await wait_for(lambda: gone(pid), within=30)
        assert wired.backend.child_pid() is None and wired.backend.loaded("video") is None
    finally:
        await wired.backend.stop()


def test_the_child_leaves_when_the_bot_is_killed_and_the_bot_checks_without_torch(tiny_model, tmp_path):
    """A bot killed outright (no stop) leaves no render process: the child sees its pipe end. And the bot
    itself, checking a request and asking for the child, never imported torch."""
    script = tmp_path / "killed_bot.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys
        from bot.config import VideoConfig
        from bot.jobs.kinds import VideoKind
        from bot.jobs.render_process import RenderProcessBackend

        async def main():
            config = VideoConfig(model={{"path": "{tiny_model}"}}, sampling={SMALL!r})
            kind = VideoKind(lambda: config, backend=lambda: "local")
            backend = RenderProcessBackend({{"video": kind}}, mode=lambda: "child", gpu_present=lambda: False)
            await backend.check(kind, kind.request({{"prompt": "a small cat"}}, 1))
            child = await backend._running_child()
            print(child.process.pid, "torch" in sys.modules, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """), encoding="utf-8")
    bot = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        pid_text, torch_imported = bot.stdout.readline().split()
        pid = int(pid_text)
        assert not gone(pid) and torch_imported == "False"
    finally:
        bot.kill()
        bot.wait()
    deadline = time.monotonic() + 10
    while not gone(pid):
        assert time.monotonic() < deadline, "the render process outlived the bot"
        time.sleep(0.05)


async def test_the_bot_preloads_in_its_render_process_reports_it_and_stops_it(tiny_model, tmp_path):
    """Wired by build_app: `#状态` says the child's truth, and stopping the bot stops the child."""
    from tests.bot.ops_doubles import ADMIN, make_app, message

    config = textwrap.dedent(f"""\
        bot: {{admins: [{ADMIN}]}}
        jobs: {{render_process: child}}
        video: {{backend: local, load_at_start: true, model: {{path: "{tiny_model}"}}}}
        """)
    app, channel = make_app(tmp_path, config)
    backend = app.jobs.backend_for("video")
    assert isinstance(backend, RenderProcessBackend) and app.jobs.backend_for("image") is backend

    async def status() -> str:
        await app.dispatcher.on_message(message("#状态", sender=ADMIN, room=None))
        return next(line for line in channel.private_texts(ADMIN)[-1].splitlines() if line.startswith("视频"))

    assert NOT_LOADED in await status()
    wanted = ("jobs", "video preload", "library warm-up")
    started = [service for name, service in app.services if name in wanted]
    try:
        for service in started:
            await service.start()
        await wait_for(lambda: backend.loaded("video"))
        assert LOADED in await status() and NOT_LOADED not in await status()
        pid = backend.child_pid()
    finally:
        await app.close()
    assert pid is not None and gone(pid)


async def test_a_video_job_goes_from_the_queue_through_the_child_to_the_group(tiny_model, tmp_path):
    """The whole local path as the bot runs it on a CPU box: queue -> render process -> MP4 -> outbox."""
    from tests.bot.ops_doubles import make_app

    config = textwrap.dedent(f"""\
        jobs: {{render_process: child}}
        video: {{backend: local, model: {{path: "{tiny_model}"}}, sampling: {SMALL!r}}}
        """)
    app, channel = make_app(tmp_path, config)
    jobs = dict(app.services)["jobs"]
    request = JobRequest("video", {"prompt": "a small cat", **SMALL}, 3, "bob", "爸爸", ROOM, "ask-1")
    try:
        await jobs.start()
        receipt = await app.jobs.submit(request)
        await wait_for(lambda: any(reply.file for _chat, reply in channel.sent))
        video = next(reply.file for _chat, reply in channel.sent if reply.file)
        assert video.suffix == ".mp4" and video.stat().st_size > 1000
        assert app.jobs.get(receipt.job.id).state is JobState.DONE
        assert app.jobs.backend_for("video").child_pid() is not None
        assert not app.jobs.kinds["video"].generator.loaded  # rendered in the child, not here
    finally:
        await app.close()


def test_with_celery_workers_the_bot_warms_no_model_up(tmp_path):
    """The workers render and warm up; the bot would only hold torch (or a whole model) for nothing."""
    from tests.bot.ops_doubles import make_app

    warm_ups = {"video preload", "image preload", "library warm-up"}
    app, _channel = make_app(tmp_path, "jobs: {backend: celery}\nvideo: {load_at_start: true}\n")
    names = {name for name, _service in app.services}
    assert "jobs" in names and not warm_ups & names
    (tmp_path / "local").mkdir()
    local, _channel = make_app(tmp_path / "local", "video: {load_at_start: true}\n")
    assert warm_ups <= {name for name, _service in local.services}
