"""The "测试一下" buttons of the two video API keys (智谱, 通义万相). Making a video costs money, so the test
asks for a task id that does not exist: the service checks the key first, then says "no such task". A
refused key, an account in arrears, a busy service and an address that answers something else each get
their own plain sentence."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from bot.console.check import TestResult
from bot.console.words import Text
from generators.video_api.client import VideoApiClient
from generators.video_api.errors import ApiFailure, Failure
from generators.video_api.providers import KEY_ENVS, provider_for

if TYPE_CHECKING:
    from bot.config import AppConfig, Secrets

NAMES = {"zhipu": ("智谱视频服务", "the ZhipuAI video API"),  # the key rows' words, no product codes
         "dashscope": ("通义万相视频服务", "the DashScope video API")}
WRONG_KEY_CODES = {"1000", "1001", "1002", "1003", "1004", "InvalidApiKey", "Unauthorized"}


def _answered_about_the_task(provider: str, body: dict[str, Any]) -> bool:
    """A 200 answer in the provider's own task shape (DashScope: UNKNOWN for an id it does not know)."""
    found = body.get("output") if provider == "dashscope" else body
    return isinstance(found, dict) and "task_status" in found


def _refusal(exc: ApiFailure, label: str, en: str, base: str) -> tuple[bool, Text]:
    """What a failed query says about the key: (the key works, the sentence)."""
    if exc.status is None:
        return False, (f"连不上 {base}：网络不通或者服务地址填错了", f"cannot reach {base}")
    if exc.status in (401, 403) or exc.code in WRONG_KEY_CODES:
        return False, (f"密钥不对：{label}不认这个密钥，请检查有没有抄错",
                       f"wrong key: {en} refused it")
    if exc.failure is Failure.ACCOUNT:
        return False, (f"密钥是对的，但{label}的账户欠费或没有余额了，充值后才能生成视频",
                       f"the key works but the {en} account has no balance")
    if exc.failure is Failure.BUSY:
        return False, (f"{label}现在很忙（错误 {exc.status}），过一会儿再试",
                       f"{en} is busy (HTTP {exc.status}); try again later")
    if exc.failure is Failure.BAD_ANSWER:
        return False, (f"{base} 回答的不像{label}，地址可能填错了",
                       f"{base} does not answer like {en}: check the address")
    if exc.code:  # the service's own "no such task": it accepted the key first
        return True, (f"能用：{label}认这个密钥", f"works: {en} accepted the key")
    return False, (f"{base} 回答了错误 {exc.status}，不像{label}，地址可能填错了",
                   f"{base} answered HTTP {exc.status}, not like {en}: check the address")


async def check_video_key(provider: str, config: AppConfig, secrets: Secrets, timeout_s: float) -> TestResult:
    """One free query with the key as saved now, at `video.api.base_url` when that provider is configured."""

    api, (label, en) = provider_for(provider), NAMES[provider]
    key = (secrets.get(KEY_ENVS[provider]) or "").strip()
    if not key:
        return TestResult(False, (f"还没有填{label}的密钥", f"no {en} key yet"))
    settings = config.video.api
    client = VideoApiClient(api, key, settings.base_url if settings.provider == provider else None,
                            timeout_s=timeout_s)
    try:
        body = await client.call("GET", api.poll_path(f"xiaoai-key-check-{uuid.uuid4().hex}"))
    except ApiFailure as exc:
        return TestResult(*_refusal(exc, label, en, client.base_url))
    finally:
        await client.close()
    if _answered_about_the_task(provider, body):
        return TestResult(True, (f"能用：{label}认这个密钥", f"works: {en} accepted the key"))
    return TestResult(False, (f"{client.base_url} 回答的不像{label}，地址可能填错了",
                              f"{client.base_url} does not answer like {en}: check the address"))
