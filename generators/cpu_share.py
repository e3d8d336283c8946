"""A render on the CPU shares the machine with the bot's event loop (the same process; on a small machine
the same cores). In the bot's own process (`jobs.render_process: inline`) torch computes on one core fewer
than there are while it runs, so that replies keep a core instead of queueing behind the render's threads.
GPU renders never come here: their threads stay as they are.

By default a CPU render runs in the render process (bot/hosts/render_child.py), which lowered itself to the
idle CPU priority (`lower_priority`): there the scheduler hands a core to the bot's replies the moment they
want one, so the render computes on all cores (`render_threads`). The bot's own process then counts no
render, so `cpu_render_running()` is false there: the render no longer shares the event loop's GIL, which
is what that pause was for.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_computing = 0  # CPU renders in progress in this process
_lowered = False  # this process put itself at the idle priority (the render process does)


def cpu_render_running() -> bool:
    """True while a render computes on this process's CPU: the event loop then shares the GIL with it, and
    work that only pays off on an idle loop (answering chat ahead of the classifier) waits."""
    return _computing > 0


NICE = 10  # where SCHED_IDLE is missing: CFS gives a nice-0 thread ~9x the CPU of a nice-10 one


def lower_priority() -> None:
    """Make this process (and the threads it starts later, torch's among them) yield every core to normal
    tasks. Nice 10 alone left a flood's p99 at ~340 ms during a render on two cores, SCHED_IDLE at ~200 ms,
    no more than at rest (BENCHMARKS.md); when nothing else wants the cores the render runs as fast as
    before."""
    global _lowered
    with contextlib.suppress(OSError):
        os.nice(NICE)
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            _lowered = True


def at_idle_priority() -> bool:
    """True in a process that `lower_priority` put at SCHED_IDLE (Linux); not in a bot an admin started
    under `chrt -i`, whose event loop still needs its core."""
    return _lowered


def render_threads(cpus: int | None = None) -> int:
    """torch's intra-op threads for a CPU render: every core but one, which stays with the event loop;
    every core in the render process at the idle priority, where the scheduler gives a core back at once."""
    cores = cpus or os.cpu_count() or 1
    return cores if at_idle_priority() else max(1, cores - 1)


@contextlib.contextmanager
def cpu_render_share() -> Iterator[None]:
    """Fewer torch threads for this thread's work while the block runs, as many as before after it.

    OpenMP keeps the count per thread: threads already computing keep theirs, and one that starts torch
    work while the block runs takes the lower count (in the bot only renders and model loads use torch)."""
    global _computing
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, render_threads()))
    with _lock:
        _computing += 1
    try:
        yield
    finally:
        with _lock:
            _computing -= 1
        torch.set_num_threads(threads)
