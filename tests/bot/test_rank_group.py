"""The rank group of `xiaoai worker --gpus`: real processes in a real gloo group. Ranks idle far past
the compute group's timeout still take the next job (they wait on the control group), and SIGTERM to
rank 0 or to another rank stops them all cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPUTE_TIMEOUT_S = 1.0


class Driver:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "tests.support.rank_driver", str(COMPUTE_TIMEOUT_S)]
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # blocks until the group is up (or the driver died)
        assert line.startswith("ready "), f"driver did not start: {line!r}"
        self.followers = [int(pid) for pid in line.split()[1].split(",")]

    def job(self, value: float) -> float:
        self.proc.stdin.write(json.dumps({"value": value}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["sum"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.followers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is gone for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def driver() -> Iterator[Driver]:
    made = Driver()
    yield made
    made.close()


def test_idle_ranks_outlive_the_compute_timeout_and_stop_on_sigterm(driver: Driver) -> None:
    assert driver.job(1.0) == 3.0  # 1 x 1 on rank 0 + 1 x 2 on rank 1
    time.sleep(COMPUTE_TIMEOUT_S * 3)  # a wait inside the compute group would have timed out by now
    assert driver.job(2.0) == 6.0
    driver.proc.send_signal(signal.SIGTERM)
    assert driver.proc.wait(90) == 0
    assert driver.proc.stdout.read().strip().endswith("stopped")
    assert wait_gone(driver.followers), "a follower rank outlived rank 0"


def test_sigterm_to_another_rank_stops_the_whole_group(driver: Driver) -> None:
    assert driver.job(1.0) == 3.0
    os.kill(driver.followers[0], signal.SIGTERM)
    assert driver.proc.wait(90) == 0  # passed on to rank 0, which stops everyone
    assert wait_gone(driver.followers)


def test_followers_leave_when_rank_zero_is_killed(driver: Driver) -> None:
    assert driver.job(1.0) == 3.0
    driver.proc.kill()
    driver.proc.wait(10)
    assert wait_gone(driver.followers, timeout=15), "a follower rank stayed behind a dead rank 0"
