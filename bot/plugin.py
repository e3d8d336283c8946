"""Intents as plugins: each intent is declared once, as an `IntentSpec`, and every other part reads the
registry built from those declarations — the LLM classifier's label list, the embedded classifier's
example phrases and request cues, config validation and `check-config`, follow-ups, the console's intent
switches and `#帮助`.

A plugin is a Python module with a module-level `INTENT` (one `IntentSpec`) or `INTENTS` (several):

    from bot.messages import Reply
    from bot.plugin import IntentSpec

    async def tell_joke(ctx) -> Reply:  # ctx: bot.pipeline.context.Context
        return Reply("从前有座山……")

    INTENT = IntentSpec(name="joke", label="讲笑话", handler=tell_joke,
                        describe="想听笑话、段子、脑筋急转弯",
                        examples=("讲个笑话", "来个段子", "说个笑话听听"),
                        cues=("笑话|段子",))  # request wording: never answered ahead as chat

Where plugins come from (`load_intents`), in this order: the built-in modules of `intents/`, every `*.py`
file in the folders named by the config's `plugins.dirs`, and the entry points of the group
`xiaoai.intents` (each names a module or a spec). Which code is loaded is decided on the machine only;
the console switches intents on or off per room, never adds a plugin. A plugin that fails to import or
declares a bad spec is skipped with a log line and listed in `IntentRegistry.failures` (the admins are
told); it never stops the bot. A plugin may not take a built-in's name or label.

Nothing here imports the rest of the bot, so config validation can ask for the known names.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from loguru import logger

ENTRY_POINT_GROUP = "xiaoai.intents"
BUILTIN_PACKAGE = "intents"
FOLLOW_UP_KINDS = ("weather", "route", "places", "picture", "clip")
"""What kind of follow-up an intent's answers can take without an LLM (nlu/follow_ups.py): "那上海呢"
after a forecast, "那开车呢" after a route, "那三里屯呢" after places, "换成视频吧" between a picture and
a clip (a video)."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")

Handler = Callable[[Any], Awaitable[Any]]
"""`async def handle(ctx: Context) -> Reply | None`; None means "already answered" (or silence)."""


@dataclass(eq=False, repr=False)  # one object per intent, compared by identity
class IntentSpec:
    """Everything the bot knows about one intent, written in one place."""

    name: str  # config key (a room's `intents:`), log name: lower-case ASCII, e.g. "weather"
    label: str  # what the LLM answers and users read, e.g. "天气"
    handler: Handler
    describe: str  # one line for the classifier prompt: what such a message asks for
    examples: tuple[str, ...] = ()  # phrases that teach the embedded classifier (built-ins: prompts/)
    # request wording, as regular expressions (built-ins: prompts/intent_examples.yaml `cues`): a message
    # they match is never answered ahead as chat, and the embedded classifier gives the intent a bonus
    cues: tuple[str, ...] = ()
    follow_up: str | None = None  # one of FOLLOW_UP_KINDS, or None
    settings: type | None = None  # the plugin's own settings model (pydantic), if it has one
    fallback: bool = False  # the one intent for everything else (chat)
    # its handler sends, stores and changes nothing before it returns (a prompt, an LLM call, a Reply): the
    # dispatcher may start it before the classifier has decided, and cancel it (bot/pipeline/ahead.py)
    answer_ahead: bool = False

    def __repr__(self) -> str:
        return f"IntentSpec({self.name!r})"

    def check(self) -> None:
        """Reject a bad declaration when it is loaded, not when the first message arrives."""
        if not _NAME.match(self.name):
            raise ValueError(f"intent name {self.name!r}: use 2-31 lower-case letters, digits or _")
        if not self.label.strip() or not self.describe.strip():
            raise ValueError(f"intent {self.name}: label and describe must not be empty")
        if not callable(self.handler):
            raise ValueError(f"intent {self.name}: handler is not callable")
        if self.follow_up is not None and self.follow_up not in FOLLOW_UP_KINDS:
            raise ValueError(f"intent {self.name}: follow_up {self.follow_up!r} is not one of "
                             f"{FOLLOW_UP_KINDS}")
        for cue in self.cues:
            try:
                re.compile(cue)
            except re.error as exc:
                raise ValueError(f"intent {self.name}: cue {cue!r} is not a regular expression: {exc}"
                                 ) from exc


@dataclass(frozen=True)
class PluginFailure:
    source: str  # the module, file or entry point
    reason: str


@dataclass(eq=False)
class IntentRegistry:
    """The intents this bot serves, in declaration order, the fallback last."""

    specs: tuple[IntentSpec, ...]  # read on every message: a plain tuple, the fallback last
    failures: tuple[PluginFailure, ...] = ()
    fallback: IntentSpec = field(init=False)  # chat: what a message no other intent fits is
    _by_name: dict[str, IntentSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        fallbacks = [s for s in self.specs if s.fallback]
        if len(fallbacks) != 1:
            raise ValueError(f"exactly one fallback intent is needed, found {len(fallbacks)}")
        self.specs = tuple(s for s in self.specs if not s.fallback) + tuple(fallbacks)
        self.fallback = fallbacks[0]
        self._by_name = {s.name: s for s in self.specs}

    def __iter__(self) -> Iterator[IntentSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, name: str) -> IntentSpec:
        return self._by_name[name]

    def get(self, name: str) -> IntentSpec | None:
        return self._by_name.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def by_label(self, label: str) -> IntentSpec | None:
        return next((s for s in self.specs if s.label == label), None)

    def with_follow_up(self, kind: str) -> tuple[IntentSpec, ...]:
        return tuple(s for s in self.specs if s.follow_up == kind)


def specs_of(module: ModuleType) -> tuple[IntentSpec, ...]:
    """The specs a plugin module declares (`INTENT` or `INTENTS`); none for a helper module."""
    found = getattr(module, "INTENTS", None) or ((module.INTENT,) if hasattr(module, "INTENT") else ())
    return tuple(found)


def _plugin_file_module(path: Path) -> ModuleType:
    """Import one plugin file under a private module name (its folder need not be a package)."""
    name = f"xiaoai_plugin_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _sources(dirs: Iterable[str | Path]) -> Iterator[tuple[str, Callable[[], tuple[IntentSpec, ...]]]]:
    """(where, how to load it) for every plugin, built-ins first."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module_name = f"{BUILTIN_PACKAGE}.{info.name}"
        yield module_name, lambda m=module_name: specs_of(importlib.import_module(m))
    for folder in dirs:
        files = sorted(Path(folder).expanduser().glob("*.py"))
        if not Path(folder).expanduser().is_dir():
            yield str(folder), lambda f=folder: _missing_folder(f)
        for path in files:
            if not path.name.startswith("_"):
                yield str(path), lambda p=path: specs_of(_plugin_file_module(p))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        yield f"entry point {point.name}", lambda p=point: _entry_point_specs(p.load())


def _missing_folder(folder: str | Path) -> tuple[IntentSpec, ...]:
    raise FileNotFoundError(f"plugins.dirs: no folder {folder}")


def _entry_point_specs(loaded: object) -> tuple[IntentSpec, ...]:
    if isinstance(loaded, IntentSpec):
        return (loaded,)
    if isinstance(loaded, ModuleType):
        return specs_of(loaded)
    raise TypeError(f"expected a module or an IntentSpec, got {type(loaded).__name__}")


def load_intents(dirs: Iterable[str | Path] = ()) -> IntentRegistry:
    """Every intent this machine has: built-ins, the plugin folders, the entry points. A broken plugin
    is skipped (logged, and kept in `failures`); a built-in that fails is a bug and raises."""
    specs: list[IntentSpec] = []
    failures: list[PluginFailure] = []
    for source, load in _sources(dirs):
        builtin = source.startswith(f"{BUILTIN_PACKAGE}.")
        try:
            found = load()
            for spec in found:
                spec.check()
                _check_unique(spec, specs)
        except Exception as exc:  # noqa: BLE001 - a user's plugin may fail in any way; the bot serves on
            if builtin:
                raise
            logger.opt(exception=exc).error("plugin {} skipped: {}: {}", source, type(exc).__name__, exc)
            failures.append(PluginFailure(source, f"{type(exc).__name__}: {exc}"))
            continue
        specs.extend(found)
        if found and not builtin:
            logger.info("plugin {}: intents {}", source, ", ".join(s.name for s in found))
    return IntentRegistry(tuple(specs), tuple(failures))


def _check_unique(spec: IntentSpec, known: list[IntentSpec]) -> None:
    for other in known:
        if spec.name == other.name or spec.label == other.label:
            raise ValueError(f"intent {spec.name} ({spec.label}) clashes with intent {other.name} "
                             f"({other.label}) loaded before it")


@cache
def known_intent_names(dirs: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a room's `intents:` may list with these plugin folders (config validation)."""
    return frozenset(load_intents(dirs).names)
