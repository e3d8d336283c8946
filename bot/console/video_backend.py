"""Where videos are made, and why: `video.backend: auto` resolved (bot.jobs.video_choice), with today's
spend when a hosted API makes them. One line of the status checks (console, `#状态`, `xiaoai doctor`),
and the config the weights and GPU lines judge, so no line claims what the chosen backend does not do."""

from __future__ import annotations

from typing import Any

from bot.config import AppConfig, Secrets
from bot.console.check import Check

WHERE = {"local": ("本机", "this machine"), "remote": ("视频服务主机", "the serve-video host")}


def resolved(config: AppConfig, secrets: Secrets) -> AppConfig:
    """`config` with `video.backend: auto` replaced by what it picks now."""
    if config.video.backend != "auto":
        return config
    from bot.jobs.video_choice import choose

    backend = choose(config.video, secrets.video_api_keys()).backend
    return config.model_copy(update={"video": config.video.model_copy(update={"backend": backend})})


def video_check(config: AppConfig, secrets: Secrets, jobs: Any = None) -> Check:
    """Blocking when `jobs` is given (today's spend is read from SQLite)."""
    from bot.jobs.video_choice import choose
    from generators.video_api import provider_for

    name = ("视频", "videos")
    if jobs is not None and jobs.backend_for("video").name == "celery":
        return Check("video_backend", True, name, ("GPU 工作进程（jobs.backend: celery）",
                                                   "the GPU workers (jobs.backend: celery)"))
    choice = choose(config.video, secrets.video_api_keys())
    if choice.backend == "api":
        label = provider_for(choice.provider or "zhipu").label
        zh = f"云端 {label}（{choice.reason_zh}）"
        en = f"{config.video.backend} -> {choice.text}: {choice.reason}"
        if jobs is not None:
            spent, budget = jobs.spent_today("video"), config.video.api.daily_budget_yuan
            zh += f"；今天花了 {spent:.2f} 元"
            zh += f" / 预算 {budget:g} 元" if budget is not None else "（不限预算）"
            en += f"; spent today {spent:.2f} yuan" + (f" of {budget:g}" if budget is not None else "")
        return Check("video_backend", True, name, (zh, en))
    where = WHERE.get(choice.backend, (choice.backend, choice.backend))
    return Check("video_backend", True, name, (f"{where[0]}（{choice.reason_zh}）",
                                               f"{config.video.backend} -> {choice.text}: {choice.reason}"))
