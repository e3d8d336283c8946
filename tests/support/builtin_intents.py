"""The built-in intents by name, for tests: `Intent.WEATHER` is the registered spec named "weather",
`list(Intent)` all of them (the fallback last). Product code never names an intent like this; it reads
the registry (bot/plugin.py)."""

from __future__ import annotations

from collections.abc import Iterator

from bot.plugin import IntentRegistry, IntentSpec, load_intents

BUILTIN: IntentRegistry = load_intents()


class _ByName(type):
    def __getattr__(cls, name: str) -> IntentSpec:
        spec = BUILTIN.get(name.lower())
        if spec is None:
            raise AttributeError(name)
        return spec

    def __getitem__(cls, name: str) -> IntentSpec:
        return BUILTIN[name.lower()]

    def __iter__(cls) -> Iterator[IntentSpec]:
        return iter(BUILTIN)

    def __len__(cls) -> int:
        return len(BUILTIN)


class Intent(metaclass=_ByName):
    """`Intent.WEATHER`, `Intent["walk"]`, `for intent in Intent`."""
