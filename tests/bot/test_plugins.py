"""Intents as plugins: a user's intent written into a folder named in config is served like a built-in
one — the LLM's prompt lists it, the embedded classifier routes its phrases, `check-config` accepts it in
a room's `intents:` and the reply arrives through the Node peer — with no file of the repository edited.
A plugin that raises at import is skipped (the admins are told) and the bot serves on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, parse
from bot.plugin import IntentSpec, load_intents
from nlu.embedded import EmbeddedClassifier
from tests.support.builtin_intents import BUILTIN
from tests.support.fake_llm import is_classify, prompt_text
from tests.support.peer import BOT, FAMILY, at

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "bob"  # a contact of the peer
JOKE = '''
from bot.messages import Reply
from bot.plugin import IntentSpec


async def tell_joke(ctx) -> Reply:
    return Reply("小明问爸爸：我是不是傻孩子？爸爸说：傻孩子，你怎么会是傻孩子呢。")


INTENT = IntentSpec(name="joke", label="讲笑话", handler=tell_joke, describe="想听笑话、段子、逗乐的话",
                    examples=("讲个笑话", "来个段子", "说个笑话听听", "给我讲个好笑的", "逗我笑一下"))
'''
BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"
PUNCHLINE = "傻孩子"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "joke.py").write_text(JOKE, encoding="utf-8")
    return folder


def room_config(folder: Path) -> dict:
    return {"plugins": {"dirs": [str(folder)]}, "bot": {"admins": [ADMIN]},
            "groups": {"rooms": {FAMILY: {"intents": ["joke", "weather", "chat"]}}}}


def test_check_config_accepts_a_plugin_intent_in_a_room_and_rejects_it_without_the_folder(
        plugin_dir: Path, tmp_path: Path) -> None:
    text = (f"plugins:\n  dirs: [{plugin_dir}]\ngroups:\n  rooms:\n    family:\n"
            "      intents: [joke, chat]\n")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(ConfigError, match=r"groups\.rooms\.family\.intents（第 4 行）：.*没有这个功能：joke"):
        parse("groups:\n  rooms:\n    family:\n      intents: [joke, chat]\n")


def test_the_embedded_classifier_routes_a_plugin_phrase_to_it(plugin_dir: Path) -> None:
    intents = load_intents([plugin_dir])
    joke = intents["joke"]
    classifier = EmbeddedClassifier(intents)
    assert classifier.predict("给我讲个笑话吧").intent is joke
    assert classifier.predict("明天北京下雨吗").intent is intents["weather"]


async def test_a_plugin_intent_answers_through_the_peer(running_bot, peer, fake_llm,
                                                       plugin_dir: Path) -> None:
    fake_llm.classify("讲个笑话", "讲笑话")
    async with running_bot(room_config(plugin_dir)):
        peer.say("alice", at() + "讲个笑话", room=FAMILY, mention=[BOT])
        reply = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 15)
    assert PUNCHLINE in reply["text"]
    prompts = [prompt_text(r) for r in fake_llm.requests if is_classify(r)]
    assert prompts and "- 讲笑话：想听笑话、段子、逗乐的话" in prompts[-1]
    assert "- 天气：" in prompts[-1]


async def test_without_an_llm_the_embedded_classifier_brings_the_plugin_its_phrase(
        running_bot, peer, fake_llm, plugin_dir: Path) -> None:
    async with running_bot(room_config(plugin_dir), env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}):
        peer.say("alice", at() + "来个段子吧", room=FAMILY, mention=[BOT])
        reply = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 30)
    assert PUNCHLINE in reply["text"]
    assert not fake_llm.requests


async def test_a_plugin_that_raises_at_import_is_skipped_and_the_bot_serves(
        running_bot, peer, fake_llm, plugin_dir: Path) -> None:
    (plugin_dir / "broken.py").write_text(BROKEN, encoding="utf-8")
    intents = load_intents([plugin_dir])
    assert "joke" in intents.names and [f.source for f in intents.failures] == [str(plugin_dir / "broken.py")]
    assert "broken on purpose" in intents.failures[0].reason
    fake_llm.classify("讲个笑话", "讲笑话")
    async with running_bot(room_config(plugin_dir)):
        told = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] is None and m["to"] == ADMIN
                                       and "broken.py" in m["text"], 15)
        peer.say("alice", at() + "讲个笑话", room=FAMILY, mention=[BOT])
        reply = await asyncio.to_thread(peer.wait_for_sent, lambda m: m["room"] == FAMILY, 15)
    assert "没有加载" in told["text"] and "照常服务" in told["text"]
    assert PUNCHLINE in reply["text"]


def test_a_bad_declaration_or_a_taken_name_is_skipped(tmp_path: Path) -> None:
    clash = JOKE.replace('name="joke", label="讲笑话"', 'name="weather", label="段子"')
    (tmp_path / "clash.py").write_text(clash, encoding="utf-8")
    (tmp_path / "bad_name.py").write_text(JOKE.replace('name="joke"', 'name="Joke!"'), encoding="utf-8")
    intents = load_intents([tmp_path, tmp_path / "missing"])
    assert intents.names == BUILTIN.names
    reasons = " | ".join(f.reason for f in intents.failures)
    assert "clashes with intent weather" in reasons and "Joke!" in reasons and "no folder" in reasons


def test_the_registry_lists_the_fallback_last_and_checks_declarations() -> None:
    assert BUILTIN.fallback is BUILTIN.specs[-1] and BUILTIN.fallback.name == "chat"
    with pytest.raises(ValueError, match="follow_up"):
        IntentSpec(name="dance", label="跳舞", handler=print, describe="跳舞", follow_up="tango").check()
    with pytest.raises(ValueError, match="cue"):
        IntentSpec(name="dance", label="跳舞", handler=print, describe="跳舞", cues=("跳(",)).check()
