"""The running configuration: one current `AppConfig`, swapped atomically by hot reload.

Collaborators get the getter (`live_config` is callable), never a copy, so each message reads the config
that is current when it arrives. Listeners (the scheduler, the LLM client) rebuild what depends on it.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from bot.config import AppConfig

Listener = Callable[[AppConfig, AppConfig], None]  # (old, new)
Overlay = Callable[[AppConfig], AppConfig]


class LiveConfig:
    """`current` is the config in force; calling the object returns it too (a getter to hand out)."""

    def __init__(self, config: AppConfig) -> None:
        self.current = config
        self._listeners: list[Listener] = []
        self._overlays: list[Overlay] = []

    def __call__(self) -> AppConfig:
        return self.current

    def subscribe(self, listener: Listener) -> None:
        """Called with (old, new) after every swap, in registration order."""
        self._listeners.append(listener)

    def overlay(self, overlay: Overlay) -> None:
        """Applied to every config before it is swapped in (the playground keeps its demo models)."""
        self._overlays.append(overlay)

    def apply(self, config: AppConfig) -> AppConfig:
        """Swap in a validated config; returns what is now current."""
        for overlay in self._overlays:
            config = overlay(config)
        old, self.current = self.current, config
        for listener in self._listeners:
            try:
                listener(old, config)
            except Exception:  # noqa: BLE001 - one listener's bug must not block the others or the swap
                logger.exception("config listener {} failed", listener)
        return config
