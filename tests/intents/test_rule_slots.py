"""Slots read by rules when no LLM answers: the labelled slot sets and the places the old rules lost."""

from __future__ import annotations

import pytest

from bench.intent_eval import DATA_DIR, SLOT_SETS, evaluate_slots, format_slots, load_slot_samples
from intents.slots import rule_slots as rule_slots_from_slots
from nlu.rule_slots import rule_slots

SLOT_ACCURACY_LINE = 0.95


@pytest.mark.parametrize("name", SLOT_SETS)
def test_slot_sets_hold_the_line(name):
    samples = load_slot_samples(DATA_DIR / name)
    result = evaluate_slots(samples)
    print("\n" + format_slots(result, name))
    assert result.accuracy >= SLOT_ACCURACY_LINE, format_slots(result, name)


def test_slot_set_is_big_and_covers_every_kind():
    samples = [s for name in SLOT_SETS for s in load_slot_samples(DATA_DIR / name)]
    assert len(samples) >= 60
    kinds = {kind: sum(s.kind == kind for s in samples) for kind in ("weather", "route", "places")}
    assert min(kinds.values()) >= 12, kinds


@pytest.mark.parametrize(("text", "place", "day"), [
    ("北京现在多少度", "北京", "现在"),
    ("北京几度", "北京", ""),
    ("北京冷吗", "北京", ""),
    ("上海明天多少度", "上海", "明天"),
    ("周末杭州多少度", "杭州", "周末"),
    ("重庆明天热吗", "重庆", "明天"),
    ("聽日香港落唔落雨", "香港", "明天"),
    ("明儿个咱这儿下不下雨啊", "", "明天"),
])
def test_the_city_is_found_wherever_it_stands(text, place, day):
    assert rule_slots("weather", text) == {"place": place, "day": day}


def test_a_retracted_request_does_not_leak_into_the_slots():
    assert rule_slots("weather", "别画了，查一下明天苏州的天气") == {"place": "苏州", "day": "明天"}
    route = rule_slots("route", "算了不开车了，骑车从家到公园要多久")
    assert route == {"origin": "家", "destination": "公园"}


def test_slots_module_still_offers_rule_slots():
    assert rule_slots_from_slots is rule_slots
