"""The playground never loses a line: the transcript survives a restart, a reconnecting page gets only
what it missed, a message sent twice (its answer was lost) is shown and answered once, member ids are
shown for `bot.admins`, and the daily picture/video quotas are off unless the config sets them."""

from __future__ import annotations

import json

from bot.channels.playground.transcript import Transcript
from tests.bot.test_playground import Page, playground
from tests.conftest import wait_until
from tests.support.builtin_intents import Intent


def messages(page: Page) -> list[tuple[int, str]]:
    return [(e["id"], e["text"]) for e in page.events if e["type"] == "message"]


async def test_the_conversation_is_replayed_after_a_restart(tmp_path, fake_llm):
    fake_llm.classify("在吗", Intent.CHAT.label)
    fake_llm.add("在吗", "在的～")
    sent_once = {"member_id": "grandma", "text": "@小爱 在吗", "client_id": "kept-1"}
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        await page.client.post("/api/messages", json=sent_once)
        await wait_until(lambda: page.bot_messages(), within=10)
        before = messages(page)
        hello = page.events[0]
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        resent = (await page.client.post("/api/messages", json=sent_once)).json()  # its answer was lost
        await page.say("mom", "我也在")
        await wait_until(lambda: len(messages(page)) == 3, within=5)
        after = messages(page)
        again = page.events[0]
    assert resent["id"] == before[0][0]  # known from the kept transcript: not shown or answered twice
    assert [t for _i, t in before] == ["@小爱 在吗", "在的～"]
    assert after[:2] == before and after[2][1] == "我也在" and after[2][0] > before[1][0]
    assert hello["type"] == "hello" and again["epoch"] == hello["epoch"]


async def test_a_reconnecting_page_gets_only_what_it_missed_and_a_new_file_resets_it(tmp_path, fake_llm):
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        for text in ("一", "二", "三"):
            await page.say("dad", text)
        await wait_until(lambda: len(messages(page)) == 3, within=5)
        first_id = messages(page)[0][0]
        epoch = page.events[0]["epoch"]

        async def replay(query: str) -> list[dict]:
            events = []
            async with page.client.stream("GET", f"/api/events?{query}") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                    if events and events[-1]["type"] == "typing":  # the replay is over
                        break
            return events

        missed = await replay(f"since={first_id}&epoch={epoch}")
        other = await replay(f"since={first_id + 2}&epoch=someotherfile")
    assert [e["text"] for e in missed if e["type"] == "message"] == ["二", "三"]
    assert missed[0] == {"type": "hello", "epoch": epoch, "reset": False}
    assert other[0]["reset"] is True
    assert [e["text"] for e in other if e["type"] == "message"] == ["一", "二", "三"]


async def test_a_message_sent_again_is_shown_and_answered_once(tmp_path, fake_llm):
    fake_llm.classify("讲个笑话", Intent.CHAT.label)
    fake_llm.add("讲个笑话", "从前有座山。")
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        body = {"member_id": "mom", "text": "@小爱 讲个笑话", "client_id": "c-1"}
        first = (await page.client.post("/api/messages", json=body)).json()
        second = (await page.client.post("/api/messages", json=body)).json()
        await wait_until(lambda: page.bot_messages(), within=10)
        await wait_until(lambda: not page.events[-1].get("on", False), within=10)
    assert first == second and first["client_id"] == "c-1"
    assert [t for _i, t in messages(page)].count("@小爱 讲个笑话") == 1
    assert len(page.bot_messages()) == 1 and len(fake_llm.calls("classify")) == 1


async def test_member_ids_are_shown_and_daily_quotas_are_off_by_default(tmp_path, fake_llm):
    async with playground(tmp_path, fake_llm) as (app, _channel, page):
        room = (await page.client.get("/api/room")).json()
        quotas = app.live_config().quotas
    assert [m["id"] for m in room["members"]] == ["mom", "dad", "grandma", "kid"]
    assert "bot.admins" in room["admin_hint"] and "mom" in room["admin_hint"]
    assert quotas.user_videos_per_day is None and quotas.group_images_per_day is None
    assert quotas.user_messages_per_minute == 6  # the message rate limit stays
    limited = {"quotas": {"user_videos_per_day": 1}}
    async with playground(tmp_path / "set", fake_llm, limited) as (app, _c, _p):
        assert app.live_config().quotas.user_videos_per_day == 1  # set in the file: kept


def test_the_transcript_is_bounded_and_an_unreadable_file_does_not_stop_it(tmp_path):
    path = tmp_path / "t.sqlite3"
    transcript = Transcript(path, limit=3)
    for n in range(5):
        transcript.append({"id": transcript.next_id(), "text": str(n)})
    transcript.close()
    reopened = Transcript(path, limit=3)
    assert [e["text"] for e in reopened.since()] == ["2", "3", "4"] and reopened.next_id() == 6
    reopened.close()
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)
    kept_in_memory = Transcript(broken)
    kept_in_memory.append({"id": kept_in_memory.next_id(), "text": "x"})
    assert kept_in_memory.path is None and [e["text"] for e in kept_in_memory.since()] == ["x"]
