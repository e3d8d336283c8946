"""Tiny random CogVideoX folders (2B-like and 5B-like), built once per session, and loaded generators."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import VideoConfig
from generators.cogvideox import CogVideoXGenerator
from tests.support.tiny_models import build_cogvideox_folder

TINY_SIZE = {"height": 64, "width": 96}


@pytest.fixture(scope="session")
def tiny_cogvideox_2b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cogvideox_folder(tmp_path_factory.mktemp("models") / "CogVideoX-2b", "2b")


@pytest.fixture(scope="session")
def tiny_cogvideox_5b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cogvideox_folder(tmp_path_factory.mktemp("models") / "CogVideoX-5b", "5b")


@pytest.fixture(scope="session")
def generator_2b(tiny_cogvideox_2b: Path) -> CogVideoXGenerator:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_cogvideox_2b}, sampling=TINY_SIZE))
    generator.load()
    return generator


@pytest.fixture(scope="session")
def generator_5b(tiny_cogvideox_5b: Path) -> CogVideoXGenerator:
    generator = CogVideoXGenerator(VideoConfig(model={"path": tiny_cogvideox_5b}, sampling=TINY_SIZE))
    generator.load()
    return generator
