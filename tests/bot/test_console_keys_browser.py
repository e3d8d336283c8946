"""The console in headless Chromium (Debian's, with a CJK font) on the bot as `xiaoai run` builds it,
against the Node peer, the fake LLM and the fake AMap server.

An admin types the LLM key and the AMap key on the keys page: the next chat reaches the fake LLM with the
new key and the next weather question reaches AMap with it, no restart; the test button makes one real
call. The log page shows a line the bot just wrote, its secrets masked, and the level filter hides INFO.
重新连接微信 drops the session and the bot serves again; 重新加载配置 applies the file. Every page in the
default language has no English sentence; while WeChat waits for a scan a banner on every page leads to
the QR code. SCREENS_DIR=/some/folder keeps a PNG of each page.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from typing import Any

import pytest
from loguru import logger

from bot.channels.wechaty.channel import WechatyChannel
from bot.config import Secrets, load
from bot.runtime.app import add_console, build_app
from tests.bot.test_console_browser import screenshot, sent_to
from tests.bot.test_playground_browser import browser_or_skip, poll, start_chromium
from tests.conftest import wait_until
from tests.support.builtin_intents import Intent
from tests.support.fake_amap import TEST_KEY, script_slots
from tests.support.fake_llm import is_classify, prompt_text
from tests.support.peer import BOT, FAMILY, NodePeer, at, free_port

PASSWORD = "family-admin-pass"
LLM_KEY = "sk-console-typed-llm-key-7890"
CHAT = "你今天心情好吗"
WEATHER = "北京明天天气怎么样"
CONFIG = """\
# the family's bot
data_dir: {data}
bot:
  admins: [alice]
llm:
  model: fake-model
  base_url: {llm}
  timeout_s: 3
  classify_timeout_s: 2
  retries: 0
amap: {{base_url: {amap}, retries: 0}}
wechaty: {{reconnect_initial_s: 0.2, reconnect_max_s: 1.0, health_interval_s: 0.5}}
console:
  port: {port}
video:
  backend: remote
  remote: {{url: "http://127.0.0.1:9"}}
"""
ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]{2,}){2,}")
VISIBLE_TEXT = """const clone = document.body.cloneNode(true);
clone.querySelectorAll('#log-lines, [hidden], script').forEach(n => n.remove());
return clone.innerText"""
PAGES = ("status", "queue", "groups", "settings", "keys", "logs")


def cjk_font_or_skip() -> None:
    """The pages are Chinese: without a CJK font Chromium draws boxes (`make browser` installs one)."""
    found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout \
        if shutil.which("fc-list") else ""
    if not found.strip():
        reason = "no Chinese font (fc-list :lang=zh is empty): `make browser` installs fonts-wqy-zenhei"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)


async def test_keys_logs_reconnect_and_every_page_in_chinese(tmp_path, fake_llm, amap_server,
                                                             monkeypatch) -> None:
    browser_or_skip()
    cjk_font_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name in ("AMAP_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    amap_server.reset()
    fake_llm.classify(CHAT, Intent.CHAT.label)
    fake_llm.add(lambda req: not is_classify(req) and CHAT in prompt_text(req), "挺好的，谢谢关心！")
    fake_llm.classify(WEATHER, Intent.WEATHER.label)
    script_slots(fake_llm, "weather", WEATHER, {"place": "北京", "day": "明天"})
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data", llm=fake_llm.base_url, amap=amap_server.base_url,  # noqa: ASYNC240
                                  port=port), encoding="utf-8")
    driver_task = asyncio.create_task(asyncio.to_thread(start_chromium, tmp_path))
    peer = await asyncio.to_thread(NodePeer().start)
    secrets = Secrets(puppet_endpoint=peer.endpoint, puppet_token=peer.token, admin_password=PASSWORD)
    config = load(path)
    channel = WechatyChannel(peer.endpoint, peer.token, config.wechaty)
    app = build_app(config, secrets, channel, config_path=path)
    add_console(app, secrets)
    task = asyncio.create_task(app.run())
    driver = None
    try:
        await wait_until(lambda: channel.connected or task.done(), within=20)

        async def ask(sender: str, text: str) -> str:
            await asyncio.to_thread(peer.reset)
            await asyncio.to_thread(peer.say, sender, at() + text, room=FAMILY, mention=[BOT])
            return (await sent_to(peer, lambda m: m["room"] == FAMILY and sender in m["mentionIds"]))["text"]

        # -- before: the LLM gets no key, AMap is not set up ------------------------------------------
        assert "挺好的" in await ask("bob", CHAT)
        assert fake_llm.calls("other")[-1]["authorization"] == "Bearer not-needed"
        no_key = await ask("bob", WEATHER)
        assert "天气" not in no_key or "管理员" in no_key
        assert amap_server.calls() == []

        # -- the admin types both keys into the console -----------------------------------------------
        driver = await driver_task
        await asyncio.to_thread(driver.set_window_size, 1100, 1300)

        def find(css: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, css)

        def click(css: str) -> None:
            find(css).click()

        def log_in() -> None:
            driver.get(f"http://127.0.0.1:{port}/admin/")
            find("#password").send_keys(PASSWORD)
            click("#login-button")

        await asyncio.to_thread(log_in)
        await poll(lambda: find("#app").is_displayed(), 10, "the console after login")
        await asyncio.to_thread(click, '#tabs button[data-tab="keys"]')
        await poll(lambda: driver.find_elements(By.CSS_SELECTOR, 'input[data-name="AMAP_KEY"]'), 10,
                   "the keys")

        def type_keys() -> None:
            find('input[data-name="OPENAI_API_KEY"]').send_keys(LLM_KEY)
            find('input[data-name="AMAP_KEY"]').send_keys(TEST_KEY)
            click("#keys button.save")

        await asyncio.to_thread(type_keys)
        await poll(lambda: find("#keys-saved").is_displayed(), 10, "saved")
        shown = await poll(lambda: "…7890" in (t := find('.key[data-name="OPENAI_API_KEY"]').text) and t, 10,
                           "the LLM key shown as set")
        assert "已设置" in shown and LLM_KEY not in driver.page_source and TEST_KEY not in driver.page_source
        stored = tmp_path / "data" / "secrets.json"
        assert stored.stat().st_mode & 0o777 == 0o600 and LLM_KEY not in path.read_text(encoding="utf-8")  # noqa: ASYNC240

        # the test button: one real call with the saved key
        await asyncio.to_thread(click, 'fieldset[data-provider="llm"] button.test')
        llm_result = 'fieldset[data-provider="llm"] .test-result'
        result = await poll(lambda: "能用" in (t := find(llm_result).text) and t, 15, "the LLM test result")
        assert "fake-model" in result and fake_llm.calls()[-1]["authorization"] == f"Bearer {LLM_KEY}"
        await asyncio.to_thread(click, 'fieldset[data-provider="amap"] button.test')
        amap_result = 'fieldset[data-provider="amap"] .test-result'
        await poll(lambda: "能用" in find(amap_result).text, 15, "AMap works")
        await asyncio.to_thread(screenshot, driver, "console-keys.png")

        # -- the bot uses them at once: no restart ------------------------------------------------------
        assert "挺好的" in await ask("bob", CHAT)
        assert fake_llm.calls("other")[-1]["authorization"] == f"Bearer {LLM_KEY}"
        forecast = await ask("bob", WEATHER)
        assert "北京" in forecast and "管理员" not in forecast
        assert amap_server.calls() and all(call["key"] == TEST_KEY for call in amap_server.calls())

        # -- the log page: a line the bot just wrote, its secrets masked; the level filter ----------------
        logger.warning("wechaty: the gateway repeated token {} and key {}", peer.token, LLM_KEY)
        await asyncio.to_thread(click, '#tabs button[data-tab="logs"]')
        warned = await poll(lambda: "the gateway repeated token" in (t := find("#log-lines").text) and t, 10,
                            "the bot's line on the log page")
        assert peer.token not in warned and LLM_KEY not in warned
        assert "repeated token *** and key ***" in warned
        assert "-> weather" in warned  # the router's INFO line for the question just asked
        await asyncio.to_thread(screenshot, driver, "console-logs.png")
        await asyncio.to_thread(lambda: Select(find("#log-level")).select_by_value("WARNING"))
        filtered = await poll(lambda: "repeated token" in (t := find("#log-lines").text) and t, 10,
                              "warnings only")
        assert "-> weather" not in filtered

        # -- 重新连接微信 and 重新加载配置 -----------------------------------------------------------------
        await asyncio.to_thread(click, '#tabs button[data-tab="status"]')
        changes = len(channel.state_changes)
        clicked = time.time()
        await asyncio.to_thread(click, "#reconnect")
        await poll(lambda: "正在重新连接微信" in find("#action-result").text, 10, "reconnecting")
        def reconnected() -> bool:
            after = [state for _t, state, _r in list(channel.state_changes)[changes:]]
            return "connecting" in after and channel.connected

        await wait_until(reconnected, within=20)
        assert channel.state_changes[-1][0] >= clicked
        assert "挺好的" in await ask("carol", CHAT)  # serving again
        reloads = app.config_watcher.reloads
        path.write_text(path.read_text(encoding="utf-8").replace("model: fake-model", "model: fake-model-2"),  # noqa: ASYNC240
                        encoding="utf-8")
        await asyncio.to_thread(click, "#reload")
        await poll(lambda: "配置已重新加载" in find("#action-result").text or
                   app.config_watcher.reloads > reloads, 10, "reloaded")
        await wait_until(lambda: app.live_config().llm.model == "fake-model-2", within=5)

        # -- every page in the default language: no English sentence --------------------------------------
        for page in PAGES:
            await asyncio.to_thread(click, f'#tabs button[data-tab="{page}"]')
            await asyncio.sleep(1.2)  # the page's first load
            shown = await asyncio.to_thread(driver.execute_script, VISIBLE_TEXT)
            english = [m.group(0) for m in ENGLISH_SENTENCE.finditer(shown)]
            assert not english, f"English on the {page} page: {english}"
            await asyncio.to_thread(screenshot, driver, f"console-page-{page}.png")

        # -- WeChat logged out: every page leads to the QR code ------------------------------------------
        await asyncio.to_thread(peer.logout)
        await asyncio.to_thread(peer.scan, "https://login.weixin.qq.com/l/after-logout")
        await asyncio.to_thread(click, '#tabs button[data-tab="queue"]')
        await poll(lambda: find("#scan-banner").is_displayed(), 10, "the scan banner on the queue page")
        await asyncio.to_thread(screenshot, driver, "console-scan-banner.png")
        await asyncio.to_thread(click, "#scan-banner-go")
        await poll(lambda: find("#qr").is_displayed() and find("#tab-status").is_displayed(), 10,
                   "the QR code")

        # -- the English switch --------------------------------------------------------------------------
        await asyncio.to_thread(click, "#lang-switch")
        await poll(lambda: "Reconnect WeChat" in find("#reconnect").text, 10, "the English page")
        await poll(lambda: "LLM" in find("#checks").text, 10, "English checks")
    finally:
        if driver is None:
            with contextlib.suppress(BaseException):
                driver = await driver_task
        if driver is not None:
            with contextlib.suppress(BaseException):
                await asyncio.to_thread(driver.quit)
        app.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 20)
        await asyncio.to_thread(peer.close)
