"""Long work is not silent: step progress of a job reaches the log every ~10 % (step i/N, ETA) when the log
is a file, a live bar draws when it is a terminal, and the file never gets a control code. The heavy
libraries are imported at start-up in a fresh interpreter, without the known-harmless notices."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

from loguru import logger

from bot.jobs.progress import StepProgress
from bot.logs import setup_logging
from tests.bot.test_jobs import FakeKind, make_queue, request
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def capture_log() -> io.StringIO:
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    return out


def restore_log() -> None:
    logger.remove()
    logger.add(sys.__stderr__)


def test_a_file_gets_a_plain_line_every_tenth_with_step_and_eta():
    out = capture_log()
    now = [0.0]
    try:
        progress = StepProgress("jobs: #2 视频", tty=False, clock=lambda: now[0])
        for step in range(1, 51):
            now[0] += 2.0  # 2 s a step
            progress.update(step, 50)
        progress.close()
    finally:
        restore_log()
    lines = out.getvalue().splitlines()
    assert len(lines) == 9, lines  # 10 % ... 90 %; "done" is the queue's own line
    assert "step 5/50 (10 %), eta 1 min 30 s" in lines[0]
    assert "step 45/50 (90 %), eta 10 s" in lines[-1]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_terminal_gets_a_live_bar():
    terminal, out = Terminal(), capture_log()
    try:
        progress = StepProgress("jobs: #3 图片", stream=terminal)
        for step in range(1, 5):
            progress.update(step, 4)
        progress.close()
    finally:
        restore_log()
    assert "\r" in terminal.getvalue() and "jobs: #3 图片" in terminal.getvalue()
    assert "step" not in out.getvalue()  # the bar alone: no plain progress lines in the log


async def test_a_running_job_reports_its_steps_between_accepted_and_done(tmp_path):
    out = capture_log()
    try:
        kind = FakeKind()
        kind.name = "fake"
        queue = make_queue(tmp_path, None, kind)
        await queue.start()
        try:
            receipt = await queue.submit(request("slow", sleep=0.05))
            await wait_until(lambda: "done in" in out.getvalue(), 10)
        finally:
            await queue.stop()
    finally:
        restore_log()
    text = out.getvalue()
    job = receipt.job.id
    accepted, done = text.index(f"accepted #{job}"), text.index(f"#{job} done in")
    steps = [line for line in text[accepted:done].splitlines() if "step " in line]
    assert steps and all(f"jobs: #{job} 测试: step" in line and "eta" in line for line in steps), text
    assert "\r" not in text


WARMUP = textwrap.dedent("""
    import asyncio, logging, re, sys, threading
    from bot.logs import setup_logging
    from generators.heavy_imports import HARMLESS
    seen = []
    class Count(logging.Filter):  # runs before the silencing filter: counts what would have shown
        def __init__(self, pattern):
            super().__init__(); self.pattern = pattern
        def filter(self, record):
            if self.pattern.search(record.getMessage()):
                seen.append(record.name)
            return True
    for name, pattern in HARMLESS.items():
        logging.getLogger(name).addFilter(Count(pattern))
    setup_logging("INFO", stream=sys.stdout)
    from bot.config import VideoConfig
    from bot.jobs.warmup import LibraryWarmup
    from bot.jobs.kinds import VideoKind
    path = sys.argv[1] if len(sys.argv) > 1 else None
    kind = VideoKind(lambda: VideoConfig(model={"path": path}))
    warmup = LibraryWarmup(lambda: [kind])
    asyncio.run(warmup.start())
    for thread in threading.enumerate():
        if thread.name == "library-warmup":
            thread.join(300)
    print("RESULT", "torch" in sys.modules, sorted(set(seen)), flush=True)
    if path:  # building a model (the playground's demo) writes no progress bar into a file either
        import tempfile
        from pathlib import Path
        from generators.demo import _build_cogvideox, ensure_demo
        ensure_demo(Path(tempfile.mkdtemp()), "demo", _build_cogvideox)
""")


def run_warmup(*args: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", WARMUP, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=400, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                            "HF_HUB_OFFLINE": "1", "HOME": str(REPO / ".no-home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def test_with_a_local_model_the_libraries_are_imported_at_start_without_noise(tmp_path):
    from tests.support.tiny_models import build_cogvideox_folder

    folder = build_cogvideox_folder(tmp_path / "tiny-cogvideox")
    out, err = run_warmup(str(folder))
    result = next(line for line in out.splitlines() if line.startswith("RESULT"))
    assert result.startswith("RESULT True ") and "imported in" in out and "built a random-weight" in out
    assert "\r" not in out + err and "\x1b[" not in out + err, (out + err)[-3000:]
    for notice in ("Failed to load", "is an Enum subclass", "requires torchvision",
                   "Unable to import `torchao`", "Detected no triton"):
        assert notice not in out + err, (out + err)[-3000:]
    print(result)  # which notices were raised (and silenced) here, and the import time


def test_without_a_local_model_nothing_heavy_is_imported():
    out, _err = run_warmup()
    assert "RESULT False []" in out
