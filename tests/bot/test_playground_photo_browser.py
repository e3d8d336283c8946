"""The playground's photo button in a real headless Chromium: a member picks a photo (shown in the
room), asks "@小爱 让这张照片动起来", sees the ack and then a video the browser can play, rendered by a
tiny random image-to-video model from that photo. The photo API refuses strangers and bad base64."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.bot.test_playground import playground
from tests.bot.test_playground_browser import BOT_TEXTS, VIDEO_STATE, browser_or_skip, poll, start_chromium
from tests.support.builtin_intents import Intent
from tests.support.fake_llm import prompt_text

ASK = "@小爱 让这张照片动起来"
MOTION = ("The camera stays still at eye level in soft light. The child in the photo laughs and waves "
          "both hands slowly while the leaves behind him sway gently in the breeze.")
SMALL = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}
MY_PHOTOS = "return [...document.querySelectorAll('.msg.me img')].map(i => i.naturalWidth)"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from tests.support.tiny_models import build_cogvideox_folder

    root = tmp_path_factory.mktemp("pg-photo")
    return {"text": build_cogvideox_folder(root / "t2v", "2b"),
            "photo": build_cogvideox_folder(root / "i2v", "5b-i2v")}


def overrides(models: dict[str, Path], fake_llm) -> dict:
    fake_llm.add(lambda req: "motion-prompt writer" in prompt_text(req), MOTION)
    fake_llm.classify("让这张照片动起来", Intent.VIDEO.label)
    return {"video": {"model": {"path": str(models["text"])}, "sampling": SMALL,
                      "photo": {"model": {"path": str(models["photo"])}, "sampling": SMALL}}}


def write_photo(path: Path) -> Path:
    pixels = np.zeros((300, 200, 3), dtype=np.uint8)
    pixels[:] = (230, 160, 60)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


async def test_photo_api_refuses_strangers_and_bad_data(tmp_path, fake_llm, models):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    async with playground(tmp_path, fake_llm, overrides(models, fake_llm)) as (_app, _channel, page):
        stranger = await page.client.post("/api/photos", json={"member_id": "nobody", "data": data})
        assert stranger.status_code == 400
        broken = await page.client.post("/api/photos", json={"member_id": "kid", "data": "%%%"})
        assert broken.status_code in (400, 422)
        sent = await page.client.post("/api/photos", json={"member_id": "kid", "data": data,
                                                           "name": "me.png"})
        assert sent.status_code == 200 and sent.json()["media"]["kind"] == "image"
        await asyncio.sleep(1)
        assert not page.bot_messages()  # a photo by itself gets no reply


async def test_a_member_uploads_a_photo_and_it_comes_alive_in_chromium(tmp_path, fake_llm, models):
    browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    photo = write_photo(tmp_path / "kid.jpg")  # noqa: ASYNC240
    driver_task = asyncio.create_task(asyncio.to_thread(start_chromium, tmp_path))
    try:
        async with playground(tmp_path, fake_llm, overrides(models, fake_llm)) as (_app, channel, _page):
            driver = await driver_task
            await asyncio.to_thread(driver.get, channel.url)
            await poll(lambda: driver.find_elements(By.CSS_SELECTOR, "#member option"), 10, "the members")

            def pick_photo() -> None:
                Select(driver.find_element(By.ID, "member")).select_by_visible_text("小明")
                driver.execute_script("document.getElementById('photo').hidden = false")
                driver.find_element(By.ID, "photo").send_keys(str(photo))

            await asyncio.to_thread(pick_photo)
            widths = await poll(lambda: driver.execute_script(MY_PHOTOS), 10, "the member's photo")

            def ask() -> None:
                driver.find_element(By.ID, "text").send_keys(ASK)
                driver.find_element(By.ID, "send").click()

            await asyncio.to_thread(ask)
            acks = await poll(lambda: [t for t in driver.execute_script(BOT_TEXTS) if "排队" in t],
                              20, "the ack")
            video = await poll(lambda: (s := driver.execute_script(VIDEO_STATE)) and s["readyState"] >= 1
                               and s, 90, "a playable video")
    finally:
        with contextlib.suppress(BaseException):
            await asyncio.to_thread((await driver_task).quit)
    assert widths and widths[0] in (0, 200)  # shown in the room (0 while the image still loads)
    assert acks[0].startswith("@小明") and "camera" not in acks[0]  # the group reads plain words only
    assert any("motion-prompt writer" in prompt_text(r) for r in fake_llm.calls("other"))
    assert video["error"] is None and (video["width"], video["height"]) == (96, 64)
