"""When a Celery GPU worker counts as lost: the bot has seen no heartbeat from it for `worker_lost_s`.

The bot remembers, per worker name, when it first heard of the worker (a heartbeat, or a job's
progress naming it) and when the worker last beat (a heartbeat key's remaining TTL says how long ago
the worker wrote it). The decision reads the worker's key again at that moment, so a worker newer than
the last snapshot of all heartbeats is never lost for being new, and one whose first heartbeat is slow
gets `worker_lost_s` from the moment the bot first heard of it.

A heartbeat missing only because Redis restarted empty (or was out of reach) is not a loss either:
for `worker_lost_s` after Redis is back every worker gets the time to beat again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.jobs.broker import WORKER_KEY

FORGET_AFTER_S = 3600.0  # a worker not heard of for this long is dropped from memory


@dataclass
class Sighting:
    first_heard: float  # bot clock (monotonic)
    last_beat: float | None = None  # when the worker last wrote its heartbeat, on the bot's clock
    last_heard: float = 0.0


def _age_s(info: Mapping[str, Any], pttl_ms: int) -> float:
    """How long ago a heartbeat was written: its TTL when written minus what is left of it (0 when the
    worker does not say which TTL it set: an older worker)."""
    ttl_s = info.get("ttl_s")
    if not isinstance(ttl_s, int | float) or pttl_ms < 0:
        return 0.0
    return max(0.0, float(ttl_s) - pttl_ms / 1000)


def read_heartbeats(client: Any, names: list[str] | None = None) -> dict[str, tuple[dict[str, Any], float]]:
    """The heartbeats present now (all, or those of `names`): name -> (its JSON, its age in seconds)."""
    if names is None:
        keys = sorted(client.scan_iter(match=WORKER_KEY + "*", count=100))
    else:
        keys = [WORKER_KEY + name for name in names]
    if not keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.pttl(key)
    replies = pipe.execute()
    found: dict[str, tuple[dict[str, Any], float]] = {}
    for raw, pttl in zip(replies[::2], replies[1::2], strict=True):
        if not raw:
            continue
        try:
            info = json.loads(raw)
        except ValueError:
            continue
        if isinstance(info, dict) and info.get("name"):
            found[str(info["name"])] = (info, _age_s(info, int(pttl)))
    return found


class WorkerLiveness:
    """First and last sightings per worker, and since when Redis has kept heartbeats (thread-safe)."""

    def __init__(self, lost_s: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self._lost_s = lost_s
        self._clock = clock
        self._seen: dict[str, Sighting] = {}
        self._lock = threading.Lock()
        self.heartbeats_since = clock()  # Redis has kept heartbeats (up, reachable) since then

    def saw(self, heartbeats: Mapping[str, tuple[Mapping[str, Any], float]], read_at: float) -> None:
        """Record heartbeats read at `read_at` (bot clock, taken before the read: ages err long)."""
        with self._lock:
            for name, (_info, age) in heartbeats.items():
                self._beat(name, read_at - age, read_at)
            stale = [n for n, s in self._seen.items() if read_at - s.last_heard > FORGET_AFTER_S]
            for name in stale:
                del self._seen[name]

    def _beat(self, name: str, at: float, now: float) -> None:
        sighting = self._seen.setdefault(name, Sighting(first_heard=now))
        sighting.last_beat = at if sighting.last_beat is None else max(sighting.last_beat, at)
        sighting.last_heard = now

    def redis_gap(self) -> None:
        """Redis was out of reach or restarted empty just now: no worker could beat meanwhile."""
        self.heartbeats_since = self._clock()

    def redis_up_for(self, uptime_s: float) -> None:
        """Redis has been up this long (a restart we did not see empties the heartbeats too)."""
        self.heartbeats_since = max(self.heartbeats_since, self._clock() - uptime_s)

    def is_lost(self, name: str, age_s: float | None, read_at: float) -> bool:
        """Whether `name` is lost, given its heartbeat's age read at `read_at` (None: no key now)."""
        if not name:
            return False  # progress without a worker name (an old worker): never a loss
        with self._lock:
            if age_s is not None:
                self._beat(name, read_at - age_s, read_at)
            sighting = self._seen.setdefault(name, Sighting(first_heard=read_at))
            sighting.last_heard = max(sighting.last_heard, read_at)
            heard = sighting.last_beat if sighting.last_beat is not None else sighting.first_heard
            silent_since = max(heard, self.heartbeats_since)
        return self._clock() - silent_since > self._lost_s()
