"""Typed configuration: one pydantic section per concern, loaded from config.yaml.

Secrets never live here; they come from the environment (see `Secrets`). A bad file is reported with
the exact key path, the line in the file and the reason, so an admin's typo never takes the bot down
silently. `video:` and `image:` nest the generators' own settings (generators/settings.py); the first
release's flat keys are still read (bot/config/legacy.py).
"""

from bot.config import sections
from bot.config.app import AppConfig
from bot.config.jobs import JobsConfig
from bot.config.loading import ConfigError, last_good_path, load, load_resilient, parse, remember_good
from bot.config.media import ImageConfig, QueueSettings, VideoConfig
from bot.config.operations import AlertsConfig, ScheduleEntry, SchedulesConfig, SmtpConfig
from bot.config.secret_store import Secrets
from bot.config.sections import *  # noqa: F403 - the sections, listed in sections.__all__

__all__ = [
    "AlertsConfig", "AppConfig", "ConfigError", "ImageConfig", "JobsConfig", "QueueSettings",
    "ScheduleEntry",
    "SchedulesConfig", "Secrets", "SmtpConfig", "VideoConfig", "last_good_path", "load", "load_resilient",
    "parse", "remember_good", *sections.__all__,
]
