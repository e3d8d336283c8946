"""SIGTERM while a loading thread is busy (weights, the classifier's examples on a slow machine): the
process serving through `bot.__main__._serve` still exits, cleanly and within the grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SERVER = textwrap.dedent("""
    import asyncio, threading, time
    from bot.__main__ import _serve

    class App:
        '''The part of the Application `_serve` uses: run() until stop().'''
        def __init__(self):
            self._stopped = None
        async def run(self):
            self._stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, time.sleep, BUSY_S)  # a preload that will not finish soon
            await asyncio.to_thread(time.sleep, 0.01)  # and work that finished
            print("serving", flush=True)
            await self._stopped.wait()
        def stop(self):
            self._stopped.set()

    raise SystemExit(_serve(App()))
""")


def serve(busy_s: float) -> tuple[int, str, float]:
    """Run SERVER with a loading thread busy for `busy_s`, SIGTERM it once serving: (code, output, s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", f"BUSY_S = {busy_s}\n" + SERVER], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "serving"
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        return proc.returncode, out, time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_exits_within_the_grace_period_while_a_loading_thread_is_busy():
    code, out, took = serve(120)
    assert code == 0, out
    assert "left behind" in out and took < 20, (took, out)


def test_with_no_busy_thread_the_stop_is_prompt_and_says_nothing_about_threads():
    code, out, took = serve(0)
    assert code == 0, out
    assert "left behind" not in out and took < 4, (took, out)
