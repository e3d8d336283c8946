"""The LLM client posts chat completions through the SDK client's `post`, not `chat.completions.create`
(whose walk over the request's typed-dict annotations cost a quarter of a call's CPU). The server must see
the very request `create` sends, errors must still be the SDK's, and the answer its `ChatCompletion`."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI
from openai._utils import async_maybe_transform
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

from bot.config import LLMConfig, Secrets
from bot.llm import LLM, ChatMessage, LLMUnavailable, with_image
from tests.support.fake_llm import FakeLLM

TEXT = [ChatMessage("system", "你是小爱"), ChatMessage("user", "今天吃什么")]
VISION = [ChatMessage("system", "看图"), ChatMessage("user", with_image("这是什么", "aGVsbG8="))]


def client(fake: FakeLLM, **config: Any) -> LLM:
    secrets = Secrets.from_env({"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test-key"})
    return LLM(LLMConfig(model="fake-model", retries=0, **config), secrets)


@pytest.mark.parametrize("messages", [TEXT, VISION])
@pytest.mark.parametrize("max_tokens, temperature", [(None, None), (16, 0)])
async def test_the_server_sees_what_create_would_send(fake_llm: FakeLLM, messages, max_tokens, temperature):
    llm = client(fake_llm)
    answer = await llm.complete(messages, max_tokens=max_tokens, temperature=temperature)
    assert answer == fake_llm.default_reply
    sdk = AsyncOpenAI(api_key="test-key", base_url=fake_llm.base_url, max_retries=0)
    await sdk.chat.completions.create(  # what the client sent before it posted the body itself
        model="fake-model", messages=[{"role": m.role, "content": m.content} for m in messages],
        temperature=llm.config.temperature if temperature is None else temperature, max_tokens=max_tokens)
    ours, theirs = fake_llm.requests[-2:]
    assert ours == theirs and ours["authorization"] == "Bearer test-key"
    # and the SDK's request rewriting, which `post` skips, would leave the body as it is
    body = llm.request_body(messages, max_tokens, temperature)
    assert await async_maybe_transform(body, CompletionCreateParamsNonStreaming) == body
    await sdk.close()
    await llm.close()


async def test_sdk_errors_still_become_llm_unavailable(fake_llm: FakeLLM):
    fake_llm.fail_all(status=500)
    llm = client(fake_llm)
    with pytest.raises(LLMUnavailable, match="500"):
        await llm.complete(TEXT)
    await llm.close()


async def test_the_stand_in_keeps_the_connection_as_real_endpoints_do():
    with FakeLLM() as fake:
        llm = client(fake)
        for _ in range(3):
            assert await llm.complete(TEXT) == fake.default_reply
        assert fake.connections == 1  # no TCP connect a call that production would not pay
        fake.close()  # the connection still open is hung up: the server is gone for real
        with pytest.raises(LLMUnavailable):
            await llm.complete(TEXT)
        await llm.close()
