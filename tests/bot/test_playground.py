"""The web playground channel: a real server on a free loopback port, the real app and router behind it,
the fake OpenAI-compatible server as the LLM. Members post over HTTP; replies arrive over SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import AppConfig
from bot.messages import Reply
from tests import conftest
from tests.conftest import wait_until
from tests.support.builtin_intents import Intent


class Page:
    """What one open browser tab sees: every event from /api/events."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        connected = asyncio.Event()

        async def listen() -> None:
            async with self.client.stream("GET", "/api/events", timeout=None) as response:
                connected.set()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))

        self._task = asyncio.create_task(listen())
        await asyncio.wait_for(connected.wait(), 5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def bot_messages(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "message" and e["from_bot"]]

    async def say(self, member_id: str, text: str) -> httpx.Response:
        return await self.client.post("/api/messages", json={"member_id": member_id, "text": text})


@contextlib.asynccontextmanager
async def playground(tmp_path: Path, fake_llm: Any, overrides: dict[str, Any] | None = None
                     ) -> AsyncIterator[tuple[Any, Any, Page]]:
    from bot.config import AppConfig, Secrets
    from bot.runtime.playground import build_playground

    playground_section = {"port": 0, "demo_models": False}
    data = conftest.test_config_data(tmp_path / "data", conftest.deep_merge(
        {"offline": {"playground": playground_section}}, overrides or {}))
    config = AppConfig.model_validate(data)
    secrets = Secrets.from_env({"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "test-key"})
    built = await asyncio.to_thread(build_playground, config, secrets)  # may build the demo model
    app, channel = built.app, built.channel
    url = channel.bind()
    task = asyncio.create_task(app.run())
    await wait_until(lambda: channel.connected or task.done(), within=10)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10) as client:
        page = Page(client)
        await page.open()
        try:
            yield app, channel, page
        finally:
            await page.close()
            app.stop()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)


async def raw_get(url: str, path: str) -> int:
    """GET `path` byte for byte (no client-side normalisation of '..'); returns the HTTP status."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def test_member_mentions_the_bot_and_the_reply_arrives_live(tmp_path, fake_llm):
    fake_llm.classify("讲个笑话", Intent.CHAT.label)
    fake_llm.add("讲个笑话", "从前有座山，山里有座庙。")
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        response = await page.say("mom", "@小爱 讲个笑话")
        assert response.status_code == 200
        await wait_until(lambda: page.bot_messages(), within=10)
        reply = page.bot_messages()[0]
        shown = [e for e in page.events if e["type"] == "message" and not e["from_bot"]]
        typing = [e["on"] for e in page.events if e["type"] == "typing"]
    assert shown[0]["sender_name"] == "妈妈" and shown[0]["text"] == "@小爱 讲个笑话"
    assert "从前有座山" in reply["text"] and reply["mentions"] == ["妈妈"]
    assert True in typing and typing[-1] is False  # "正在输入…" shown while working, then cleared
    classify_call = fake_llm.calls("classify")[0]
    assert "@小爱" not in classify_call["messages"][-1]["content"].rpartition("最新一条消息")[2]


async def test_messages_without_mention_are_shown_but_not_answered(tmp_path, fake_llm):
    async with playground(tmp_path, fake_llm) as (app, _channel, page):
        await page.say("dad", "今天晚上吃饺子")
        await page.say("kid", "@小爱同学 好的")  # not the bot's name unless configured as an alias
        await asyncio.sleep(1.0)
        history = app.dispatcher.history.recent("room:playground@chatroom", app.live_config().history)
    assert page.bot_messages() == []
    assert [e.text for e in history] == ["今天晚上吃饺子", "@小爱同学 好的"]
    assert fake_llm.calls() == []


async def test_bad_posts_are_refused(tmp_path, fake_llm):
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        assert (await page.say("stranger", "@小爱 你好")).status_code == 400
        assert (await page.say("mom", "   ")).status_code == 400
        assert (await page.say("mom", "")).status_code == 422
        room = (await page.client.get("/api/room")).json()
    assert [m["name"] for m in room["members"]] == ["妈妈", "爸爸", "奶奶", "小明"]


async def test_page_and_media_are_served_and_traversal_is_refused(tmp_path, fake_llm):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve", encoding="utf-8")
    async with playground(tmp_path, fake_llm) as (app, channel, page):
        media = app.live_config().data_dir / "media"
        (media / "video").mkdir(parents=True)
        (media / "video" / "ok.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
        (media / "link.txt").symlink_to(secret)
        index = await page.client.get("/")
        script = await page.client.get("/static/app.js")
        ok = await page.client.get("/media/video/ok.mp4")
        statuses = [await raw_get(channel.url, path) for path in (
            "/media/../secret.txt", "/media/../../secret.txt", "/media/..%2F..%2Fsecret.txt",
            "/media/%2e%2e/%2e%2e/secret.txt", "/media//etc/passwd", "/media/link.txt",
            "/media/video/../../secret.txt", "/media/video", "/static/..%2Fplayground.py",
        )]
    assert index.status_code == 200 and "小爱" in index.text and "/static/app.js" in index.text
    assert script.status_code == 200 and "EventSource" in script.text
    assert ok.status_code == 200 and ok.content.startswith(b"\x00\x00\x00\x18ftyp")
    assert statuses == [404] * len(statuses)
    assert channel.media_path("../secret.txt") is None
    assert channel.media_path("video/ok.mp4") == (media / "video" / "ok.mp4").resolve()


async def test_files_are_shown_inline_and_outside_files_are_copied_in(tmp_path, fake_llm):
    outside = tmp_path / "elsewhere" / "cat.png"
    outside.parent.mkdir()
    outside.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    async with playground(tmp_path, fake_llm) as (_app, channel, page):
        media = channel.media_dir
        (media / "video").mkdir(parents=True, exist_ok=True)
        inside = media / "video" / "panda.mp4"
        inside.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        await channel.send(channel.chat, Reply("好啦", inside, ("kid",)))
        await channel.send(channel.chat, Reply("", outside))
        await wait_until(lambda: len(page.bot_messages()) == 2, within=5)
        video, image = page.bot_messages()
        fetched = await page.client.get(image["media"]["url"])
    assert video["media"] == {"url": "/media/video/panda.mp4", "kind": "video", "name": "panda.mp4"}
    assert video["mentions"] == ["小明"] and video["text"] == "好啦"
    assert image["media"]["kind"] == "image" and image["media"]["url"].startswith("/media/playground/")
    assert fetched.status_code == 200 and fetched.content == outside.read_bytes()


async def test_a_page_that_connects_later_sees_the_recent_messages(tmp_path, fake_llm):
    fake_llm.classify("在吗", Intent.CHAT.label)
    fake_llm.add("在吗", "在的～")
    async with playground(tmp_path, fake_llm) as (_app, _channel, page):
        await page.say("grandma", "@小爱 在吗")
        await wait_until(lambda: page.bot_messages(), within=10)
        late = Page(page.client)
        await late.open()
        await wait_until(lambda: late.bot_messages(), within=5)
        await late.close()
    assert [e["text"] for e in late.events if e["type"] == "message"] == ["@小爱 在吗", "在的～"]


PANDA_PROMPT = ("A gentle medium shot in soft morning light. A fluffy giant panda sits on a mossy rock "
                "holding a small wooden guitar. It strums the strings with its paw. Tall green bamboo "
                "rises around it.")


def script_panda_video_without_weights(tmp_path: Path, fake_llm: Any, monkeypatch: pytest.MonkeyPatch
                                       ) -> dict[str, Any]:
    """No real weights anywhere, the panda request classified as video and rewritten to PANDA_PROMPT;
    returns the config overrides that turn the playground's demo models on."""
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "no-modelscope"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    fake_llm.classify("熊猫弹吉他", Intent.VIDEO.label)
    fake_llm.add("CogVideoX prompt writer", PANDA_PROMPT)
    return {"offline": {"playground": {"demo_models": True}}}


def shrink_video(app: Any) -> None:
    """Smaller than the demo model's defaults still: seconds on a busy CI CPU."""
    video = app.live_config().video
    app.live_config.apply(app.live_config().model_copy(update={"video": video.model_copy(update={
        "sampling": video.sampling.model_copy(update={"height": 64, "width": 96, "steps": 2})})}))


async def test_video_request_without_weights_runs_on_the_labelled_demo_model(tmp_path, fake_llm, monkeypatch):
    overrides = script_panda_video_without_weights(tmp_path, fake_llm, monkeypatch)
    async with playground(tmp_path, fake_llm, overrides) as (app, channel, page):
        assert "demo-models" in str(app.live_config().video.model.path)
        shrink_video(app)
        await page.say("kid", "@小爱 生成一个熊猫弹吉他的视频")
        await wait_until(lambda: any(m["media"] for m in page.bot_messages()), within=120)
        ack, *_rest = page.bot_messages()
        video = next(m for m in page.bot_messages() if m["media"])
        mp4 = await page.client.get(video["media"]["url"])
        room = (await page.client.get("/api/room")).json()
    assert "排队" in ack["text"] and ack["mentions"] == ["小明"]
    assert video["media"]["kind"] == "video" and video["media"]["url"].startswith("/media/video/")
    assert "演示模型" in video["text"] and "噪声" in video["text"]
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
    assert "演示模型" in room["notice"]



async def test_picture_request_without_weights_runs_on_the_labelled_demo_model(tmp_path, fake_llm,
                                                                             monkeypatch):
    import io

    from PIL import Image

    overrides = script_panda_video_without_weights(tmp_path, fake_llm, monkeypatch)
    fake_llm.classify("画一只在雪地里的柴犬", Intent.IMAGE.label)
    fake_llm.add("FLUX image prompt writer", "A fluffy Shiba Inu sits in fresh white snow under a pale sky, "
                 "looking up with a gentle smile, soft daylight, eye-level photograph.")
    async with playground(tmp_path, fake_llm, overrides) as (app, channel, page):
        assert "demo-models" in str(app.live_config().image.model.path)
        await page.say("mom", "@小爱 帮我画一只在雪地里的柴犬")
        await wait_until(lambda: any(m["media"] for m in page.bot_messages()), within=120)
        picture = next(m for m in page.bot_messages() if m["media"])
        data = (await page.client.get(picture["media"]["url"])).content
    assert picture["media"]["kind"] == "image" and "演示模型" in picture["text"]
    assert Image.open(io.BytesIO(data)).size == (448, 256)

def test_the_playground_only_listens_on_loopback():
    from bot.config import ConfigError, parse

    with pytest.raises(ConfigError, match="host"):
        parse("offline:\n  playground:\n    host: 0.0.0.0\n")


async def test_run_without_gateway_or_key_serves_the_playground_and_answers(tmp_path):
    """`xiaoai run` on a fresh machine (no env at all): the playground URL is printed and a question typed
    there is answered (the embedded classifier picks the intent; no LLM is needed)."""
    import os
    import re
    import signal
    import sys

    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\noffline:\n  playground:\n    port: 0\n"
                      "    demo_models: false\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "WECHATY_", "XIAOAI_", "AMAP_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), env=env,
        cwd=str(Path(__file__).parents[2]), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        printed: list[str] = []
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "exited early:\n" + "".join(printed)
            printed.append(line)
            found = re.search(r"playground: (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10) as client:
            page = Page(client)
            await page.open()
            await page.say("grandma", "@小爱 明天杭州会下雨吗")
            await wait_until(lambda: page.bot_messages(), within=60)
            await page.close()
            reply = page.bot_messages()[0]
        rest = (await asyncio.wait_for(proc.stdout.read(2000), 5)).decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    assert reply["mentions"] == ["奶奶"] and reply["text"]
    assert "make gateway" in "".join(printed) + rest  # how to connect WeChat instead


async def test_an_edited_config_keeps_the_demo_model(tmp_path, fake_llm, monkeypatch):
    overrides = script_panda_video_without_weights(tmp_path, fake_llm, monkeypatch)
    async with playground(tmp_path, fake_llm, overrides) as (app, channel, page):
        demo = app.live_config().video.model.path
        edited = AppConfig.model_validate(conftest.test_config_data(app.live_config().data_dir, overrides))
        assert edited.video.model.path is None  # what the watcher would apply after an admin's edit
        app.live_config.apply(edited)
        assert app.live_config().video.model.path == demo
