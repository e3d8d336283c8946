"""Processes that run jobs away from the bot: the serve-video HTTP host, the Celery GPU worker, the group
worker and rank group that split one video over several GPUs, and the render process the bot starts
itself.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # where `bot` is imported from, for a child too


def child_environment() -> dict[str, str]:
    """The environment of a child process the bot starts (the render process): no key, token or password
    (it works from files and needs none, nor must it ever print one), and `bot` importable from where the
    bot imports it."""
    from bot.logs import SECRET_NAME

    env = {name: value for name, value in os.environ.items() if not SECRET_NAME.search(name)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
