"""The two no-LLM measurements beside intent accuracy: two-turn follow-ups and rule-based slots.

Follow-ups (tests/data/follow_ups.tsv): `label, previous_label, previous_text, text, slots`. The previous
turn is remembered the way the dispatcher would (`PreviousTurn.from_request`); the message is resolved
against it, and classified on its own when it is no follow-up. Slots (tests/data/slots*.tsv):
`kind, text, slots`, read by `rule_slots`. Expected slots are `key=value;key=value` (value may be empty).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.eval_intents import EvalResult, Sample
from intents import Intent
from intents.follow_ups import SLOT_KINDS, PreviousTurn, resolve_follow_up, subject_of
from intents.rule_slots import rule_slots

TextClassifier = Callable[[str], Awaitable[Intent]]
_BY_LABEL = {intent.value: intent for intent in Intent}


@dataclass(frozen=True)
class FollowUpSample:
    intent: Intent
    previous: Intent
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


def load_follow_ups(path: Path) -> list[FollowUpSample]:
    samples = []
    for number, (label, previous, previous_text, text, slots) in _rows(path, 5):
        if label not in _BY_LABEL or previous not in _BY_LABEL or not text or not previous_text:
            raise ValueError(f"{path}:{number}: expected label, previous label, previous text, text, slots")
        samples.append(FollowUpSample(_BY_LABEL[label], _BY_LABEL[previous], previous_text, text,
                                      parse_slots(slots)))
    return samples


def load_slot_samples(path: Path) -> list[SlotSample]:
    samples = []
    for number, (kind, text, slots) in _rows(path, 3):
        if kind not in ("weather", "route", "places") or not text:
            raise ValueError(f"{path}:{number}: expected kind (weather/route/places), text, slots")
        samples.append(SlotSample(kind, text, parse_slots(slots)))
    return samples


def answer_slots(intent: Intent, text: str) -> dict[str, str]:
    """What a no-LLM answer to a message on its own would use: rule slots, or the picture's subject."""
    if intent in SLOT_KINDS:
        return rule_slots(SLOT_KINDS[intent], text)
    if intent in (Intent.IMAGE, Intent.VIDEO):
        return {"subject": subject_of(text)}
    return {}


async def evaluate_follow_ups(classify: TextClassifier, samples: list[FollowUpSample]
                              ) -> tuple[EvalResult, SlotResult]:
    """Intent per follow-up (resolved, else classified alone), and whether its answer used the right slots."""
    result = EvalResult([Sample(s.intent, s.text) for s in samples], [], [])
    slot_result = SlotResult()
    for sample in samples:
        previous = PreviousTurn.from_request(sample.previous, sample.previous_text)
        follow_up = resolve_follow_up(sample.text, previous)
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
