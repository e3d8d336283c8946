"""The one place that talks to the OpenAI-compatible LLM endpoint.

Timeouts and retries (tenacity) live here so every feature gets the same behaviour, and every failure
surfaces as `LLMUnavailable`, which the router turns into a short friendly reply. The timeout is a
deadline for the whole call, retries included: an HTTP read timeout alone never fires on a server that
trickles a byte every few seconds. Each failure is logged once, here, with its cause.

Every mention makes two calls on the event loop, so their CPU counts: the completion is posted through the
SDK client's own `post` (auth, errors, retries and the `ChatCompletion` model as `chat.completions.create`
gives them) without `create`'s walk of the request over its typed-dict annotations, which rewrites
nothing in the plain messages sent here and took about a quarter of a call's CPU (a test checks that the
server sees the request `create` sends). The SDK's aiohttp transport carries it (BENCHMARKS.md, the flood).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import openai
from loguru import logger
from openai import AsyncOpenAI, DefaultAioHttpClient
from openai.types.chat import ChatCompletion
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from bot.config import AppConfig, LLMConfig, Secrets


class LLMUnavailable(Exception):
    """The LLM is not configured, down, slow or answered nothing usable."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str | list[dict[str, Any]]  # text, or OpenAI content parts (text + image_url) for vision


def with_image(text: str, jpeg_base64: str) -> list[dict[str, Any]]:
    """A user message's content parts: the text and a JPEG as a data URL (`llm.vision: true`)."""
    return [{"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg_base64}"}}]


_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
              openai.RateLimitError)


class LLM:
    """Thin async wrapper over `AsyncOpenAI.chat.completions.create` with timeout and retry."""

    def __init__(self, config: LLMConfig, secrets: Secrets) -> None:
        self.config = config
        base_url = secrets.openai_base_url or config.base_url
        self.source = (secrets.openai_api_key, secrets.openai_base_url)  # a new key or endpoint: a new client
        self.configured = bool(secrets.openai_api_key or base_url)
        self._client = AsyncOpenAI(
            api_key=secrets.openai_api_key or "not-needed",  # local servers often need no key
            base_url=base_url,
            max_retries=0,  # tenacity below owns retries, so attempts and timeouts add up predictably
            timeout=config.timeout_s,
            # the SDK's aiohttp transport: httpx's connection pool scans every connection on each request and
            # response, which a burst of a hundred calls in flight turns into most of a call's CPU
            http_client=DefaultAioHttpClient(timeout=config.timeout_s),
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        timeout_s: float | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> str:
        """Return the assistant's text, or raise LLMUnavailable."""
        if not self.configured:
            raise LLMUnavailable("no LLM configured (set OPENAI_API_KEY and/or OPENAI_BASE_URL)")
        deadline_s = timeout_s or self.config.timeout_s
        try:
            async with asyncio.timeout(deadline_s):
                response = await self._create(messages, deadline_s, max_tokens, temperature)
        except TimeoutError as exc:
            logger.warning("llm: {} gave no answer within {:g} s (retries included)", self.config.model,
                           deadline_s)
            raise LLMUnavailable(f"no answer within {deadline_s:g} s") from exc
        except openai.OpenAIError as exc:
            logger.warning("llm: {} failed: {}: {}", self.config.model, type(exc).__name__, exc)
            raise LLMUnavailable(str(exc)) from exc
        choices = response.choices or []
        text = (choices[0].message.content or "").strip() if choices else ""
        if not text:
            logger.warning("llm: {} returned an empty answer", self.config.model)
            raise LLMUnavailable("the LLM returned an empty answer")
        return text

    async def _create(self, messages: list[ChatMessage], deadline_s: float, max_tokens: int | None,
                      temperature: float | None) -> Any:
        """The completion with tenacity's retries; each attempt's HTTP timeout is what is left."""
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + deadline_s
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(_RETRYABLE),
            reraise=True,
        ):
            with attempt:
                return await self._client.post(
                    "/chat/completions", cast_to=ChatCompletion,
                    body=self.request_body(messages, max_tokens, temperature),
                    options={"timeout": max(0.05, ends_at - loop.time())},
                )
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def request_body(self, messages: list[ChatMessage], max_tokens: int | None,
                     temperature: float | None) -> dict[str, Any]:
        """The JSON of a chat completion request, as `chat.completions.create` would send it."""
        return {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens,
        }

    async def close(self) -> None:
        await self._client.close()


class LiveLLM:
    """The LLM client for the current config: rebuilt when the `llm` section changes on reload.

    Calls in flight may still use the replaced client, so it is closed once they must have ended."""

    def __init__(self, config: LLMConfig, secrets: Secrets) -> None:
        self._secrets = secrets
        self.current = LLM(config, secrets)
        self._closing: set[asyncio.Task] = set()
        secrets.on_change(self.on_secrets)

    def __call__(self) -> LLM:
        """The client for now (a key or endpoint saved in the console has already replaced it)."""
        return self.current

    def on_secrets(self) -> None:
        """A key or endpoint saved in the console: a new client when the LLM's own changed."""
        if self.current.source != (self._secrets.openai_api_key, self._secrets.openai_base_url):
            self._replace(self.current.config)

    def on_config(self, old: AppConfig, new: AppConfig) -> None:
        if new.llm != self.current.config:
            self._replace(new.llm)

    def _replace(self, config: LLMConfig) -> None:
        retired, self.current = self.current, LLM(config, self._secrets)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop, so nothing in flight; the client is closed when collected
        grace = retired.config.timeout_s * (retired.config.retries + 1) + 1

        def close() -> None:
            task = loop.create_task(retired.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        loop.call_later(grace, close)

    async def close(self) -> None:
        await self.current.close()
