"""`xiaoai eval-intents`: accuracy, a confusion table and latency of a classifier on a labelled set,
plus the two no-LLM measurements beside it: two-turn follow-ups and rule-based slots.

An intent set is a TSV file with a header `label<TAB>text`; labels are the Chinese intent labels (天气 ...
其它). Each message is classified on its own (no chat history), the way a fresh @-mention would be.

Follow-ups (follow_ups.tsv): `label, previous_label, previous_text, text, slots`. The previous turn is
remembered the way the dispatcher would (`PreviousTurn.from_request`); the message is resolved against it,
and classified on its own when it is no follow-up. Slots (slots*.tsv): `kind, text, slots`, read by
`rule_slots`. Expected slots are `key=value;key=value` (value may be empty). Beside them, what answering
chat ahead of the LLM classifier (bot/pipeline/ahead.py, wording only) would start: the share of chat
messages answered early, and the share of requests that would make a chat call only to cancel it.

The labelled sets live in the checkout's tests/data (not packaged): an installed copy measures one set
given with `--data`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import AppConfig, Secrets
from bot.plugin import IntentRegistry, IntentSpec, load_intents
from nlu.follow_ups import GENERATION_KINDS, SLOT_KINDS, PreviousTurn, resolve_follow_up, subject_of
from nlu.rule_slots import rule_slots

DATA_DIR = Path(__file__).resolve().parents[1] / "tests" / "data"  # present only in a checkout
DEFAULT_DATA = DATA_DIR / "intents.tsv"
# what `eval-intents` measures with no --data: each labelled set, the follow-ups, the slot sets
INTENT_SETS = ("intents.tsv", "intents_family.tsv", "intents_family_heldout.tsv",
               "intents_family_heldout2.tsv", "intents_family_heldout3.tsv", "intents_family_heldout4.tsv",
               "intents_family_heldout5.tsv", "intents_photo.tsv")
FOLLOW_UPS = ("follow_ups.tsv", "follow_ups_heldout.tsv")
SLOT_SETS = ("slots.tsv", "slots_heldout.tsv")

TextClassifier = Callable[[str], Awaitable[IntentSpec]]


@dataclass(frozen=True)
class Sample:
    intent: IntentSpec
    text: str


@dataclass
class EvalResult:
    samples: list[Sample]
    predicted: list[IntentSpec]
    seconds: list[float]  # wall time per message
    mistakes: list[tuple[Sample, IntentSpec]] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # embedded only: CPU time per message

    @property
    def accuracy(self) -> float:
        right = sum(s.intent is p for s, p in zip(self.samples, self.predicted, strict=True))
        return right / len(self.samples) if self.samples else 0.0

    def confusion(self) -> Counter[tuple[IntentSpec, IntentSpec]]:
        return Counter((s.intent, p) for s, p in zip(self.samples, self.predicted, strict=True))


def load_samples(path: Path, intents: IntentRegistry) -> list[Sample]:
    """Read `label<TAB>text` lines (first line is the header); a bad label names its line."""
    by_label = {intent.label: intent for intent in intents}
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if number == 1 or not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if not sep or label.strip() not in by_label or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<label>\\t<text>' with a label in {list(by_label)}")
        samples.append(Sample(by_label[label.strip()], text.strip()))
    return samples


async def evaluate(classify: TextClassifier, samples: list[Sample],
                   cpu_seconds: list[float] | None = None) -> EvalResult:
    """Classify every sample in turn; `cpu_seconds`, if given, is filled by the classifier per call."""
    result = EvalResult(samples, [], [], cpu_seconds=cpu_seconds if cpu_seconds is not None else [])
    for sample in samples:
        started = time.perf_counter()
        predicted = await classify(sample.text)
        result.seconds.append(time.perf_counter() - started)
        result.predicted.append(predicted)
        if predicted is not sample.intent:
            result.mistakes.append((sample, predicted))
    return result


def format_report(result: EvalResult, name: str, registry: IntentRegistry) -> str:
    intents = list(registry)
    confusion = result.confusion()
    width = 6
    lines = [f"classifier: {name}   messages: {len(result.samples)}   "
             f"accuracy: {result.accuracy:.1%} ({len(result.samples) - len(result.mistakes)}"
             f"/{len(result.samples)})"]
    if result.seconds:
        ms = sorted(s * 1000 for s in result.seconds)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        lines.append(f"latency per message (wall): mean {statistics.fmean(ms):.1f} ms, median "
                     f"{statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms")
    if result.cpu_seconds:
        cpu = sorted(s * 1000 for s in result.cpu_seconds)
        lines.append(f"CPU time per message (one core): mean {statistics.fmean(cpu):.1f} ms, median "
                     f"{statistics.median(cpu):.1f} ms, max {cpu[-1]:.1f} ms  "
                     f"(wall above includes waiting for a busy core; load average {_load()})")
    lines.append("")
    lines.append("confusion (rows: true label, columns: predicted)")
    first = 10  # the row label column: the longest label is four CJK characters
    header = "".ljust(first) + "".join(_pad(i.label[:2], width) for i in intents) + _pad("召回", width)
    lines.append(header)
    for truth in intents:
        row_total = sum(confusion[(truth, p)] for p in intents)
        if not row_total:
            continue
        cells = "".join(_pad(str(confusion[(truth, p)] or "."), width) for p in intents)
        recall = confusion[(truth, truth)] / row_total
        lines.append(_pad(truth.label, first) + cells + _pad(f"{recall:.0%}", width))
    if result.mistakes:
        lines.append("")
        lines.append("mistakes:")
        lines.extend(f"  {s.intent.label} -> {p.label}: {s.text}" for s, p in result.mistakes)
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _pad(text: str, width: int) -> str:
    """Left-justify counting CJK characters as two columns, so the table lines up in a terminal."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(1, width - shown)


def make_classifier(kind: str, config: AppConfig, secrets: Secrets, intents: IntentRegistry
                    ) -> tuple[TextClassifier, Callable[[], Awaitable[None]]]:
    """A text -> intent function for `kind` ('embedded' or 'llm'), plus a cleanup coroutine function (in
    the same event loop: the LLM client's connections belong to the loop that opened them)."""
    if kind == "embedded":
        from nlu.embedded import EmbeddedClassifier

        embedded = EmbeddedClassifier(intents, config=config.offline.classifier)
        embedded.load()  # not timed: loading happens once at bot start
        cpu: list[float] = []

        async def by_embedding(text: str) -> IntentSpec:
            prediction = await asyncio.to_thread(embedded.predict, text)
            cpu.append(prediction.cpu_seconds)
            return prediction.intent

        by_embedding.cpu_seconds = cpu  # type: ignore[attr-defined] - read by run()
        return by_embedding, _nothing_to_close
    if kind == "llm":
        return _llm_text_classifier(config, secrets, intents)
    raise ValueError(f"unknown classifier {kind!r}: use embedded or llm")


def _llm_text_classifier(config: AppConfig, secrets: Secrets, intents: IntentRegistry
                         ) -> tuple[TextClassifier, Callable[[], Awaitable[None]]]:
    from bot.llm import LLM
    from nlu.classify import classify_text

    llm = LLM(config.llm, secrets)
    if not llm.configured:
        raise SystemExit("no LLM configured: set OPENAI_API_KEY and/or OPENAI_BASE_URL (or llm.base_url)")

    async def by_llm(text: str) -> IntentSpec:
        return await classify_text(llm, intents, text, "妈妈", "（没有更早的消息）",
                                   timeout_s=config.llm.classify_timeout_s)

    return by_llm, llm.close


async def _nothing_to_close() -> None:
    return None


def run(kind: str, data: Path | None, config: AppConfig, secrets: Secrets) -> EvalResult:
    """One labelled set (`data`), or with None every set in tests/data, the follow-ups and the slots."""
    return asyncio.run(_run(kind, data, config, secrets))


async def _run(kind: str, data: Path | None, config: AppConfig, secrets: Secrets) -> EvalResult:
    intents = load_intents(config.plugins.dirs)
    classify, close = make_classifier(kind, config, secrets, intents)
    cpu = getattr(classify, "cpu_seconds", None)
    try:
        if data is not None:
            result = await evaluate(classify, load_samples(data, intents), cpu)
            print(format_report(result, kind, intents))
            return result
        return await _run_all(classify, kind, cpu, intents)
    finally:
        await close()


async def _run_all(classify: TextClassifier, kind: str, cpu: list[float] | None, intents: IntentRegistry
             ) -> EvalResult:
    if not DATA_DIR.is_dir():
        raise SystemExit(f"no labelled sets at {DATA_DIR} (they ship with the source checkout): "
                         "pass --data PATH, a TSV of label<TAB>text")
    everything = EvalResult([], [], [], cpu_seconds=cpu if cpu is not None else [])
    summary = []
    for name in INTENT_SETS:
        result = await evaluate(classify, load_samples(DATA_DIR / name, intents))
        print(f"== {name}\n{format_report(result, kind, intents)}\n")
        summary.append(f"{name}: {result.accuracy:.1%} ({len(result.samples) - len(result.mistakes)}"
                       f"/{len(result.samples)})")
        everything.samples.extend(result.samples)
        everything.predicted.extend(result.predicted)
        everything.seconds.extend(result.seconds)
        everything.mistakes.extend(result.mistakes)
    for name in FOLLOW_UPS:
        conversations = load_follow_ups(DATA_DIR / name, intents)
        follow_ups, follow_up_slots = await evaluate_follow_ups(classify, conversations, intents)
        print(f"== {name} (previous turn → message)\n{format_report(follow_ups, kind, intents)}")
        print(format_slots(follow_up_slots, "slots used by the follow-up answers") + "\n")
        right = len(follow_ups.samples) - len(follow_ups.mistakes)
        slots_right = follow_up_slots.total - len(follow_up_slots.mistakes)
        summary.append(f"{name}: {follow_ups.accuracy:.1%} ({right}/{len(follow_ups.samples)}); "
                       f"their slots {follow_up_slots.accuracy:.1%} ({slots_right}/{follow_up_slots.total})")
    print("== slots read by rules (no LLM)")
    for name in SLOT_SETS:
        slots = evaluate_slots(load_slot_samples(DATA_DIR / name))
        print(format_slots(slots, name))
        summary.append(f"{name}: {slots.accuracy:.1%} ({slots.total - len(slots.mistakes)}/{slots.total})")
    print(f"\n== all labelled sets together\n{format_report(everything, kind, intents)}")
    summary.append(format_ahead(everything.samples, intents))
    if kind == "embedded":
        from nlu.embedded import engine_threads

        summary.append(f"embedding engine threads: {engine_threads()}, CPU cores: {os.cpu_count()}, "
                       f"load average: {_load()}")
    print("\n== summary\n" + "\n".join(summary))
    return everything


def format_ahead(samples: list[Sample], intents: IntentRegistry) -> str:
    """Chat answered ahead of the classifier, for these samples: how much chat, and how many requests'
    chat calls would be wasted."""
    from bot.pipeline.ahead import AnswerAhead

    ahead, chat = AnswerAhead(intents), intents.fallback
    chats = [s for s in samples if s.intent is chat]
    requests = [s for s in samples if s.intent is not chat]
    early = sum(ahead.likely_chat(s.text) for s in chats)
    wasted = sum(ahead.likely_chat(s.text) for s in requests)
    return (f"chat answered ahead of the classifier: {early}/{len(chats)} chat messages "
            f"({early / max(1, len(chats)):.0%}); a cancelled chat call for {wasted}/{len(requests)} "
            f"requests ({wasted / max(1, len(requests)):.0%})")


# --- follow-ups and rule slots ---------------------------------------------------------


@dataclass(frozen=True)
class FollowUpSample:
    intent: IntentSpec
    previous: IntentSpec
    previous_text: str
    text: str
    slots: dict[str, str]


@dataclass(frozen=True)
class SlotSample:
    kind: str
    text: str
    slots: dict[str, str]


@dataclass
class SlotResult:
    total: int = 0
    mistakes: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return (self.total - len(self.mistakes)) / self.total if self.total else 0.0


def _rows(path: Path, columns: int) -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if number == 1 or not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) < columns - 1:
            raise ValueError(f"{path}:{number}: expected {columns} tab-separated columns")
        rows.append((number, [c.strip() for c in cells] + [""] * (columns - len(cells))))
    return rows


def parse_slots(text: str) -> dict[str, str]:
    pairs = [p.partition("=") for p in text.split(";") if p.strip()]
    return {key.strip(): value.strip() for key, _, value in pairs}


def load_follow_ups(path: Path, intents: IntentRegistry) -> list[FollowUpSample]:
    by_label = {intent.label: intent for intent in intents}
    samples = []
    for number, (label, previous, previous_text, text, slots) in _rows(path, 5):
        if label not in by_label or previous not in by_label or not text or not previous_text:
            raise ValueError(f"{path}:{number}: expected label, previous label, previous text, text, slots")
        samples.append(FollowUpSample(by_label[label], by_label[previous], previous_text, text,
                                      parse_slots(slots)))
    return samples


def load_slot_samples(path: Path) -> list[SlotSample]:
    samples = []
    for number, (kind, text, slots) in _rows(path, 3):
        if kind not in ("weather", "route", "places") or not text:
            raise ValueError(f"{path}:{number}: expected kind (weather/route/places), text, slots")
        samples.append(SlotSample(kind, text, parse_slots(slots)))
    return samples


def answer_slots(intent: IntentSpec, text: str) -> dict[str, str]:
    """What a no-LLM answer to a message on its own would use: rule slots, or the picture's subject."""
    if intent.follow_up in SLOT_KINDS:
        return rule_slots(intent.follow_up, text)
    if intent.follow_up in GENERATION_KINDS:
        return {"subject": subject_of(text)}
    return {}


async def evaluate_follow_ups(classify: TextClassifier, samples: list[FollowUpSample], intents: IntentRegistry
                              ) -> tuple[EvalResult, SlotResult]:
    """Intent per follow-up (resolved, else classified alone), and whether its answer used the right slots."""
    result = EvalResult([Sample(s.intent, s.text) for s in samples], [], [])
    slot_result = SlotResult()
    for sample in samples:
        previous = PreviousTurn.from_request(sample.previous, sample.previous_text)
        follow_up = resolve_follow_up(sample.text, previous, intents)
        if follow_up is not None:
            predicted, slots = follow_up.intent, {**follow_up.slots, "subject": follow_up.subject}
        else:
            predicted = await classify(sample.text)
            slots = answer_slots(predicted, sample.text)
        result.predicted.append(predicted)
        if predicted is not sample.intent:
            shown = Sample(sample.intent, f"{sample.previous_text} → {sample.text}")
            result.mistakes.append((shown, predicted))
        if sample.slots:
            slot_result.total += 1
            if predicted is not sample.intent or any(slots.get(k, "") != v for k, v in sample.slots.items()):
                slot_result.mistakes.append((f"{sample.previous_text} → {sample.text}", sample.slots, slots))
    return result, slot_result


def evaluate_slots(samples: list[SlotSample]) -> SlotResult:
    result = SlotResult(total=len(samples))
    for sample in samples:
        got = rule_slots(sample.kind, sample.text)
        if any(got.get(k, "") != v for k, v in sample.slots.items()):
            result.mistakes.append((sample.text, sample.slots, got))
    return result


def format_slots(result: SlotResult, name: str) -> str:
    lines = [f"{name}: {result.accuracy:.1%} ({result.total - len(result.mistakes)}/{result.total})"]
    lines.extend(f"  {text}: expected {want}, got {got}" for text, want, got in result.mistakes)
    return "\n".join(lines)
