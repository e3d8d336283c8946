"""How long until a job is done, from measured runs only: the mean of the last runs of jobs like each one
(same kind and profile, kept in the job store), what is left of the running ones, shared by the live
workers. A job nobody measured yet gives no number: a guess would be a promise the bot cannot keep."""

from __future__ import annotations

import math

from bot.jobs.store import JobStore
from bot.jobs.types import Job, JobState


def expected_s(store: JobStore, job: Job) -> float | None:
    """The mean of the last measured runs of jobs like `job`; None before the first one. SQLite: a thread."""
    durations = store.recent_durations(job.request.kind, job.profile)
    return sum(durations) / len(durations) if durations else None


def eta_s(store: JobStore, own: Job, ahead: list[Job], workers: int, now: float) -> float | None:
    """Seconds until `own` is done after the jobs `ahead` of it, or None while any of them was never
    measured. A running job counts with what is left of it (at least a tenth). SQLite: a thread."""
    total = expected_s(store, own)
    if total is None:
        return None
    for job in ahead:
        estimate = expected_s(store, job)
        if estimate is None:
            return None
        if job.state is JobState.RUNNING and job.started_at:
            total += max(estimate - (now - job.started_at), estimate * 0.1)
        else:
            total += estimate
    return math.ceil(total / max(1, workers))
