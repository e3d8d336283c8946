"""The console's "测试一下" buttons: one real call to a provider with the keys as saved now, and the plain
result (what works, or what to fix), redacted like the log."""

from __future__ import annotations

from loguru import logger

from bot.config import AppConfig, Secrets
from bot.console.check import TestResult

TESTABLE = ("llm", "amap", "image", "zhipu", "dashscope")
TEST_TIMEOUT_S = 15.0


async def test_llm(config: AppConfig, secrets: Secrets) -> TestResult:
    from bot.llm import LLM, ChatMessage, LLMUnavailable

    llm = LLM(config.llm, secrets)
    if not llm.configured:
        return TestResult(False, ("还没有填语言模型的密钥或服务地址", "no LLM key or endpoint yet"))
    try:
        answer = await llm.complete([ChatMessage("user", "请只回答两个字：你好")], max_tokens=16,
                                    timeout_s=min(TEST_TIMEOUT_S, config.llm.timeout_s * 2))
    except LLMUnavailable as exc:
        return TestResult(False, (f"没成功：{exc}", f"failed: {exc}"))
    finally:
        await llm.close()
    return TestResult(True, (f"能用：{config.llm.model} 回答了「{answer[:40]}」",
                             f"works: {config.llm.model} answered “{answer[:40]}”"))


async def test_amap(config: AppConfig, secrets: Secrets) -> TestResult:
    import httpx

    from intents.slots import explain
    from services.amap import AmapClient, AmapError
    from services.amap.errors import KEY_ENV

    key = (secrets.get(KEY_ENV) or "").strip() or None
    if key is None:
        return TestResult(False, ("还没有填高德地图的密钥", "no AMap key yet"))
    async with httpx.AsyncClient() as http:
        try:
            found = await AmapClient(config.amap, key, http).geocode("天安门", "北京")
        except AmapError as exc:
            return TestResult(False, (f"没成功：{explain(exc)}", f"failed: {type(exc).__name__}"))
    if found is None:
        return TestResult(False, ("高德地图回答了，但没找到天安门", "AMap answered but found nothing"))
    return TestResult(True, ("能用：高德地图找到了天安门", "works: AMap found Tian'anmen"))


async def test_image(config: AppConfig, secrets: Secrets) -> TestResult:
    """The images API answers its model list with the key (no picture is made: that would cost money)."""
    import httpx

    from bot.jobs.kinds.image import KEY_ENV

    if config.image.backend != "api":
        return TestResult(True, ("图片在本机生成，不用密钥", "pictures render here: no key needed"))
    key = secrets.get(KEY_ENV) or secrets.openai_api_key
    base = (config.image.api.base_url or secrets.openai_base_url or "https://api.openai.com/v1").rstrip("/")
    if not key:
        return TestResult(False, ("还没有填画图服务的密钥", "no images API key yet"))
    try:
        async with httpx.AsyncClient(timeout=TEST_TIMEOUT_S) as http:
            response = await http.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        return TestResult(False, (f"连不上 {base}：{type(exc).__name__}", f"cannot reach {base}: {exc}"))
    if response.status_code in (401, 403):
        return TestResult(False, ("画图服务不认这个密钥", "the images API refused the key"))
    if response.status_code >= 400:
        return TestResult(False, (f"画图服务回答了错误 {response.status_code}",
                                  f"the images API answered {response.status_code}"))
    return TestResult(True, ("能用：画图服务认这个密钥", "works: the images API accepted the key"))


async def run_test(provider: str, config: AppConfig, secrets: Secrets) -> TestResult:
    if provider in ("zhipu", "dashscope"):
        from bot.console.video_keys import check_video_key

        result = await check_video_key(provider, config, secrets, TEST_TIMEOUT_S)
    else:
        result = await {"llm": test_llm, "amap": test_amap, "image": test_image}[provider](config, secrets)
    logger.info("console: test of {}: {}", provider, "works" if result.ok else "failed")
    return result
