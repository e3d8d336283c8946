"""WeChat sessions drop every day or two: a logout, a new QR code and a login (as the same account or
another one) on the same running gateway, handled by the channel without a restart. Through the real
Node peer with the mock puppet's logout/login."""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from bot.channels.wechaty.channel import ChannelUnavailable
from bot.messages import ChatRef, Reply
from tests.bot.ops_doubles import WebhookServer
from tests.conftest import wait_until
from tests.support.peer import ALICE, BOB, BOT, BOT_NAME, FAMILY, OTHER_ACCOUNT, OTHER_ACCOUNT_NAME, at


async def wait_sent(peer, predicate, within=10.0):
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


def captured_log() -> tuple[list[str], int]:
    lines: list[str] = []
    return lines, logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}")


async def test_logout_then_login_serves_again_within_5s_without_restart(running_bot, peer, fake_llm):
    lines, sink = captured_log()
    try:
        async with running_bot() as app:
            channel = app.channel
            await asyncio.to_thread(peer.logout)
            await wait_until(lambda: not channel.connected, within=5)
            status = channel.login_status()
            assert status.state == "logged_out" and status.account is None
            with_qr = await asyncio.to_thread(peer.scan, "https://login.weixin.qq.com/l/new-code")
            await wait_until(lambda: channel.login_status().qr_code == with_qr["qrcode"], within=5)
            # a send while logged out says so, in words that agree with the state
            try:
                await channel.send(ChatRef(FAMILY, True), Reply("test"))
                raise AssertionError("a send while logged out must fail")
            except ChannelUnavailable as exc:
                assert "logged out" in str(exc) and "(connected)" not in str(exc)

            await asyncio.to_thread(peer.login)
            logged_in = time.monotonic()
            peer.reset()
            await wait_until(lambda: channel.connected, within=5)
            peer.say(ALICE, at() + "还在吗", room=FAMILY, mention=[BOT])
            reply = await wait_sent(peer, lambda m: m["room"] == FAMILY, within=5)
            served_after = time.monotonic() - logged_in
            assert "我知道啦" in reply["text"]
            status = channel.login_status()
            assert status.state == "serving" and status.qr_code is None and BOT in (status.account or "")
    finally:
        logger.remove(sink)
    assert served_after < 5, f"served {served_after:.1f} s after the login"
    assert not [line for line in lines if "internal error" in line], lines
    states = [s for _, s, _ in channel.state_changes]
    assert states.count("serving") == 2 and "logged_out" in states


async def test_login_as_another_account_moves_the_self_id_and_echo_gate(running_bot, peer, fake_llm):
    async with running_bot() as app:
        channel = app.channel
        await asyncio.to_thread(peer.logout)
        await wait_until(lambda: not channel.connected, within=5)
        await asyncio.to_thread(peer.login, OTHER_ACCOUNT)
        await wait_until(lambda: channel.connected, within=5)
        assert OTHER_ACCOUNT_NAME in (channel.login_status().account or "")
        peer.reset()
        # the new account is mentioned: answered, its own echo is not
        peer.say(BOB, at(OTHER_ACCOUNT_NAME) + "在吗", room=FAMILY, mention=[OTHER_ACCOUNT])
        first = await wait_sent(peer, lambda m: m["room"] == FAMILY)
        assert BOB in first["mentionIds"]
        # the old account is a family member now: its @-mention of the new one is answered
        peer.say(BOT, at(OTHER_ACCOUNT_NAME) + "你是谁", room=FAMILY, mention=[OTHER_ACCOUNT])
        second = await wait_sent(peer, lambda m: m["room"] == FAMILY and BOT in m["mentionIds"])
        # and a message typed on the new account's own phone (its echo) is never answered
        peer.say(OTHER_ACCOUNT, at(OTHER_ACCOUNT_NAME) + "我自己说的", room=FAMILY, mention=[OTHER_ACCOUNT])
        await asyncio.sleep(1.5)
        assert len([m for m in peer.sent() if m["room"] == FAMILY]) == 2, peer.sent()
        assert second["text"]


async def test_disconnect_alert_names_the_one_state(running_bot, peer, fake_llm):
    webhook = WebhookServer()
    try:
        alerts = {"disconnect_after_s": 0.5, "check_interval_s": 0.1, "webhook_url": webhook.url}
        overrides = {"alerts": alerts}
        async with running_bot(overrides) as app:
            await asyncio.to_thread(peer.logout)
            await wait_until(lambda: webhook.requests, within=10)
            text = webhook.requests[0]["text"]
            assert "退出了登录" in text and "connected" not in text, text
            assert app.channel.login_status().state == "logged_out"
    finally:
        webhook.close()


async def test_bot_names_follow_the_account(running_bot, peer, fake_llm):
    """A typed "@小美" reaches the bot once it is logged in as 小美 (the names come from the login)."""
    async with running_bot() as app:
        await asyncio.to_thread(peer.logout)
        await wait_until(lambda: not app.channel.connected, within=5)
        await asyncio.to_thread(peer.login, OTHER_ACCOUNT)
        await wait_until(lambda: app.channel.connected, within=5)
        peer.reset()
        peer.say(ALICE, f"@{OTHER_ACCOUNT_NAME} 在吗", room=FAMILY, mention=[])
        reply = await wait_sent(peer, lambda m: m["room"] == FAMILY)
        assert ALICE in reply["mentionIds"] and BOT_NAME not in reply["text"]
