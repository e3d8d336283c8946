"""The eight intents plus chat, and the registry that maps each to its handler module.

Member name = module name = prompt file stem = config section; the value is the label users and the
LLM see. The registry is checked for completeness at import time.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import import_module

from intents.base import Handler


class Intent(StrEnum):
    WEATHER = "天气"
    WALK = "步行规划"
    CYCLE = "骑行规划"
    DRIVE = "驾车规划"
    TRANSIT = "公交规划"
    PLACES = "地点推荐"
    IMAGE = "图片生成"
    VIDEO = "视频生成"
    CHAT = "其它"

    module: str  # the handler module, prompt file and config section: "weather"


for _intent in Intent:
    _intent.module = _intent.name.lower()  # a plain attribute: read on every message


ROUTE_INTENTS = frozenset({Intent.WALK, Intent.CYCLE, Intent.DRIVE, Intent.TRANSIT})

REGISTRY: dict[Intent, Handler] = {
    intent: import_module(f"intents.{intent.module}").handle for intent in Intent
}
assert set(REGISTRY) == set(Intent), "every intent needs a handler"
