"""`RenderProcessBackend`: local video and image jobs rendered in a child process (bot/hosts/render_child.py)
while they render on the CPU, so the render never holds the GIL the bot's event loop needs.

Measured before it: a CPU render in a worker thread of the bot slowed a 200-mention flood's p99 from
~245 ms to ~370 ms on two cores (BENCHMARKS.md); uvloop and a shorter GIL switch interval did not help. A
GPU render spends its time in kernels that release the GIL, so it stays in-process (`LocalBackend`) and
keeps its multi-GPU paths. `jobs.render_process` decides: auto = child without a CUDA GPU, inline with one.

The child is started (spawn, never a fork of the running loop) on the first operation and kept: its models
stay loaded across jobs. Each operation carries its kind's current config section, so a reload applies to
the next job and a changed model path rebuilds there as in-process. It runs one job at a time, at the idle
CPU priority, streams step progress back and stops at the next step when `should_stop()` turns true.
A child that dies (killed, out of memory) fails only the job it ran, with a plain message; the next
operation starts a fresh one. Stopping the bot stops it; so does the bot dying (the pipe ends).

In the child, at the idle CPU priority, a render computes on every core (`generators.cpu_share`: the
scheduler hands a core back to the bot at once), and `cpu_render_running()` stays false in
the bot's process: the chat-ahead pause was for a render sharing the bot's GIL, which no longer happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loguru import logger

from bot.hosts import child_environment
from bot.jobs.types import Job, JobKind, ShouldStop, StepCallback
from generators.base import GenerationCancelled, GeneratorError

CHILD_MODULE = "bot.hosts.render_child"  # what the child runs (`python -m`)
HOSTED = ("video", "image")  # the kinds the child can run (bot/hosts/render_child.py)
POLL_S = 0.1  # how often a waiting job looks at its stop flag and the child's life
QUIT_GRACE_S = 3.0  # a child still there this long after its pipe closed is killed
KILLED_EXIT_S = 60.0  # and this long for a killed one to exit (at idle priority it waits for a free core)
DIED = "生成用的进程意外退出了（可能是内存不够），这个任务没做成，可以再试一次。"
NOT_STARTED = "生成用的进程没能启动，这个任务没做成。"


def renders_in_child(mode: str, gpu_present: Callable[[], bool]) -> bool:
    """Whether local renders go to the child under `jobs.render_process` = `mode`."""
    if mode == "auto":
        return not gpu_present()
    return mode == "child"


@dataclass(frozen=True)
class ErrorReport:
    """A failed operation, as plain data: the kind of failure and what the parent needs to raise it again."""

    kind: str  # generator | storage_full | cancelled | crashed
    message: str
    admin_detail: str | None = None
    problem: str | None = None
    where: str | None = None  # storage_full: the folder that is full

    @classmethod
    def of(cls, exc: BaseException) -> ErrorReport:
        from generators.base import GenerationCancelled, GeneratorError
        from generators.storage import StorageFull, is_no_space

        if isinstance(exc, GenerationCancelled):
            return cls("cancelled", str(exc))
        if isinstance(exc, StorageFull):
            return cls("storage_full", exc.detail, where=exc.where)
        if isinstance(exc, GeneratorError):
            return cls("generator", str(exc), exc.admin_detail, exc.problem)
        if isinstance(exc, OSError) and is_no_space(exc):
            return cls("storage_full", str(exc), where=str(Path(exc.filename or ".").parent))
        return cls("crashed", f"{type(exc).__name__}: {exc}",
                   "".join(traceback.format_exception(exc)))

    def error(self) -> Exception:
        """The exception the parent raises, as the kind would have raised it in-process."""
        from generators.base import GenerationCancelled, GeneratorError
        from generators.storage import StorageFull

        if self.kind == "cancelled":
            return GenerationCancelled(self.message)
        if self.kind == "storage_full":
            return StorageFull(self.where or "?", self.message)
        if self.kind == "generator":
            return GeneratorError(self.message, admin_detail=self.admin_detail, problem=self.problem)
        return RuntimeError(f"the render process failed: {self.message}\n{self.admin_detail or ''}")


class ChildDied(GeneratorError):
    """The render process ended while an operation ran: that operation fails, the next starts a fresh one."""


@dataclass(eq=False)
class _Child:
    """One running child: its process, its end of the pipe, and what waits on it."""

    process: subprocess.Popen[bytes]
    conn: Connection
    waiting: dict[int, asyncio.Future[Any]] = field(default_factory=dict)  # op -> its outcome
    progress: dict[int, StepCallback] = field(default_factory=dict)
    outcomes: dict[int, tuple[str, Any]] = field(default_factory=dict)  # op -> said, before its "loaded"
    alive: bool = True
    ready: bool = False  # it said so: a death before that is a start that failed, not a crash


class RenderProcessBackend:
    """Runs the hosted kinds' local jobs in one child process while `render_process` resolves to child."""

    name = "render-process"
    slots = 1  # one child renders one job at a time (the machine has no GPU to share out)

    def __init__(self, kinds: Mapping[str, Any], mode: Callable[[], str],
                 gpu_present: Callable[[], bool]) -> None:
        self._kinds = kinds  # name -> the bot's own kind: its backend, its current section
        self._mode = mode
        self._gpu_present = gpu_present
        self._child: _Child | None = None
        self._ops = itertools.count(1)
        self._loaded: dict[str, tuple[bool, Any]] = {}  # kind -> (the child said loaded, built from)
        self._built_from: dict[int, tuple[str, Any]] = {}  # op -> (kind, what it was built from)
        self._starting = asyncio.Lock()
        self._retiring: asyncio.Task[None] | None = None  # stopping a child no longer used

    # -- WorkerBackend -----------------------------------------------------------------------------
    def hosts_renders(self) -> bool:
        return renders_in_child(self._mode(), self._gpu_present)

    def handles(self, kind: str) -> bool:
        if self._hosts(kind):
            return True
        self._retire_if_unused()
        return False

    def _hosts(self, kind: str) -> bool:
        hosted = self._kinds.get(kind) if kind in HOSTED else None
        return (hosted is not None and getattr(hosted, "backend", "local") == "local"
                and self.hosts_renders())

    def _retire_if_unused(self) -> None:
        """An idle child that hosts nothing any more (the config moved renders in-process or to an API)
        would hold its models' memory until a restart: stop it (a later switch back starts a new one)."""
        if self._idle_and_unused(self._child):
            with contextlib.suppress(RuntimeError):  # no running loop: the next call from the loop does it
                # kept: the loop holds only a weak reference to a task
                self._retiring = asyncio.get_running_loop().create_task(self._retire(),
                                                                         name="render-process-retire")

    def _idle_and_unused(self, child: _Child | None) -> bool:
        return (child is not None and child.alive and not child.waiting
                and not any(self._hosts(k) for k in self._kinds))

    async def _retire(self) -> None:
        async with self._starting:  # checked again: a job may have come for it in between
            child = self._child
            if child is None or not self._idle_and_unused(child):
                return
            self._child = None
        logger.info("jobs: render process {} stopped: local renders no longer run there", child.process.pid)
        self._buried(child, "stopped")
        await asyncio.to_thread(_end, child)

    def live_workers(self) -> int:
        return self.slots

    async def start(self) -> None:
        return None  # the child starts with its first operation (a warm-up, a preload or a job)

    async def stop(self) -> None:
        async with self._starting:  # a child being started is stopped too, not left behind
            child, self._child = self._child, None
        if child is not None:
            self._buried(child, "stopped")  # closes our end: the child leaves at its next step
            await asyncio.to_thread(_end, child)

    async def check(self, kind: JobKind, request: Any) -> None:
        # here, in a thread: it reads the tokenizer file, never torch (the child is not needed for it)
        await asyncio.to_thread(kind.check, request)

    async def execute(self, kind: JobKind, job: Job, output_stem: Path, on_progress: StepCallback,
                      should_stop: ShouldStop) -> Path:
        if should_stop():
            raise GenerationCancelled("stopped before it started")
        section = self._section(kind.name)
        result = await self._call(("job", kind.name, section, job.request.to_json(), str(output_stem)),
                                  kind.name, section, on_progress, should_stop)
        return Path(result)

    # -- warm-up and status ------------------------------------------------------------------------
    async def warm(self) -> float:
        """Import the heavy libraries in the child (starting it); returns the seconds they took."""
        return float(await self._call(("warm",), None, None))

    async def load(self, kind: str) -> None:
        """Load `kind`'s model in the child now (`load_at_start`)."""
        section = self._section(kind)
        await self._call(("load", kind, section), kind, section)

    def loaded(self, kind: str) -> bool | None:
        """Whether the child holds `kind`'s current model (as it last said); None while the kind does not
        render there (the bot's own generator tells then)."""
        if not self._hosts(kind):
            return None
        said, built_from = self._loaded.get(kind, (False, None))
        return said and built_from == self._kinds[kind].built_from(self._section(kind))

    def child_pid(self) -> int | None:
        child = self._child
        return child.process.pid if child is not None and child.alive else None

    # -- internals ---------------------------------------------------------------------------------
    def _section(self, kind: str) -> Any:
        return self._kinds[kind].section()

    async def _call(self, message: tuple[Any, ...], kind: str | None, section: Any,
                    on_progress: StepCallback | None = None, should_stop: ShouldStop | None = None) -> Any:
        """Send one operation and wait for its outcome, forwarding a stop; a dead child fails it."""
        child = await self._running_child()
        op = next(self._ops)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        child.waiting[op] = future
        if on_progress is not None:
            child.progress[op] = on_progress
        if kind is not None:
            self._built_from[op] = (kind, self._kinds[kind].built_from(section))
        stop_sent = False
        try:
            try:
                child.conn.send((message[0], op, *message[1:]))
            except OSError:  # it died since it was started or last used
                self._buried(child, "exited")
            while not future.done():
                await asyncio.wait({future}, timeout=POLL_S)
                if not stop_sent and should_stop is not None and should_stop() and child.alive:
                    stop_sent = True
                    with contextlib.suppress(OSError):
                        child.conn.send(("cancel", op))
                if not future.done() and child.process.poll() is not None:
                    self._read(child)  # what it sent before it ended, then the end of its pipe
                    self._buried(child, "exited")
            return future.result()
        except ChildDied:
            if should_stop is not None and should_stop():
                raise GenerationCancelled("the render process ended while the job stopped") from None
            raise
        finally:
            child.waiting.pop(op, None)
            child.progress.pop(op, None)  # `_built_from[op]` goes with the op's "loaded" report

    async def _running_child(self) -> _Child:
        async with self._starting:
            if self._child is None or not self._child.alive:
                self._child = _spawn()  # on the loop's thread: the child's life is bound to it (Linux)
                asyncio.get_running_loop().add_reader(self._child.conn.fileno(), self._read, self._child)
                logger.info("jobs: render process {} started", self._child.process.pid)
            return self._child

    def _read(self, child: _Child) -> None:
        """The pipe is readable: take every message the child sent (on the event loop; they are small)."""
        try:
            while child.alive and child.conn.poll():
                self._on_message(child, child.conn.recv())
        except (EOFError, OSError):
            self._buried(child, "exited")
        except Exception:  # noqa: BLE001 - a message we cannot read: that child is of no more use
            logger.exception("jobs: unreadable message from the render process {}", child.process.pid)
            child.process.kill()
            self._buried(child, "sent an unreadable message and was killed")

    def _on_message(self, child: _Child, message: tuple[Any, ...]) -> None:
        verb = message[0]
        if verb == "progress":
            callback = child.progress.get(message[1])
            if callback is not None:
                try:
                    callback(message[2], message[3])
                except Exception:  # noqa: BLE001 - a progress note that failed must not end the render
                    logger.exception("jobs: reporting a render's progress failed")
        elif verb == "log":
            logger.log(message[1], "render process {}: {}", child.process.pid, message[2])
        elif verb == "ready":
            child.ready = True
        elif verb == "holding":  # mid-operation: its model is in memory now
            self._note_loaded(message[2], *self._built_from.get(message[1], (None, None)))
        elif verb in ("done", "failed"):
            child.outcomes[message[1]] = (verb, message[2])
        elif verb == "loaded":  # the op's last message: what is loaded is known when its caller resumes
            self._note_loaded(message[2], *self._built_from.pop(message[1], (None, None)))
            _settle(child, message[1])

    def _note_loaded(self, said: Mapping[str, bool], kind: str | None, built_from: Any) -> None:
        for name, loaded in said.items():
            previous = self._loaded.get(name, (False, None))[1]
            self._loaded[name] = (loaded, built_from if name == kind else previous)

    def _buried(self, child: _Child, how: str) -> None:
        """The child is gone: stop reading it and fail whatever waited on it (once)."""
        if not child.alive:
            return
        child.alive = False
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(child.conn.fileno())
        with contextlib.suppress(OSError):
            child.conn.close()
        self._loaded.clear()
        self._built_from.clear()
        if how != "stopped":
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(0.05)  # its pipe closed as it exited: the exit code is there, or nearly
            code = child.process.returncode
            killed = code is not None and code < 0
            cause = f"killed by {signal.Signals(-code).name}" if killed else f"exit code {code}"
            logger.error("jobs: render process {} {} ({}); the next job starts a new one", child.process.pid,
                         how, cause)
            if not child.ready:
                said = NOT_STARTED
                detail = (f"the render process (pid {child.process.pid}) ended before it was ready: {cause}; "
                          "its error is in the log just above")
            else:
                said = DIED
                detail = f"the render process (pid {child.process.pid}) ended during a job: {cause}"
                if code == -signal.SIGKILL:
                    detail += ". A SIGKILL is often the kernel's out-of-memory killer: check `dmesg`."
        else:
            said, detail = DIED, "the render process was stopped"
        for op, future in child.waiting.items():
            _settle(child, op)  # an op it finished before it ended keeps its outcome
            if not future.done():
                future.set_exception(ChildDied(said, admin_detail=detail, problem="render process died"))


def _settle(child: _Child, op: int) -> None:
    """Resolve op's waiter with what the child said about it (done or failed), if it said so."""
    outcome, future = child.outcomes.pop(op, None), child.waiting.get(op)
    if outcome is None or future is None or future.done():
        return
    verb, value = outcome
    if verb == "done":
        future.set_result(value)
    else:
        future.set_exception(_raised(value))


def _raised(fields: dict[str, Any]) -> Exception:
    report = ErrorReport(**fields)
    error = report.error()
    if report.kind == "crashed":
        logger.error("jobs: the render process failed:\n{}", report.admin_detail)
    return error


def _spawn() -> _Child:
    """A fresh child: a new interpreter running `python -m bot.hosts.render_child` with its end of the pipe
    (never a fork of the running event loop, and unlike multiprocessing's spawn it never re-runs the
    bot's own main module). Starting it takes ~0.5 ms (vfork), so the loop's own thread does it: on Linux
    the kernel ends the child when the thread that started it ends (render_child `_leave_with`)."""
    from bot.logs import level_name

    ours, theirs = multiprocessing.Pipe()
    process = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, str(theirs.fileno()), level_name(),
                                str(os.getpid())],
                               pass_fds=[theirs.fileno()], env=child_environment(), stdin=subprocess.DEVNULL)
    theirs.close()  # only the child holds its end now: its death reads as the end of the pipe here
    return _Child(process, ours)


def _end(child: _Child) -> None:
    """Wait for the child to leave (its pipe is closed), then kill it and reap it. At the idle priority on
    cores other work keeps busy even a killed child waits for CPU to exit (seconds, under a full load); one
    still there after `KILLED_EXIT_S` is logged and left to the system."""
    for ending, within in ((None, QUIT_GRACE_S), (child.process.kill, KILLED_EXIT_S)):
        if ending is not None:  # it ignores SIGTERM (a group's stop is ours to order)
            with contextlib.suppress(ProcessLookupError):
                ending()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(within)
            return
    logger.warning("jobs: render process {} did not exit {:.0f} s after it was killed", child.process.pid,
                   KILLED_EXIT_S)
