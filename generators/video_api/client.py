"""The HTTP side of a hosted video API, asynchronous (httpx): JSON calls sorted into `Failure`s by the
provider, retried with backoff while the answer says "busy" and the deadline allows, and the key never in
a log line (`redact`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from loguru import logger

from generators.video_api.errors import ApiFailure, Failure
from generators.video_api.providers import Provider

T = TypeVar("T")
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


def redact(text: str, key: str | None) -> str:
    """`text` with the key (and any Bearer value) blanked, for logs and admin notes."""
    if key:
        text = text.replace(key, key[:3] + "…")
    return text


class VideoApiClient:
    """One provider at one address with one key. `call` raises ApiFailure; `retrying` waits out BUSY."""

    def __init__(self, provider: Provider, key: str, base_url: str | None, *, timeout_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.provider = provider
        self._key = key
        self.base_url = (base_url or provider.default_base_url).rstrip("/")
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), transport=transport,
                                      follow_redirects=True)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        create = method == "POST"
        try:
            answer = await self.http.request(method, self.base_url + path, json=body,
                                             headers=self.provider.headers(self._key, create=create))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ApiFailure(Failure.BUSY, f"{self.base_url} does not answer: {exc!r}") from exc
        except httpx.HTTPError as exc:  # sent, answer lost: a create may have happened
            failure = Failure.UNCONFIRMED if create else Failure.BUSY
            raise ApiFailure(failure, f"{method} {path}: no answer ({exc!r})") from exc
        try:
            parsed: Any = answer.json()
        except ValueError:
            parsed = None
        if answer.status_code >= 400:
            raise self.provider.error(answer.status_code, parsed if parsed is not None else answer.text[:300])
        if not isinstance(parsed, dict):
            raise ApiFailure(Failure.BAD_ANSWER, f"{method} {path}: not JSON: {answer.text[:200]!r}",
                             status=answer.status_code)
        return parsed

    async def retrying(self, attempt: Callable[[], Awaitable[T]], deadline: float,
                       should_stop: Callable[[], bool], what: str) -> T:
        """`attempt()` again after each BUSY, backing off (1 s doubling to 30 s, jittered), while the
        wall-clock `deadline` allows; then the last BUSY failure is raised. A create is retried with the
        same request id (zhipu's idempotency field) and only after an answer that says nothing was made."""
        delay = FIRST_BACKOFF_S
        while True:
            try:
                return await attempt()
            except ApiFailure as exc:
                if not exc.retryable:
                    raise
                wait = min(delay, MAX_BACKOFF_S) * random.uniform(0.8, 1.2)
                if time.time() + wait > deadline:
                    raise
                logger.info("video api: {} busy ({}); again in {:.1f} s", what, redact(str(exc), self._key),
                            wait)
                await sleep_unless_stopped(wait, should_stop)
                delay *= 2


async def sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> bool:
    """Sleep, looking at `should_stop` every 0.1 s; True when it turned true (the sleep ends early)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if should_stop():
            return True
        await asyncio.sleep(min(0.1, left))
    return should_stop()
