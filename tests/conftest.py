"""Shared fixtures: the real Node Wechaty peer, the fake OpenAI-compatible server, and a running bot.

`running_bot` starts the real Application with the real WechatyChannel against the peer, so every
end-to-end test crosses the same gRPC boundary the product does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_amap import TEST_KEY, FakeAmap
from tests.support.fake_images import FakeImages
from tests.support.fake_llm import FakeLLM

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture(scope="module")
def amap_server() -> Iterator[FakeAmap]:
    with FakeAmap() as server:
        yield server


@pytest.fixture
def amap(amap_server: FakeAmap, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAmap]:
    """The module's fake AMap server, reset, with AMAP_KEY set to the key it accepts."""
    monkeypatch.setenv("AMAP_KEY", TEST_KEY)
    amap_server.reset()
    yield amap_server
    amap_server.reset()


@pytest.fixture(scope="module")
def images_server() -> Iterator[FakeImages]:
    with FakeImages() as server:
        yield server


@pytest.fixture
def images(images_server: FakeImages) -> Iterator[FakeImages]:
    """The module's fake OpenAI images server, reset to answer b64_json."""
    images_server.reset()
    yield images_server


@pytest.fixture
def peer() -> Iterator[Any]:
    from tests.support.peer import NodePeer

    node = NodePeer()
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_config_data(data_dir: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Config for tests: fast timeouts and reconnects, data under a temp folder."""
    base: dict[str, Any] = {
        "data_dir": str(data_dir),
        "llm": {"model": "fake-model", "timeout_s": 3, "classify_timeout_s": 2, "retries": 0},
        "wechaty": {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "health_interval_s": 0.5},
        # renders in the test's own process, where a test can replace the generator and torch is already
        # imported; the render process has its own tests (tests/bot/test_render_process.py)
        "jobs": {"render_process": "inline"},
    }
    return deep_merge(base, overrides or {})


async def wait_until(predicate: Callable[[], bool], within: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
def running_bot(peer: Any, fake_llm: FakeLLM, tmp_path: Path):
    """Factory: `async with running_bot(overrides, env=..., connect=True) as app:`."""
    from bot.channels.wechaty.channel import WechatyChannel
    from bot.config import AppConfig, Secrets
    from bot.runtime.app import build_app

    @contextlib.asynccontextmanager
    async def start(overrides: dict[str, Any] | None = None, *, env: dict[str, str] | None = None,
                    connect: bool = True, data_dir: Path | None = None,
                    config_path: Path | None = None) -> AsyncIterator[Any]:
        config = AppConfig.model_validate(test_config_data(data_dir or tmp_path / "data", overrides))
        environment = {
            "OPENAI_BASE_URL": fake_llm.base_url,
            "OPENAI_API_KEY": "test-key",
            "WECHATY_PUPPET_SERVICE_ENDPOINT": peer.endpoint,
            "WECHATY_PUPPET_SERVICE_TOKEN": peer.token,
        }
        environment.update(env or {})
        secrets = Secrets.from_env({k: v for k, v in environment.items() if v is not None})
        channel = WechatyChannel(secrets.puppet_endpoint or "", secrets.puppet_token, config.wechaty)
        app = build_app(config, secrets, channel, config_path=config_path)
        task = asyncio.create_task(app.run())
        try:
            if connect:
                await wait_until(lambda: channel.connected or task.done(), within=20)
                if task.done():
                    task.result()
            yield app
        finally:
            app.stop()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)

    return start
