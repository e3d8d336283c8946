"""A rank group driven from stdin, for the rank group's lifecycle tests (idle gaps, SIGTERM).

    python -m tests.support.rank_driver COMPUTE_TIMEOUT_S
Prints `ready PID,PID` once the group is up; then each stdin line is a JSON job {"value": x} that all
ranks run together (an all_reduce of value x (rank + 1) on the compute group), answered with
{"sum": ...}; SIGTERM stops the group (`stopped`) and the process exits 0."""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
from typing import Any

from bot.hosts.rank_group import RankGroup


def _reduce(ranks: Any, value: float) -> float:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value * (ranks.rank + 1)])
    dist.all_reduce(tensor, group=ranks.group)
    return float(tensor.item())


def echo_follower(ranks: Any) -> Any:
    def handle(job: Any) -> None:
        _reduce(ranks, float(job["value"]))

    return handle


def _on_term(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_term)
    group = RankGroup(2, False, echo_follower, compute_timeout_s=float(sys.argv[1]))
    try:
        ranks = group.start()
        pids = [proc.pid for proc in multiprocessing.active_children()]  # the follower ranks
        print("ready " + ",".join(map(str, pids)), flush=True)
        for line in sys.stdin:
            job = json.loads(line)
            group.submit(job)
            print(json.dumps({"sum": _reduce(ranks, float(job["value"]))}), flush=True)
    finally:
        group.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
