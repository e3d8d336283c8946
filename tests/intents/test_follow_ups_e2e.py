"""Follow-ups that lean on the previous turn, with no LLM configured at all, through the Node Wechaty
peer and the real bot: the embedded classifier and the rule-based slots do everything."""

from __future__ import annotations

import asyncio

import pytest

from tests.intents.test_amap_e2e import ask, overrides
from tests.support.peer import BOT, FAMILY, at

NO_LLM = {"OPENAI_BASE_URL": None, "OPENAI_API_KEY": None}
SMALL_VIDEO = {"num_frames": 9, "steps": 2, "height": 64, "width": 96}
SMALL_IMAGE = {"steps": 2, "height": 64, "width": 96}


async def test_then_by_car_keeps_both_places_and_a_bare_city_question_is_answered(running_bot, peer, fake_llm,
                                                                                 amap) -> None:
    async with running_bot(overrides(amap), env=NO_LLM):
        walk = await ask(peer, "从天安门走到王府井怎么走")
        drive = await ask(peer, "那开车呢")
        weather = await ask(peer, "北京现在多少度", sender="bob")
    assert walk.startswith("从天安门步行到王府井")
    assert "天安门" in drive and "王府井" in drive and ("开车" in drive or "驾车" in drive), drive
    assert "北京" in weather and "天气" in weather and "哪个城市" not in weather
    assert fake_llm.calls() == []


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tests.support.tiny_models import build_cogvideox_folder, build_flux_folder

    root = tmp_path_factory.mktemp("models")
    return build_flux_folder(root / "FLUX.1-schnell"), build_cogvideox_folder(root / "tiny-2b")


async def test_a_picture_then_make_it_a_video_keeps_the_subject(running_bot, peer, fake_llm,
                                                                tiny_models) -> None:
    flux, cogvideox = tiny_models
    config = {"image": {"model": {"path": str(flux)}, "sampling": SMALL_IMAGE},
              # show_prompt: the ack shows the words the video was made from (the subject kept)
              "video": {"model": {"path": str(cogvideox)}, "sampling": SMALL_VIDEO, "show_prompt": True}}
    async with running_bot(config, env=NO_LLM):
        peer.say("alice", at() + "画一只柴犬", room=FAMILY, mention=[BOT])
        await asyncio.to_thread(peer.wait_for_sent, lambda m: m.get("file"), 90)
        before = {m["id"] for m in peer.sent()}
        peer.say("alice", at() + "换成视频吧", room=FAMILY, mention=[BOT])
        ack = await asyncio.to_thread(
            peer.wait_for_sent, lambda m: m["id"] not in before and "视频" in (m.get("text") or ""), 60)
        video = await asyncio.to_thread(
            peer.wait_for_sent, lambda m: (m.get("file") or {}).get("name", "").endswith(".mp4"), 120)
    assert "柴犬" in ack["text"] and ack["mentionIds"] == ["alice"]
    assert video["room"] == FAMILY
    assert fake_llm.calls() == []
