"""Where generated pictures and videos are rendered: on this machine (`local`, the default: no Redis
needed) or on Celery GPU workers that share a Redis broker with the bot (`celery`); and, on this
machine, whether a render runs in a child process (`render_process`) so it never shares the bot's GIL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.sections import Section


class JobsConfig(Section):
    backend: Literal["local", "celery"] = "local"
    # local renders: auto = in a child process on the CPU, in the bot's process on a CUDA GPU
    render_process: Literal["auto", "child", "inline"] = "auto"
    # env XIAOAI_BROKER_URL overrides this (put the password there, not in the file)
    broker_url: str = "redis://127.0.0.1:6379/0"
    max_in_flight: int = Field(default=2, ge=1)  # jobs handed to the workers at once: their GPU count
    max_result_mb: float = Field(default=40.0, gt=0)  # MP4/JPEG size a worker may send back
    visibility_timeout_s: float = Field(default=7200.0, ge=60)  # longer than the longest job
    heartbeat_s: float = Field(default=1.0, gt=0, le=30)  # workers refresh their liveness this often
    worker_lost_s: float = Field(default=6.0, gt=0)  # no heartbeat this long: the worker is gone
