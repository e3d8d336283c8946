"""The status line that says where videos are made and why (`video.backend: auto` resolved), and what
a hosted API cost today: shown by `xiaoai doctor` and the console's status page."""

from __future__ import annotations

from typing import Any

from bot.config import AppConfig, Secrets
from bot.console.checks import Check, gpu_check


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


def gpu_or_api_check(config: AppConfig, secrets: Secrets) -> Check:
    """The GPU line, which without a GPU is no problem when a hosted API makes the videos."""
    from bot.jobs.video_choice import choose, cuda_gpu_present

    choice = choose(config.video, secrets.video_api_keys())
    if choice.backend != "api" or cuda_gpu_present():
        return gpu_check(config)
    pictures = "" if config.image.backend == "api" else "; pictures render on the CPU (slow)"
    return Check("GPU", True, f"none here; videos are made by the hosted API ({choice.provider}){pictures}")
