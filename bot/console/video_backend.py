"""The status line that says where videos are made and why (`video.backend: auto` resolved): shown by
`xiaoai doctor` and the console's status page."""

from __future__ import annotations

from bot.config import AppConfig, Secrets
from bot.console.checks import Check


def video_backend_check(config: AppConfig, secrets: Secrets) -> Check:
    from bot.jobs.video_choice import choose

    choice = choose(config.video, secrets.video_api_keys())
    return Check("video backend", True, f"{config.video.backend} -> {choice.text}: {choice.reason}")
