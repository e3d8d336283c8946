"""Reaching the wired parts of a built app in tests, through what the app really holds (its services
and its dispatcher), so the product's Application keeps no fields only tests read."""

from __future__ import annotations

from typing import Any


def service(app: Any, name: str) -> Any:
    """The service started under `name` ("scheduler", "alerts", "config watch", ...)."""
    return dict(app.services)[name]


def notices_of(app: Any) -> Any:
    """The AdminNotices the dispatcher tells the admins through."""
    return app.dispatcher.notify_admins.__self__
