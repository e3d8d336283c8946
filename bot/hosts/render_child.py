"""The render process: the child that `RenderProcessBackend` (bot/jobs/render_process.py) starts to run
local video and image jobs away from the bot's event loop.

A CPU render is Python-bound between its torch ops and, in the bot's own process, holds the GIL the event
loop needs (replies to a flood slowed by half while a video rendered). Here it has its own interpreter,
at nice 10 and, on Linux, the idle CPU priority (`SCHED_IDLE`), so there it runs only on a core the bot's
replies leave free. The child hosts the same job kinds as the bot (`VideoKind`, `ImageKind`), built from
the config section each operation carries, so the models stay resident across jobs and a changed model
path rebuilds as it does in-process.

It is started as `python -m bot.hosts.render_child FD LEVEL PARENT`, FD being its end of a `multiprocessing`
pipe and PARENT the bot's pid.
The protocol is plain tuples over that pipe, handled one operation at a time:

    parent -> child   ("job", op, kind, section, request_json, output_stem)
                      ("load", op, kind, section)       load the kind's model now (load_at_start)
                      ("warm", op)                      import torch / transformers / diffusers now
                      ("cancel", op)                    stop that operation at its next step
    child -> parent   ("ready", pid)
                      ("progress", op, step, steps)
                      ("done", op, result)              result: the file's path, or None
                      ("failed", op, error)             error: an `ErrorReport` as a dict
                      ("loaded", op, {kind: bool})      after every operation: which models are in memory
                      ("holding", op, {kind: bool})     the same, at a job's first step
                      ("log", level, text)              a log line, logged again by the bot as its own

A reader thread takes the parent's messages while the main thread renders, so a cancel arrives mid-render;
the end of the pipe (the bot stopping it, or the bot gone, even killed) stops the render at its next step
and ends the child. On Linux a killed bot also takes the child with it at once (`_leave_with`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from generators.cpu_share import at_idle_priority, lower_priority  # stdlib only: see `serve`


def _kind_factories() -> dict[str, Callable[[Callable[[], Any]], Any]]:
    """The job kinds the child can host, built from a getter of their current section (only local ones
    come here: the video kind's backend is local by construction)."""
    from bot.jobs.kinds import ImageKind, VideoKind

    return {"video": lambda section: VideoKind(section, backend=lambda: "local"),
            "image": lambda section: ImageKind(section)}


class RenderChild:
    """The child's state: its kinds (built on first use, resident), their latest sections, the current
    operation and the operations the parent asked to stop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.sections: dict[str, Any] = {}
        self.kinds: dict[str, Any] = {}
        self.stopped: set[int] = set()  # ops to stop (a cancel may come before its op starts)
        self.parent_gone = False
        self._sending = threading.Lock()  # the render thread and a library's logging thread may both send

    def kind(self, name: str, section: Any) -> Any:
        self.sections[name] = section
        if name not in self.kinds:
            factory = _kind_factories()[name]
            self.kinds[name] = factory(lambda: self.sections[name])
        return self.kinds[name]

    # -- the reader thread -------------------------------------------------------------------------
    def read(self) -> None:
        """Take the parent's messages as they come; a cancel is applied at once, the rest queued."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                self.parent_gone = True  # the bot stopped or died: stop what runs and leave
                self.inbox.put(None)
                return
            if message[0] == "cancel":
                self.stopped.add(message[1])
            else:
                self.inbox.put(message)

    # -- the main thread ---------------------------------------------------------------------------
    def serve(self) -> None:
        # imported here, not at the top: `bot.jobs` takes ~0.6 s of CPU, which a bot killed meanwhile
        # would leave the child to spend before `_leave_with`, and before its priority is lowered
        from bot.jobs.render_process import ErrorReport
        from generators.base import GenerationCancelled

        self.send(("ready", os.getpid()))
        while (message := self.inbox.get()) is not None and not self.parent_gone:
            op = message[1]
            try:
                if op in self.stopped:  # cancelled while it waited: no weights loaded for it
                    raise GenerationCancelled("stopped before it started")
                result = self.perform(message)
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent as data
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self.send(("failed", op, asdict(ErrorReport.of(exc))))
            else:
                self.send(("done", op, result))
            self.send(("loaded", op, self.loaded()))
            self.stopped.discard(op)

    def perform(self, message: tuple[Any, ...]) -> Any:
        verb, op = message[0], message[1]
        if verb == "warm":
            from bot.logs import route_stdlib_logging
            from generators.heavy_imports import import_heavy

            seconds = import_heavy()
            route_stdlib_logging()
            return seconds
        if verb == "load":
            _verb, _op, name, section = message
            self.kind(name, section).generator.load()
            return None
        if verb == "job":
            from bot.jobs.types import JobRequest

            _verb, _op, name, section, request_json, output_stem = message
            kind = self.kind(name, section)

            def on_step(step: int, steps: int) -> None:
                if step == 1:  # the model is in memory by now: #状态 may say so during the first render
                    self.send(("holding", op, self.loaded()))
                self.send(("progress", op, step, steps))

            def should_stop() -> bool:
                return self.parent_gone or op in self.stopped

            path = kind.run(JobRequest.from_json(request_json), Path(output_stem), on_step, should_stop)
            return str(path)
        raise ValueError(f"unknown operation {verb!r}")

    def loaded(self) -> dict[str, bool]:
        return {name: bool(kind.generator.loaded) for name, kind in self.kinds.items()}

    def send(self, message: tuple[Any, ...]) -> None:
        if self.parent_gone:
            return
        try:
            with self._sending:
                self.conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            self.parent_gone = True

    def log(self, message: Any) -> None:
        """loguru's sink here: each line goes to the bot, which logs it as its own (its console's log page,
        its redaction); to stderr once the bot is gone."""
        text = str(message).rstrip("\n")
        if not self.parent_gone:
            self.send(("log", message.record["level"].name, text))
        if self.parent_gone:
            sys.stderr.write(f"render process {os.getpid()}: {text}\n")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _leave_with(parent: int) -> None:
    """Have the kernel kill this process when the bot's thread that started it ends (Linux; the loop's
    thread starts it). At the idle priority on busy cores, noticing the end of the pipe took a killed bot's
    child 34 s of waiting for a core (two cores, four busy loops); a SIGKILL needs only the kernel's exit
    path, ~0.15 s under that load."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the bot ended before we asked
        os._exit(0)


def main(conn: Connection, log_level: str, parent: int) -> None:
    """The child's work: lower priority, log through the bot, serve until the pipe ends (the bot closes it
    to stop us, or is gone)."""
    _leave_with(parent)
    # Ctrl-C and a service manager's stop reach the whole process group: the bot stops us itself, after
    # it has told the running job to go back to the queue (a child gone first would fail that job)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lower_priority()
    from loguru import logger

    from bot.logs import setup_logging

    setup_logging(log_level)  # the level, and library `logging` routed into loguru
    child = RenderChild(conn)
    logger.remove()
    logger.add(child.log, level=log_level.upper(), format="{message}", colorize=False, backtrace=False,
               diagnose=False)
    threading.Thread(target=child.read, name="render-pipe", daemon=True).start()
    priority = "idle priority" if at_idle_priority() else f"nice {os.nice(0)}"
    logger.info("serving ({})", priority)
    child.serve()
    logger.info("stopping")
    # Every answer went back before serve() returned: nothing is left to save, and an interpreter's
    # teardown (torch's with it) is CPU this process would wait for at the idle priority; leave at once.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":  # python -m bot.hosts.render_child FD LEVEL PARENT, from RenderProcessBackend
    from bot.hosts import render_child  # the module under its own name, not as __main__

    render_child.main(Connection(int(sys.argv[1])), sys.argv[2], int(sys.argv[3]))
