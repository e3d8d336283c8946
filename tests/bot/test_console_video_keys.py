"""The console's "测试一下" buttons for the two video API keys, through its HTTP API against the fake 智谱 and
DashScope servers: a right key works, a wrong one is called wrong, a dead address is unreachable, each in
plain Chinese, and no video (nothing paid) is ever asked for."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.console.auth import CSRF_HEADER
from tests.bot.test_console_api import PASSWORD, Console
from tests.support.fake_video_apis import FakeVideoApi

PROVIDERS = ["zhipu", "dashscope"]
KEY_NAMES = {"zhipu": "ZHIPUAI_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}


@pytest.fixture
async def console(tmp_path: Path, monkeypatch) -> AsyncIterator[Console]:
    for name in KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    made = Console(tmp_path, PASSWORD)
    try:
        yield made
    finally:
        await made.client.aclose()
        made.jobs.store.close()


def use_video_api(console: Console, provider: str, base_url: str) -> None:
    config = console.live()
    api = config.video.api.model_copy(update={"provider": provider, "base_url": base_url})
    console.live.apply(config.model_copy(update={"video": config.video.model_copy(update={"api": api})}))


async def press_test(console: Console, provider: str) -> dict:
    csrf = await console.login()
    answer = await console.client.post(f"/admin/api/keys/test/{provider}", headers={CSRF_HEADER: csrf})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    without_addresses = re.sub(r"https?://\S+", "", result["text"])
    assert not re.search(r"[A-Za-z]{2,}", without_addresses), result["text"]  # plain Chinese only
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_right_key_works_and_nothing_is_paid_for(console: Console, provider: str) -> None:
    with FakeVideoApi(provider, key=f"{provider}-right-key-5678") as fake:
        use_video_api(console, provider, fake.base_url)
        console.secrets.set(KEY_NAMES[provider], fake.key)
        result = await press_test(console, provider)
        assert result["ok"] and result["text"].startswith("能用"), result
        assert fake.polls == 1 and fake.creates == [] and fake.tasks == {}  # one free query, no video made
        assert fake.key not in result["text"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_key_is_called_wrong(console: Console, provider: str) -> None:
    with FakeVideoApi(provider, key=f"{provider}-right-key-5678") as fake:
        use_video_api(console, provider, fake.base_url)
        console.secrets.set(KEY_NAMES[provider], "typed-it-wrong-0000")
        result = await press_test(console, provider)
        assert not result["ok"] and result["text"].startswith("密钥不对"), result
        assert fake.creates == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_nothing_listening_is_unreachable(console: Console, provider: str) -> None:
    base = f"http://127.0.0.1:{free_port()}/api"
    use_video_api(console, provider, base)
    console.secrets.set(KEY_NAMES[provider], "some-key-1234")
    result = await press_test(console, provider)
    assert not result["ok"] and result["text"].startswith(f"连不上 {base}"), result


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_no_key_yet_is_said_so_and_each_key_has_its_own_button(console: Console, provider: str) -> None:
    result = await press_test(console, provider)
    assert not result["ok"] and result["text"].startswith("还没有填"), result
    keys = (await console.client.get("/admin/api/keys")).json()
    assert provider in keys["testable"]
    assert [k["name"] for k in keys["keys"] if k["provider"] == provider] == [KEY_NAMES[provider]]
