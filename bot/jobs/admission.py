"""Who may queue what, and in which order jobs start: pure functions, no I/O.

* `limits_for` turns a kind's config section and the chat's quotas into `Limits` (admins are exempt
  from the daily quotas, not from the pending limit).
* `refusal` is the one place the admission rules and their wording live; the store calls it inside
  the transaction that writes the job, so counting and accepting are one step and nothing is refunded.
* The day is the calendar day in `schedules.timezone`: `day_start` gives its first second.
* `pick_next` / `run_order`: the fairness policy (short jobs first, bounded).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from bot.jobs.types import Job, Limits

DEFAULT_TIMEZONE = "Asia/Shanghai"  # schedules.timezone's default

PENDING_REPLY = "你已经有 {pending} 个任务在排队了，等它们做好再来吧～（每人最多同时 {limit} 个）"
USER_DAILY_REPLY = "你今天的{label}额度（{limit} 个）用完啦，明天再来吧～"
GROUP_DAILY_REPLY = "本群今天的{label}额度（{limit} 个）用完啦，明天再来吧～"
NOT_OFFERED_REPLY = "这里暂时不提供{label}生成哦～"
BUDGET_REPLY = "今天做{label}的预算用完啦，明天再来吧"


def limits_for(section: Any, chat_quotas: Any, kind: str, *, is_admin: bool) -> Limits:
    """The admission rules for one asker: the pending limit and ETA guess from the kind's queue settings
    (`max_pending_per_user`, `seconds_per_job`), the daily quotas from the chat's quotas (room overrides
    already applied: `user_{kind}s_per_day`, `group_{kind}s_per_day`) unless the asker is an admin."""
    if not hasattr(chat_quotas, f"user_{kind}s_per_day"):
        raise ValueError(f"no daily quota for job kind {kind!r}")
    pending = Limits(max_pending_per_user=section.max_pending_per_user,
                     seconds_per_job=section.seconds_per_job)
    if is_admin:
        return pending
    return replace(pending, daily_quota_per_user=getattr(chat_quotas, f"user_{kind}s_per_day"),
                   daily_quota_per_chat=getattr(chat_quotas, f"group_{kind}s_per_day"))


def day_start(now: float, timezone: str) -> tuple[float, str]:
    """(the timestamp of today's midnight, today's date) in `timezone`."""
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp(), local.date().isoformat()


@dataclass(frozen=True)
class Counts:
    """What the store counted for one submission (today = since `day_start`, failed/cancelled excluded)."""

    pending: int  # this asker's accepted/queued/running jobs of the kind
    asker_today: int  # this asker's jobs of the kind in this chat today
    room_today: int | None  # the room's jobs of the kind today; None in a private chat
    spent_yuan: float = 0.0  # the kind's money today: paid, plus the price of jobs still pending


def refusal(limits: Limits, counts: Counts, label: str) -> str | None:
    """None when the job may be accepted, else the reply that says which limit was reached."""
    if limits.max_pending_per_user is not None and counts.pending >= limits.max_pending_per_user:
        return PENDING_REPLY.format(pending=counts.pending, limit=limits.max_pending_per_user)
    checks = [(limits.daily_quota_per_user, counts.asker_today, USER_DAILY_REPLY)]
    if counts.room_today is not None:
        checks.append((limits.daily_quota_per_chat, counts.room_today, GROUP_DAILY_REPLY))
    for limit, used, reply in checks:
        if limit == 0:
            return NOT_OFFERED_REPLY.format(label=label)
        if limit is not None and used >= limit:
            return reply.format(label=label, limit=limit)
    budget = limits.daily_budget_yuan
    if budget is not None and limits.cost_yuan > 0 and counts.spent_yuan + limits.cost_yuan > budget + 1e-9:
        return BUDGET_REPLY.format(label=label)
    return None


MAX_OVERTAKES = 4
"""Fairness: at most this many jobs in a row may start ahead of the oldest waiting job."""


def pick_next(waiting: list[Job], priority: Mapping[str, int], overtakes: int = 0,
              max_overtakes: int = MAX_OVERTAKES) -> tuple[Job, int]:
    """(the job to start next, the new overtake count) — short jobs first, bounded.

    The oldest job of the highest-priority kind goes first (a picture takes seconds, a video minutes, so
    pictures don't wait behind a queue of videos); but once `max_overtakes` jobs in a row went ahead
    of the oldest waiting job, that one goes next, so a video is never starved by a stream of pictures.
    Within one kind the order stays first come, first served."""
    by_age = sorted(waiting, key=lambda j: j.id)
    oldest = by_age[0]
    best = min(by_age, key=lambda j: (-priority.get(j.request.kind, 0), j.id))
    if best.id == oldest.id or overtakes >= max_overtakes:
        return oldest, 0
    return best, overtakes + 1


def run_order(waiting: list[Job], priority: Mapping[str, int], overtakes: int = 0,
              max_overtakes: int = MAX_OVERTAKES) -> list[Job]:
    """The order `pick_next` will start `waiting` in, if nothing else arrives (positions, ETAs)."""
    left, order = list(waiting), []
    while left:
        job, overtakes = pick_next(left, priority, overtakes, max_overtakes)
        order.append(job)
        left = [j for j in left if j.id != job.id]
    return order
