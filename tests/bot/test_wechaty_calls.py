"""A mention costs the event loop one gRPC call in (the message's payload) and one out (the send), through
the real Node peer, which counts the calls it serves: no reload of the sent message, no payload fetched for
the echo of a reply, no room alias asked twice in a room. Room events and a new login ask again."""

from __future__ import annotations

import asyncio

from bot.pipeline.gates import RoomDirectory
from tests.conftest import wait_until
from tests.support.peer import ALICE, BOB, BOT, CAROL, FAMILY, OTHER_ACCOUNT, OTHER_ACCOUNT_NAME, at


async def wait_sent(peer, predicate, within=10.0):
    return await asyncio.to_thread(peer.wait_for_sent, predicate, within)


async def mention(peer, sender: str, text: str, account: str = BOT, name: str | None = None) -> dict:
    """@-mention the bot in the family room and wait for the reply to `sender`, and its echo."""
    peer.say(sender, (at(name) if name else at()) + text, room=FAMILY, mention=[account])
    reply = await wait_sent(peer, lambda m: m["room"] == FAMILY and sender in m["mentionIds"])
    await asyncio.sleep(0.3)  # the echo of the reply reaches the bot too
    return reply


async def test_a_mention_costs_one_payload_call_in_and_one_send_out(running_bot, peer, fake_llm):
    async with running_bot():
        await mention(peer, ALICE, "第一问")  # the room, the sender and the bot's room alias, once
        peer.reset()
        for n, sender in enumerate((BOB, ALICE, CAROL, BOB)):
            reply = await mention(peer, sender, f"第{n}问")
            assert "我知道啦" in reply["text"]
        calls = peer.calls()
    # one payload per incoming message: none to reload a sent message, none for the echoes of the replies
    assert calls.pop("MessagePayload") == 4 and calls.pop("MessageSendText") == 4, calls
    assert calls.pop("ContactPayload", 0) <= 2, calls  # bob and carol, the first time each speaks
    assert calls == {}, f"gRPC calls no mention needs: {calls}"


async def test_room_events_and_a_new_login_ask_again(running_bot, peer, fake_llm):
    async with running_bot() as app:
        directory = next(gate for gate in app.dispatcher.gates if isinstance(gate, RoomDirectory))
        await mention(peer, ALICE, "在吗")
        for event in ("join", "leave"):
            await asyncio.to_thread(peer.room_event, event, FAMILY, contact=CAROL)
            await asyncio.sleep(0.3)
            peer.reset()
            await mention(peer, ALICE, f"{event}之后")
            calls = peer.calls()
            assert calls.get("RoomPayload") == 1 and calls.get("RoomMemberPayload") == 1, (event, calls)
        await asyncio.to_thread(peer.room_event, "topic", FAMILY, topic="幸福一家人")
        await asyncio.sleep(0.3)
        await mention(peer, BOB, "改名之后")
        assert directory.ids.get("幸福一家人") == FAMILY, directory.ids

        # another account logs in: its own alias in the room is asked for, not the old account's kept
        await asyncio.to_thread(peer.logout)
        await wait_until(lambda: not app.channel.connected, within=5)
        await asyncio.to_thread(peer.login, OTHER_ACCOUNT)
        await wait_until(lambda: app.channel.connected, within=5)
        peer.reset()
        reply = await mention(peer, BOB, "你是谁", account=OTHER_ACCOUNT, name=OTHER_ACCOUNT_NAME)
        assert "我知道啦" in reply["text"]
        assert peer.calls().get("RoomMemberPayload") == 1, peer.calls()
