"""The status line that says where videos are made and why (`video.backend: auto` resolved), and what
a hosted API cost today: shown by `xiaoai doctor` and the console's status page."""

from __future__ import annotations

from typing import Any

from bot.config import AppConfig, Secrets
from bot.console.checks import Check


def video_backend_check(config: AppConfig, secrets: Secrets, jobs: Any = None) -> Check:
    """Blocking when `jobs` is given (today's spend is read from SQLite)."""
    from bot.jobs.video_choice import choose

    choice = choose(config.video, secrets.video_api_keys())
    detail = f"{config.video.backend} -> {choice.text}: {choice.reason}"
    if choice.backend == "api" and jobs is not None:
        budget = config.video.api.daily_budget_yuan
        limit = f" of the {budget:g} yuan daily budget" if budget is not None else " (no daily budget)"
        detail += f"; spent today {jobs.spent_today('video'):.2f} yuan{limit}"
    return Check("video backend", True, detail)
