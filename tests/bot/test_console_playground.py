"""In the playground the console is on the page's own server, and #状态 tells the truth: no WeChat is
connected, and no LLM is named when none is configured."""

from __future__ import annotations

import asyncio

import httpx

from bot.config import AppConfig, Secrets
from bot.runtime.playground import build_playground
from tests import conftest
from tests.bot.test_playground import Page
from tests.conftest import wait_until


async def test_playground_serves_the_console_and_status_says_no_wechat_no_llm(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("XIAOAI_ADMIN_PASSWORD", raising=False)
    data = conftest.test_config_data(tmp_path / "data", {
        "bot": {"admins": ["mom"]}, "offline": {"playground": {"port": 0, "demo_models": False}}})
    built = await asyncio.to_thread(build_playground, AppConfig.model_validate(data), Secrets.from_env({}))
    app, channel = built.app, built.channel
    url = channel.bind()
    task = asyncio.create_task(app.run())
    try:
        await wait_until(lambda: channel.connected or task.done(), within=10)
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10) as client:
            page = Page(client)
            await page.open()
            try:
                await page.say("mom", "#状态")
                await wait_until(lambda: any("状态" in m["text"] for m in page.bot_messages()), within=10)
                status = next(m["text"] for m in page.bot_messages() if "状态" in m["text"])
                console = await client.get("/admin/")
                session = (await client.get("/admin/api/session")).json()
                connection = (await client.get("/admin/api/status")).json()["connection"]
                rooms = (await client.get("/admin/api/rooms")).json()["rooms"]
            finally:
                await page.close()
    finally:
        app.stop()
        await asyncio.wait_for(task, 20)
    assert "✅ 微信：没接微信：这是本地试玩页面" in status and "已登录" not in status
    assert "❌ 语言模型：没有配置" in status and "gpt-4o-mini" not in status
    assert "❌ 高德地图" in status or "✅ 高德地图" in status  # AMap is among the checks
    assert "Generator" not in status  # plain names, no class names
    assert console.status_code == 200 and "管理台" in console.text
    assert session["password_required"] is False and session["authenticated"]  # loopback, no password
    assert connection["phase"] == "playground"
    assert [r["topic"] for r in rooms] == ["小爱试玩群"]
