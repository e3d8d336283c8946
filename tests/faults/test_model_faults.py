"""A broken model folder through the real `xiaoai run` process and the Node peer: a truncated
`.safetensors` file (a download cut short) answers the group with a short plain line, and the admin
gets the folder and the loader's own error by private message."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import to_admin, wait_sent
from tests.intents.test_video_e2e import CAT, SMALL, script
from tests.support.peer import BOT, FAMILY, at

ADMIN = "carol"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_cogvideox_folder

    return build_cogvideox_folder(tmp_path_factory.mktemp("cogvideox") / "tiny-2b")


def truncated_copy(model: Path, component: str, into: Path) -> Path:
    """A copy of `model` whose `component` weights file is cut in half."""
    folder = shutil.copytree(model, into / "broken-2b")
    weights = next((folder / component).glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return folder


def is_plain(text: str) -> bool:
    """No path, no English library text, no class name: the words a grandparent can read."""
    return "/" not in text and not re.search(r"[A-Za-z_]{3,}", text) and len(text) <= 60


# a diffusers component (diffusers wraps the safetensors error in OSError) and a transformers one
# (safetensors' own SafetensorError reaches the loader)
@pytest.mark.slow
@pytest.mark.parametrize("component", ["transformer", "text_encoder"])
def test_truncated_weights_answer_plainly_and_tell_the_admin(bot_process, peer, fake_llm, tiny_model,
                                                            tmp_path, component):
    folder = truncated_copy(tiny_model, component, tmp_path)
    script(fake_llm, "猫的视频", CAT)
    bot_process({"bot": {"admins": [ADMIN]}, "video": {"model": {"path": str(folder)}, "sampling": SMALL}})
    peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])

    def failed(message: dict) -> bool:
        text = message.get("text") or ""
        return message.get("room") == FAMILY and "alice" in message["mentionIds"] and "排队" not in text

    reply = wait_sent(peer, failed, timeout=90)
    said = reply["text"].split(" ", 1)[-1]  # after "@妈妈 "
    assert "文件坏了" in said and "告诉管理员" in said and is_plain(said), said  # plain: no "模型"
    notice = wait_sent(peer, lambda m: to_admin(m, ADMIN) and str(folder) in (m.get("text") or ""),
                       timeout=20)["text"]
    assert "加载失败" in notice, notice
    assert "SafetensorError" in notice, notice  # the file's own complaint, also under diffusers' OSError
    group_texts = [m.get("text") or "" for m in peer.sent() if m.get("room")]
    assert not [t for t in group_texts if str(folder) in t or "Error" in t or "safetensors" in t]
    assert not [m for m in peer.sent() if m.get("file")]
