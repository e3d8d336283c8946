"""One bot per data_dir.

Two processes on one data_dir re-queue and render each other's jobs into the same files and knock each
other off the gateway, so a start takes an exclusive `flock` on `<data_dir>/xiaoai.lock` and keeps it
for the life of the process (the kernel drops it on any exit, SIGKILL included: no stale lock to clean
up). The file holds the holder's pid, so the refused second start can say who has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "xiaoai.lock"


class DataDirInUse(Exception):
    """Another process holds the data_dir's lock; `pid` is the holder's (None when unreadable)."""

    def __init__(self, data_dir: Path, lock_path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"another xiaoai ({holder}) is already running on data_dir {data_dir} (lock {lock_path}). "
            "Stop it first, or give this one its own data_dir.")
        self.data_dir = data_dir
        self.lock_path = lock_path
        self.pid = pid


class InstanceLock:
    """The held lock; `release` (or process exit) lets the next start in."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip() or "x")
    return None


def acquire(data_dir: Path) -> InstanceLock:
    """Lock `data_dir` for this process (creating the folder), or raise DataDirInUse at once."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DataDirInUse(data_dir.resolve(), path.resolve(), pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return InstanceLock(path, fd)
