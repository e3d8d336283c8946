"""图片生成: the rewriter keeps the asker's key nouns (柴犬 stays a Shiba Inu), and end to end through the
real Node Wechaty peer a decodable picture arrives — once from a tiny FLUX folder loaded in-process by
the production loader, once from a fake OpenAI-compatible images server — plus the clear answers for a
refused prompt, a missing model and a used-up quota."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.config import LLMConfig, Secrets
from bot.llm import LLM
from bot.pipeline.context import Context
from generators.image_api import REFUSED_REPLY
from intents.base import UserInputError
from intents.generation import RewriteRejected, estimate_tokens
from intents.image import (
    LOST_SUBJECT_REPLY,
    MODEL_MISSING_REPLY,
    NO_LLM_REPLY,
    ImageIntent,
    glossary,
    key_terms,
    missing_terms,
    requested_image_overrides,
    rewrite_prompt,
)
from tests.support.builtin_intents import Intent
from tests.support.chat_driver import family_context
from tests.support.fake_images import FakeImages, png_bytes
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, at

REQUEST = "帮我画一只在雪地里的柴犬"
SHIBA = ("A fluffy Shiba Inu with a red-and-cream coat sits in fresh white snow, its curled tail wrapped "
         "around its paws, looking up with a gentle smile. Snow-covered pine trees fade into a pale winter "
         "sky behind it. Warm natural photograph, soft daylight, eye-level view.")
GENERIC_DOG = ("A fluffy dog with a red-and-cream coat sits in fresh white snow, looking up with a gentle "
               "smile. Snow-covered pine trees fade into a pale winter sky behind it. Warm photograph.")
NO_SNOW_SHIBA = "A fluffy Shiba Inu sits on a green lawn, looking up with a smile in warm light."
WRITER = "FLUX image prompt writer"
SMALL = {"sampling": {"height": 64, "width": 96, "steps": 2}, "queue": {"seconds_per_job": 2}}


# -- key nouns -----------------------------------------------------------------------------------------


def test_key_terms_come_from_the_glossary_and_longer_words_win() -> None:
    assert key_terms(REQUEST) == {"柴犬": ("Shiba Inu", "Shiba"), "雪地": ("snow", "snowy")}
    assert set(key_terms("画一只小熊猫")) == {"小熊猫"}  # not 熊猫 as well
    assert set(key_terms("画一只大熊猫和一只小熊猫")) == {"大熊猫", "小熊猫"}
    assert key_terms("画一朵云") == {}
    assert all(terms for terms in glossary().values())


def test_missing_terms_catches_a_generalised_subject() -> None:
    terms = key_terms(REQUEST)
    assert missing_terms(SHIBA, terms) == []
    assert missing_terms(GENERIC_DOG, terms) == ["柴犬"]
    assert missing_terms(NO_SNOW_SHIBA, terms) == ["雪地"]
    assert missing_terms("A SHIBA INU in snowy hills", terms) == []  # case-insensitive, "snowy" counts


def test_check_answer_strips_labels_and_rejects_lost_subjects() -> None:
    check = ImageIntent().check_answer
    assert check(f"Image prompt: {SHIBA}", REQUEST, None, estimate_tokens) == SHIBA
    with pytest.raises(RewriteRejected, match="柴犬 must be written as 'Shiba Inu'"):
        check(GENERIC_DOG, REQUEST, None, estimate_tokens)
    with pytest.raises(RewriteRejected, match="Chinese"):
        check("一只柴犬坐在雪地里，抬头微笑。", REQUEST, None, estimate_tokens)


def test_requested_overrides_seed_steps_orientation() -> None:
    assert requested_image_overrides("画柴犬，种子 42，8步", 576, 1024) == {"seed": 42, "steps": 8}
    assert requested_image_overrides("画一张竖版的柴犬", 576, 1024) == {"height": 1024, "width": 576}
    assert requested_image_overrides("画个正方形头像", 576, 1024) == {"height": 1024, "width": 1024}
    assert requested_image_overrides("画一只柴犬，10帧", 576, 1024) == {}


# -- the rewriter through the real LLM client and the fake OpenAI server ------------------------------


def context(llm: LLM, text: str = REQUEST) -> Context:
    return family_context(llm, text, earlier=("爸爸", "下雪啦，好冷"))


async def test_rewriter_prompt_names_the_terms_to_keep(fake_llm, llm) -> None:
    fake_llm.add(WRITER, SHIBA)
    assert await rewrite_prompt(context(llm)) == SHIBA
    [call] = fake_llm.calls()
    system, user = (m["content"] for m in call["messages"])
    assert "English only" in system and "柴犬 -> Shiba Inu" in system and "雪地 -> snow" in system
    assert "下雪啦，好冷" in user and REQUEST in user


async def test_a_dog_instead_of_a_shiba_is_corrected_once(fake_llm, llm) -> None:
    fake_llm.add(WRITER, GENERIC_DOG, times=1)
    fake_llm.add("previous answer was rejected", SHIBA)
    assert await rewrite_prompt(context(llm)) == SHIBA
    calls = fake_llm.calls()
    assert len(calls) == 2
    assert "柴犬 must be written as 'Shiba Inu'" in calls[1]["messages"][1]["content"]


async def test_losing_the_subject_twice_is_reported_not_drawn(fake_llm, llm) -> None:
    fake_llm.add(WRITER, GENERIC_DOG)
    with pytest.raises(UserInputError) as caught:
        await rewrite_prompt(context(llm))
    assert str(caught.value) == LOST_SUBJECT_REPLY.format(words="柴犬")
    assert len(fake_llm.calls()) == 2


async def test_rewriter_without_llm_says_so(fake_llm) -> None:
    fake_llm.fail_all(500)
    broken = LLM(LLMConfig(timeout_s=2, retries=0), Secrets(None, fake_llm.base_url, None, None))
    with pytest.raises(UserInputError) as caught:
        await rewrite_prompt(context(broken))
    assert str(caught.value) == NO_LLM_REPLY
    await broken.close()


# -- end to end through the Node Wechaty peer ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_flux_folder

    return build_flux_folder(tmp_path_factory.mktemp("flux") / "FLUX.1-schnell")


def script(fake_llm, answer: str = SHIBA, request: str = REQUEST) -> None:
    fake_llm.add(lambda req: WRITER in prompt_text(req), answer)
    fake_llm.classify(request, Intent.IMAGE.label)


async def wait_sent(peer, predicate, within: float = 30.0) -> dict:
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


def decode(message: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(message["file"]["base64"])))
    image.load()
    return image


def api_config(images: FakeImages, **extra: Any) -> dict[str, Any]:
    api = {"base_url": images.base_url, "model": "flux-test", "retries": 0}
    return {"image": {"backend": "api", "api": api, "queue": {"seconds_per_job": 2}, **extra}}


async def test_e2e_picture_from_the_tiny_in_process_flux(running_bot, peer, fake_llm, tiny_flux) -> None:
    script(fake_llm)
    async with running_bot({"image": {"model": {"path": str(tiny_flux)}, **SMALL}}):
        peer.say("alice", at() + REQUEST, room=FAMILY, mention=[BOT])
        ack = await wait_sent(peer, lambda m: "收到" in (m.get("text") or ""))
        picture = await wait_sent(peer, lambda m: m.get("file"), within=60)
    assert ack["room"] == FAMILY and ack["mentionIds"] == ["alice"]
    caption = next(m for m in peer.sent() if "画好啦" in (m.get("text") or ""))
    assert caption["mentionIds"] == ["alice"] and "Shiba Inu" not in caption["text"]
    assert "种子" not in caption["text"]  # the group sees the picture; details are for admins or "#详情"
    assert picture["room"] == FAMILY and picture["file"]["name"].endswith(".jpg")
    image = decode(picture)
    assert image.format == "JPEG" and image.size == (96, 64)


async def test_e2e_picture_from_the_images_api(running_bot, peer, fake_llm, images) -> None:
    images.picture = png_bytes(80, 48, (30, 90, 200))
    script(fake_llm)
    async with running_bot(api_config(images, encode={"format": "png"})):
        peer.say("bob", at() + REQUEST, room=FAMILY, mention=[BOT])
        picture = await wait_sent(peer, lambda m: m.get("file"))
    image = decode(picture)
    assert image.format == "PNG" and image.size == (80, 48) and image.getpixel((1, 1)) == (30, 90, 200)
    [sent] = images.requests
    assert sent["model"] == "flux-test" and "Shiba Inu" in sent["prompt"]
    assert images.headers[0]["authorization"] == "Bearer test-key"  # OPENAI_API_KEY as the fallback
    caption = next(m for m in peer.sent() if "画好啦" in (m.get("text") or ""))
    assert caption["mentionIds"] == ["bob"]


async def test_e2e_refused_prompt_is_explained(running_bot, peer, fake_llm, images) -> None:
    images.reset("refuse")
    script(fake_llm)
    async with running_bot(api_config(images)):
        peer.say("alice", at() + REQUEST, room=FAMILY, mention=[BOT])
        failure = await wait_sent(peer, lambda m: "没有生成成功" in (m.get("text") or ""))
    assert REFUSED_REPLY in failure["text"] and failure["mentionIds"] == ["alice"]
    assert not any(m.get("file") for m in peer.sent())


async def test_e2e_missing_model_is_explained(running_bot, peer, fake_llm, tmp_path) -> None:
    script(fake_llm)
    missing = {"image": {"model": {"path": str(tmp_path / "no-such-model")}}, "bot": {"admins": ["carol"]}}
    async with running_bot(missing):
        peer.say("alice", at() + REQUEST, room=FAMILY, mention=[BOT])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY and m.get("text"))
    assert MODEL_MISSING_REPLY in reply["text"]  # "我已经告诉管理员了": carol has the fix
    assert [m for m in peer.sent() if m["to"] == "carol"]
    assert fake_llm.calls("other") == []  # no rewrite was asked for a picture that cannot be drawn


async def test_e2e_daily_image_quota(running_bot, peer, fake_llm, images) -> None:
    script(fake_llm)
    async with running_bot({**api_config(images), "quotas": {"user_images_per_day": 1}}):
        peer.say("carol", at() + REQUEST, room=FAMILY, mention=[BOT])
        await wait_sent(peer, lambda m: m.get("file"))
        peer.say("carol", at() + REQUEST, room=FAMILY, mention=[BOT])
        refused = await wait_sent(peer, lambda m: "额度" in (m.get("text") or ""))
    assert "图片额度（1 个）" in refused["text"] and len(images.requests) == 1
