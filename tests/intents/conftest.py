"""Fixtures the intent tests share: a ChatDriver wired to the fake AMap server, and the real LLM client
against the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import LLMConfig, Secrets
from bot.llm import LLM
from tests.support.chat_driver import ChatDriver
from tests.support.fake_amap import FakeAmap
from tests.support.fake_llm import FakeLLM


@pytest.fixture
async def driver(fake_llm: FakeLLM, amap: FakeAmap, tmp_path) -> AsyncIterator[ChatDriver]:
    """The router of a real app whose AMap client talks to the fake AMap server (no retries)."""
    chat = ChatDriver.create(fake_llm, tmp_path, {"amap": {"base_url": amap.base_url, "retries": 0}})
    yield chat
    await chat.close()


@pytest.fixture
async def llm(fake_llm: FakeLLM) -> AsyncIterator[LLM]:
    client = LLM(LLMConfig(timeout_s=3, retries=0), Secrets(None, fake_llm.base_url, None, None))
    yield client
    await client.close()
