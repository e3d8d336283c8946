"""What the group reads about a picture it asked for: the picture, with no seed and no English text behind
it (show_prompt is off by default); an admin, or anyone who adds "#详情", gets both."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import AppConfig
from tests.support.builtin_intents import Intent
from tests.support.chat_driver import ChatDriver
from tests.support.fake_llm import prompt_text

REQUEST = "帮我画一只在雪地里的柴犬"
DETAILED = REQUEST + " #详情"
SHIBA = "A fluffy Shiba Inu sits in fresh white snow, looking up with a gentle smile, soft daylight."


@pytest.fixture
async def driver(fake_llm, images, tmp_path) -> Any:
    for text in (REQUEST, DETAILED):
        fake_llm.classify(text, Intent.IMAGE.label)
    fake_llm.add(lambda req: "FLUX image prompt writer" in prompt_text(req), SHIBA)
    images.reset("hold")  # the job waits: only the acknowledgement is read here
    api = {"base_url": images.base_url, "model": "flux-test", "retries": 0}
    chat = ChatDriver.create(fake_llm, tmp_path / "data", {"image": {"backend": "api", "api": api},
                                                         "bot": {"admins": ["alice"]}})
    await chat.app.jobs.start()
    try:
        yield chat
    finally:
        images.release()
        await chat.app.jobs.stop()
        await chat.close()


def test_show_prompt_is_off_by_default() -> None:
    config = AppConfig()
    assert config.video.show_prompt is False and config.image.show_prompt is False


async def test_the_group_sees_no_seed_or_english_text_but_admins_and_details_do(driver) -> None:
    await driver.say(REQUEST, sender_id="bob", sender_name="爸爸")
    await driver.say(DETAILED, sender_id="bob", sender_name="爸爸")
    await driver.say(REQUEST, sender_id="alice", sender_name="妈妈")
    acks = [reply.text for reply in driver.replies]
    assert len(acks) == 3 and all("收到" in ack and "种子" not in ack and "Shiba" not in ack for ack in acks)
    plain, asked, admin = (job.request.caption for job in sorted(driver.app.jobs.list(), key=lambda j: j.id))
    assert "画好啦" in plain and "种子" not in plain and "Shiba" not in plain and "详情" not in plain
    assert "种子" in asked and "Shiba Inu" in asked  # "#详情"
    assert "种子" in admin and "Shiba Inu" in admin  # an admin
