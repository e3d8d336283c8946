"""Router edge cases with the real app over an in-memory channel (no peer, no LLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.messages import Reply
from tests.bot.ops_doubles import FAMILY_ID, make_app, message
from tests.support.builtin_intents import Intent

CONFIG = "bot:\n  name: 小爱\n"


async def test_bare_mention_keeps_the_latest_line_in_the_transcript(tmp_path: Path) -> None:
    # "@小爱" alone has no text, so it is not in the history: the line before it must stay in the prompt
    app, channel = make_app(tmp_path, CONFIG)
    transcripts: list[str] = []

    async def classifier(ctx: Any) -> Intent:
        transcripts.append(ctx.transcript)
        return Intent.CHAT

    async def chat(ctx: Any) -> Reply:
        return Reply("好的")

    app.dispatcher.classify = classifier
    saved, Intent.CHAT.handler = Intent.CHAT.handler, chat
    try:
        await app.dispatcher.on_message(message("明天去哪儿玩好呢", sender="alice", mentioned=False))
        await app.dispatcher.on_message(message("", sender="bob"))
        await app.dispatcher.on_message(message("你说呢", sender="bob"))
    finally:
        Intent.CHAT.handler = saved
    assert len(transcripts) == 2 and "alice: 明天去哪儿玩好呢" in transcripts[0]
    assert "你说呢" not in transcripts[1] and "alice: 明天去哪儿玩好呢" in transcripts[1]  # not itself
    assert channel.texts(FAMILY_ID) == ["好的", "好的"]


async def test_a_replaced_llm_client_is_closed_once_its_calls_must_have_ended() -> None:
    import asyncio

    from bot.config import AppConfig, Secrets
    from bot.config.live import LiveConfig
    from bot.llm import LiveLLM

    config = AppConfig.model_validate({"llm": {"timeout_s": 0.1, "retries": 0}})
    live, llm = LiveConfig(config), LiveLLM(config.llm, Secrets.from_env({"OPENAI_API_KEY": "k"}))
    live.subscribe(llm.on_config)
    old = llm()
    live.apply(config.model_copy(update={"llm": config.llm.model_copy(update={"model": "other"})}))
    assert llm() is not old and not old._client.is_closed()  # calls in flight may still use it
    await asyncio.sleep(1.5)
    assert old._client.is_closed() and not llm()._client.is_closed()
