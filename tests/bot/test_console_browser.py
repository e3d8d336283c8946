"""The admin console in a real headless Chromium, on the bot as `xiaoai run` builds it (build_app, the
console beside it, WechatyChannel) against the Node peer, whose mock puppet waits on a QR code.

One admin's path: a wrong password is refused, the right one logs in; the QR code from the mock's `scan`
event is in the page (and follows a new one); after the mock logs in the page says serving; a queued video
is cancelled from the queue page (the job is really cancelled and its asker told); a forged change without
the CSRF token is refused; the family room's video intent is switched off and the bot stops making videos
there; a bad quota is refused on the form with the validator's message and config.yaml is unchanged.
SCREENS_DIR=/some/folder keeps a PNG of each page.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from bot.channels.wechaty.channel import WechatyChannel
from bot.config import Secrets, load
from bot.console.web import qr_svg
from bot.jobs import JobState
from bot.messages import ChatRef
from bot.runtime.app import add_console, build_app
from tests.bot.test_playground import PANDA_PROMPT
from tests.bot.test_playground_browser import browser_or_skip, poll, start_chromium
from tests.conftest import wait_until
from tests.support.builtin_intents import Intent
from tests.support.peer import BOT, FAMILY, NodePeer, at, free_port

PASSWORD = "family-admin-pass"
VIDEO_ASK = "生成一个熊猫弹吉他的视频"
IMAGE_ASK = "帮我画一只在雪地里的柴犬"
SHIBA = "A fluffy Shiba Inu sits in fresh white snow, looking up with a gentle smile, soft daylight."
SECOND_QR = "https://login.weixin.qq.com/l/xiaoai-second-code"
CONFIG = """\
# 小爱 for the family — mum's notes stay here
data_dir: {data}
bot:
  admins: [alice]   # mum
llm:
  model: fake-model
  timeout_s: 3
  classify_timeout_s: 2
  retries: 0
wechaty: {{reconnect_initial_s: 0.2, reconnect_max_s: 1.0, health_interval_s: 0.5}}
groups:
  allow: ["*"]      # every room
console:
  port: {port}
video:
  model:
    path: {video_model}   # the tiny random demo model
  sampling: {{height: 64, width: 96, steps: 2}}
image:
  backend: api
  api: {{base_url: {images}, model: flux-test, retries: 0}}
"""
JOB_ROWS = """return [...document.querySelectorAll('#pending tbody tr')].map(r => ({
  id: Number(r.dataset.jobId), state: r.dataset.state, text: r.textContent}))"""
QR_STATE = """const img = document.querySelector('#qr-image');
return {shown: !document.querySelector('#qr').hidden, src: img.getAttribute('src'), loaded: img.complete,
        width: img.naturalWidth, phase: document.querySelector('#conn-state').dataset.phase}"""
FETCH_TEXT = "const [url, done] = arguments; fetch(url).then(r => r.text()).then(done, e => done(String(e)))"
FORGED_POST = """const [done] = arguments;
fetch('/admin/api/rooms', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({room_id: 'family@chatroom', topic: '相亲相爱一家人', allowed: false})})
  .then(r => done(r.status), e => done('error ' + e))"""


def screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("SCREENS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


async def sent_to(peer: NodePeer, predicate: Any, within: float = 30.0) -> dict:
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


async def test_admin_logs_in_sees_the_qr_then_serving_cancels_a_video_and_switches_video_off(
        tmp_path, fake_llm, images, monkeypatch) -> None:
    browser_or_skip()
    from selenium.webdriver.common.by import By

    from generators.demo import demo_video_config

    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "no-modelscope"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    fake_llm.classify(VIDEO_ASK, Intent.VIDEO.label)
    fake_llm.add("CogVideoX prompt writer", PANDA_PROMPT)
    fake_llm.classify(IMAGE_ASK, Intent.IMAGE.label)
    fake_llm.add("FLUX image prompt writer", SHIBA)
    images.reset("hold")  # the picture job keeps the one worker busy, so the video after it waits
    from bot.config import VideoConfig

    video_section, _ = await asyncio.to_thread(demo_video_config, VideoConfig(), tmp_path / "demo")
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data", port=port, video_model=video_section.model.path,  # noqa: ASYNC240
                                  images=images.base_url), encoding="utf-8")
    driver_task = asyncio.create_task(asyncio.to_thread(start_chromium, tmp_path))
    peer = await asyncio.to_thread(NodePeer(wait_for_scan=True).start)
    secrets = Secrets.from_env({"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "test-key",
                                "XIAOAI_ADMIN_PASSWORD": PASSWORD})
    config = load(path)
    channel = WechatyChannel(peer.endpoint, peer.token, config.wechaty)
    app = build_app(config, secrets, channel, config_path=path)
    add_console(app, secrets)
    task = asyncio.create_task(app.run())
    url = f"http://127.0.0.1:{port}/admin/"
    driver = None
    try:
        driver = await driver_task
        await asyncio.to_thread(driver.set_window_size, 1100, 1100)
        await wait_until(lambda: channel.login_status().qr_code is not None or task.done(), within=20)

        def find(css: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, css)

        def text(css: str) -> str:
            return find(css).text

        def click(css: str) -> None:
            find(css).click()

        # -- login: a wrong password is refused, the right one opens the console ---------------------
        await asyncio.to_thread(driver.get, url)
        await poll(lambda: find("#login").is_displayed(), 10, "the login form")

        def log_in(password: str) -> None:
            box = find("#password")
            box.clear()
            box.send_keys(password)
            click("#login-button")

        await asyncio.to_thread(log_in, "wrong guess")
        refused = await poll(lambda: text("#login-error"), 10, "the wrong-password message")
        assert "密码不对" in refused and not find("#app").is_displayed()
        await asyncio.to_thread(log_in, PASSWORD)
        await poll(lambda: find("#app").is_displayed(), 10, "the console after login")

        # -- the QR code from the mock's scan event, live ---------------------------------------------
        qr = await poll(lambda: (s := driver.execute_script(QR_STATE))["shown"] and s["width"] > 0 and s,
                        15, "the login QR code")
        assert qr["phase"] == "waiting_for_scan" and "等待扫码登录" in text("#conn-state")
        served = await asyncio.to_thread(driver.execute_async_script, FETCH_TEXT, qr["src"])
        assert served == qr_svg("https://login.weixin.qq.com/l/xiaoai-mock")  # the mock's own code
        await asyncio.to_thread(screenshot, driver, "console-status-qr.png")
        await asyncio.to_thread(peer.scan, SECOND_QR)  # the code changes: the page follows
        second = await poll(lambda: (s := driver.execute_script(QR_STATE))["src"] != qr["src"]
                            and s["width"] > 0 and s, 10, "the new QR code")
        shown = await asyncio.to_thread(driver.execute_async_script, FETCH_TEXT, second["src"])
        assert shown == qr_svg(SECOND_QR)

        # -- the mock logs in: serving --------------------------------------------------------------
        await asyncio.to_thread(peer.login)
        await poll(lambda: driver.execute_script(QR_STATE)["phase"] == "serving", 15, "serving")
        assert "小爱 (xiaoai)" in text("#conn-account") and not find("#qr").is_displayed()
        checks = await asyncio.to_thread(lambda: text("#checks"))
        assert "语言模型：fake-model" in checks and "视频模型文件" in checks and "高德地图" in checks
        await asyncio.to_thread(screenshot, driver, "console-status-serving.png")

        # -- the queue: a picture runs, a video waits; cancel the video ---------------------------------
        await asyncio.to_thread(peer.say, "alice", at() + IMAGE_ASK, room=FAMILY, mention=[BOT])
        await wait_until(lambda: any(j.state is JobState.RUNNING for j in app.jobs.list()), within=20)
        await asyncio.to_thread(peer.say, "bob", at() + VIDEO_ASK, room=FAMILY, mention=[BOT])
        await sent_to(peer, lambda m: "bob" in m["mentionIds"] and "排队" in (m["text"] or ""))
        await asyncio.to_thread(click, '#tabs button[data-tab="queue"]')
        def two_jobs_video_queued() -> list | None:  # accepted -> queued follows the ack by a moment
            rows = driver.execute_script(JOB_ROWS)
            queued = [r for r in rows or [] if "视频" in r["text"] and r["state"] == "queued"]
            return rows if rows and len(rows) == 2 and queued else None

        rows = await poll(two_jobs_video_queued, 10, "two jobs, the video queued")
        video = next(r for r in rows if "视频" in r["text"])
        assert video["state"] == "queued" and "爸爸" in video["text"] and "相亲相爱一家人" in video["text"]
        assert any(r["state"] == "running" and "妈妈" in r["text"] for r in rows)
        await asyncio.to_thread(screenshot, driver, "console-queue.png")
        await asyncio.to_thread(click, f'#pending tr[data-job-id="{video["id"]}"] button.cancel')
        await wait_until(lambda: app.jobs.get(video["id"]).state is JobState.CANCELLED, within=10)
        told = await sent_to(peer, lambda m: f"#{video['id']} 已取消" in (m["text"] or ""))
        assert told["mentionIds"] == ["bob"]
        finished_row = f'#finished tr[data-job-id="{video["id"]}"]'
        await poll(lambda: driver.find_elements(By.CSS_SELECTOR, finished_row), 10, "the cancelled video")
        images.release()
        await sent_to(peer, lambda m: m.get("file") is not None)  # the queue goes on: the picture arrives

        # -- a change without the CSRF token is refused, even with the session cookie -------------------
        before = path.read_bytes()  # noqa: ASYNC240
        assert await asyncio.to_thread(driver.execute_async_script, FORGED_POST) == 403
        assert path.read_bytes() == before  # noqa: ASYNC240

        # -- the family room's video intent off, saved and applied ------------------------------------
        await asyncio.to_thread(click, '#tabs button[data-tab="groups"]')
        card = f'.room[data-room-id="{FAMILY}"]'
        await poll(lambda: driver.find_elements(By.CSS_SELECTOR, card), 10, "the family room")
        await asyncio.to_thread(click, f'{card} input.intent[value="video"]')
        await asyncio.to_thread(click, f"{card} button.save")
        await poll(lambda: find(f"{card} .room-saved").is_displayed(), 10, "saved")
        saved = path.read_text(encoding="utf-8")  # noqa: ASYNC240
        assert "# 小爱 for the family — mum's notes stay here" in saved and "# mum" in saved
        settings = app.live_config().for_chat(ChatRef(FAMILY, True), "相亲相爱一家人")
        assert not settings.intent_enabled("video") and settings.intent_enabled("image")
        await asyncio.to_thread(peer.say, "carol", at() + VIDEO_ASK, room=FAMILY, mention=[BOT])
        off = await sent_to(peer, lambda m: "carol" in m["mentionIds"] and "没有开通" in (m["text"] or ""))
        assert "视频" in off["text"]

        # -- a bad value is refused on the form, the file unchanged -----------------------------------
        good = path.read_bytes()  # noqa: ASYNC240

        def bad_quota() -> None:
            box = find(f'{card} input.quota[name="user_videos_per_day"]')
            box.clear()
            box.send_keys("-1")
            click(f"{card} button.save")

        await asyncio.to_thread(bad_quota)
        error = await poll(lambda: text(f"{card} .room-error"), 10, "the validator's message")
        assert "不能小于 0" in error and "user_videos_per_day" in error
        assert path.read_bytes() == good  # noqa: ASYNC240
        await asyncio.to_thread(screenshot, driver, "console-groups.png")

        # -- settings, and the keys page: secrets named, never shown -----------------------------------
        await asyncio.to_thread(click, '#tabs button[data-tab="settings"]')
        await poll(lambda: driver.find_elements(By.CSS_SELECTOR, '#settings [data-path="llm.model"]'), 10,
                   "the settings form")
        await asyncio.to_thread(driver.set_window_size, 1100, 2000)  # the whole form
        await asyncio.to_thread(screenshot, driver, "console-settings.png")
        await asyncio.to_thread(click, '#tabs button[data-tab="keys"]')
        keys_text = await poll(lambda: text("#keys"), 10, "the keys page")
        assert "OPENAI_API_KEY" in keys_text and "test-key" not in driver.page_source
        assert PASSWORD not in driver.page_source

        # -- WeChat drops the session: "logged out, scan again", with the new code ---------------------
        await asyncio.to_thread(driver.set_window_size, 1100, 1100)
        await asyncio.to_thread(click, '#tabs button[data-tab="status"]')
        await asyncio.to_thread(peer.logout)
        await asyncio.to_thread(peer.scan, "https://login.weixin.qq.com/l/after-logout")
        again = await poll(lambda: (s := driver.execute_script(QR_STATE))["phase"] == "logged_out"
                           and s["shown"] and s["width"] > 0 and s, 15, "logged out with a new QR code")
        assert "微信已退出登录，请重新扫码" in text("#conn-state") and "重新扫码" in text("#qr-note")
        assert await asyncio.to_thread(driver.execute_async_script, FETCH_TEXT, again["src"]) == qr_svg(
            "https://login.weixin.qq.com/l/after-logout")
        await asyncio.to_thread(screenshot, driver, "console-status-logged-out.png")
    finally:
        images.release()
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
