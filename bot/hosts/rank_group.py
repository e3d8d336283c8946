"""The processes of one multi-GPU worker (`xiaoai worker --gpus 0,1`), rendering one video together.

Rank 0 is the worker process itself: it takes jobs from the queue. It spawns ranks 1..N-1 (fresh
interpreters, the `spawn` start method) and all of them meet over loopback (MASTER_ADDR / MASTER_PORT,
as torchrun would set them) in two process groups:

* control, the default group: gloo with a timeout of days. Rank 0 hands each job to the others here,
  and between jobs the others wait here; a wait in NCCL would die on its 10-minute timeout.
* compute: NCCL on GPUs (gloo on CPU) with the usual timeout: the exchanges inside one render.

Protocol on the control group: rank 0 broadcasts one message, a length (int64) then that many bytes of
UTF-8 JSON (never pickle): `{"op": "job", "job": {...}}` or `{"op": "stop"}`. The other ranks run the
job with their handler at the same time as rank 0 runs it, and wait for the next message.

Stopping: rank 0 sends "stop" and joins the others (`stop`). A rank that gets SIGTERM passes it on to
rank 0, which finishes the current job and stops everyone. A rank cannot go on without the others: if a
follower dies, rank 0's watchdog ends the worker (its job goes back to the queue, as after a crash);
if rank 0 dies, the followers see their parent change and exit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from loguru import logger

from generators.base import GenerationCancelled, GeneratorError

CONTROL_TIMEOUT = timedelta(days=30)  # an idle worker waits between jobs for at most this long
COMPUTE_TIMEOUT_S = 600.0  # one exchange inside a render
JOIN_S = 30.0  # how long `stop` waits for the others to leave before it kills them
WATCH_S = 0.5

JobHandler = Callable[[Mapping[str, Any]], None]
Follower = Callable[[Any], JobHandler]  # RankContext -> the handler of each job (picklable: module level)


@dataclass(frozen=True)
class GroupSpec:
    """What every rank needs to join (picklable, passed to the spawned ranks)."""

    world_size: int
    port: int
    cuda: bool  # NCCL on cuda:RANK, else gloo on the CPU
    compute_timeout_s: float = COMPUTE_TIMEOUT_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_ranks(target: Callable[..., None], world: int, args: tuple[Any, ...], timeout_s: float,
              join_s: float = 30) -> list[Any]:
    """Run `target(rank, world, port, *args, results)` in `world` spawned processes on one loopback port and
    collect one result from each (what each put on `results`); processes still alive after are killed."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_port()
    procs = [context.Process(target=target, args=(rank, world, port, *args, results))
             for rank in range(world)]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=timeout_s) for _ in procs]
    finally:
        for proc in procs:
            proc.join(join_s)
            if proc.is_alive():
                proc.kill()
                proc.join()


def join_groups(spec: GroupSpec, rank: int) -> tuple[Any, Any]:
    """Join both groups as `rank`: (the compute RankContext, the control group)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(spec.port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(spec.world_size)})
    import torch
    import torch.distributed as dist

    from generators.parallel import RankContext

    device = "cpu"
    if spec.cuda:
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=spec.world_size,
                            timeout=CONTROL_TIMEOUT)
    compute = dist.new_group(backend="nccl" if spec.cuda else "gloo",
                             timeout=timedelta(seconds=spec.compute_timeout_s))
    return RankContext(rank, spec.world_size, device, compute), dist.group.WORLD


def send(message: Mapping[str, Any]) -> None:
    """Rank 0: one JSON message to every rank over the control group."""
    import torch
    import torch.distributed as dist

    data = json.dumps(message, ensure_ascii=False).encode()
    dist.broadcast(torch.tensor([len(data)], dtype=torch.int64), src=0)
    dist.broadcast(torch.frombuffer(bytearray(data), dtype=torch.uint8), src=0)


def receive() -> dict[str, Any]:
    """The other ranks: wait (up to CONTROL_TIMEOUT) for rank 0's next message."""
    import torch
    import torch.distributed as dist

    size = torch.zeros(1, dtype=torch.int64)
    dist.broadcast(size, src=0)
    data = torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(data, src=0)
    return json.loads(bytes(data.numpy()).decode())


def _watch_parent(leader_pid: int) -> None:
    while True:
        if os.getppid() != leader_pid:
            logger.error("rank group: rank 0 (pid {}) is gone; leaving", leader_pid)
            os._exit(1)
        time.sleep(WATCH_S)


def _relay_sigterm(rank: int, leader_pid: int) -> None:
    """Pass SIGTERM on to rank 0, which decides when the group stops (after the current job). Waited
    for in this thread: the main thread sits inside a gloo wait, where a Python handler never runs."""
    forwarded = False
    while True:
        signal.sigwait({signal.SIGTERM})
        if forwarded:
            continue
        forwarded = True
        logger.info("rank {}: SIGTERM, passing it to rank 0", rank)
        try:
            os.kill(leader_pid, signal.SIGTERM)
        except ProcessLookupError:
            os._exit(0)


def follower_main(spec: GroupSpec, rank: int, make_handler: Follower, leader_pid: int) -> None:
    """A spawned rank: join, then run each job rank 0 sends until it says stop."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # every later thread too: the relay takes it
    threading.Thread(target=_relay_sigterm, args=(rank, leader_pid), name="sigterm-relay",
                     daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches rank 0 too; it stops the group
    threading.Thread(target=_watch_parent, args=(leader_pid,), name="leader-watch", daemon=True).start()
    ranks, _control = join_groups(spec, rank)
    handler = make_handler(ranks)
    logger.info("rank {}/{} ready on {}", rank, spec.world_size, ranks.device)
    import torch.distributed as dist

    while True:
        message = receive()
        if message.get("op") == "stop":
            break
        try:
            handler(message.get("job") or {})
        except (GenerationCancelled, GeneratorError) as exc:  # rank 0 reached the same verdict
            logger.info("rank {}: job ended: {}", rank, exc)
        except Exception:  # noqa: BLE001 - the group cannot go on without this rank
            logger.exception("rank {}: job crashed; the rank group stops", rank)
            os._exit(1)
    dist.destroy_process_group()
    logger.info("rank {}: stopped", rank)


class RankGroup:
    """Rank 0's side: spawn the other ranks, hand them jobs, stop them."""

    def __init__(self, world_size: int, cuda: bool, follower: Follower,
                 compute_timeout_s: float = COMPUTE_TIMEOUT_S) -> None:
        if world_size < 2:
            raise ValueError("a rank group needs at least two ranks")
        self.spec = GroupSpec(world_size, free_port(), cuda=cuda, compute_timeout_s=compute_timeout_s)
        self._follower = follower
        self._procs: list[Any] = []
        self._stopping = threading.Event()
        self.ranks: Any = None

    def start(self) -> Any:
        """Spawn ranks 1..N-1 and join the groups as rank 0; returns this rank's RankContext."""
        context = multiprocessing.get_context("spawn")
        for rank in range(1, self.spec.world_size):
            proc = context.Process(target=follower_main, name=f"rank{rank}", daemon=True,
                                   args=(self.spec, rank, self._follower, os.getpid()))
            proc.start()
            self._procs.append(proc)
        self.ranks, _control = join_groups(self.spec, 0)
        threading.Thread(target=self._watch, name="rank-watch", daemon=True).start()
        logger.info("rank group of {} ready ({})", self.spec.world_size, "NCCL" if self.spec.cuda else "gloo")
        return self.ranks

    def submit(self, job: Mapping[str, Any]) -> None:
        """Hand `job` to the other ranks; the caller then runs its own share (rank 0's)."""
        send({"op": "job", "job": dict(job)})

    def stop(self) -> None:
        """Tell the others to leave, wait for them (kill after JOIN_S), leave the groups."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        import torch.distributed as dist

        alive = all(proc.is_alive() for proc in self._procs)
        if alive and dist.is_initialized():
            try:
                send({"op": "stop"})
            except Exception as exc:  # noqa: BLE001 - a rank already gone: kill the rest below
                logger.warning("rank group: could not send stop: {}", exc)
        deadline = time.monotonic() + JOIN_S
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                logger.warning("rank group: {} did not stop; killing it", proc.name)
                proc.kill()
                proc.join(5)
        if dist.is_initialized():
            dist.destroy_process_group()
        logger.info("rank group stopped")

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_S):
            dead = [proc for proc in self._procs if not proc.is_alive()]
            if dead and not self._stopping.is_set():
                logger.error("rank group: {} exited (code {}); stopping this worker, its job goes back "
                             "to the queue", dead[0].name, dead[0].exitcode)
                for proc in self._procs:
                    if proc.is_alive():
                        proc.kill()
                os._exit(1)
