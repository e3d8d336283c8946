""""我已经告诉管理员了" only after a notice reached an admin, through the real Node peer: with no
`bot.admins` the group hears "管理员还没设置，…", with one the admin has the fix in a private chat first."""

from __future__ import annotations

import asyncio

import pytest

from bot.ops.notices import ADMINS_TOLD
from tests.support.builtin_intents import Intent
from tests.support.peer import BOT, CAROL, FAMILY, at

WEATHER = "明天北京会下雨吗"


async def ask(peer, text: str) -> str:
    seen = {m["id"] for m in peer.sent()}
    peer.say("alice", at() + text, room=FAMILY, mention=[BOT])
    reply = await asyncio.to_thread(
        peer.wait_for_sent, lambda m: m["room"] == FAMILY and m["id"] not in seen, 15)
    return reply["text"]


@pytest.fixture
def no_amap_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMAP_KEY", raising=False)


async def test_no_admins_configured_no_claim(running_bot, peer, fake_llm, no_amap_key):
    fake_llm.classify(WEATHER, Intent.WEATHER.label)
    async with running_bot():
        text = await ask(peer, WEATHER)
    assert ADMINS_TOLD not in text and "管理员还没设置" in text, text
    assert [m for m in peer.sent() if not m["room"]] == []


async def test_claim_only_after_the_admin_has_the_notice(running_bot, peer, fake_llm, no_amap_key):
    fake_llm.classify(WEATHER, Intent.WEATHER.label)
    async with running_bot({"bot": {"admins": [CAROL]}}):
        text = await ask(peer, WEATHER)
        private = [m for m in peer.sent() if m["to"] == CAROL]
        again = await ask(peer, WEATHER)  # the same problem within the repeat window: told already
    assert ADMINS_TOLD in text and ADMINS_TOLD in again
    assert len(private) == 1 and "AMAP_KEY" in private[0]["text"]
    first = next(m for m in peer.sent() if m["to"] == CAROL)
    group = next(m for m in peer.sent() if m["room"] == FAMILY)
    assert first["ts"] <= group["ts"]  # the notice went out before the group heard the claim


async def test_admin_unreachable_no_claim(running_bot, peer, fake_llm, no_amap_key):
    """An admin id the account cannot message (the puppet refuses the send): no claim either."""
    fake_llm.classify(WEATHER, Intent.WEATHER.label)
    async with running_bot({"bot": {"admins": ["nobody@unknown"]}}):
        text = await ask(peer, WEATHER)
    assert ADMINS_TOLD not in text and "没能通知到管理员" in text, text
