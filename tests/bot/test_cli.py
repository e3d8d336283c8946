"""Acceptance through the real `xiaoai run --config PATH` process against the Node peer, configured only
by the four environment variables and a config file."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio

from tests.support.builtin_intents import Intent
from tests.support.fake_llm import prompt_text
from tests.support.peer import BOT, FAMILY, at
from tests.support.tiny_models import build_cogvideox_folder


@contextlib.contextmanager
def xiaoai_run(config_text: str, tmp_path: Path, peer, fake_llm) -> Iterator[subprocess.Popen]:
    """`python -m bot run --config PATH` with only the four environment variables; stops it with SIGTERM
    and checks it exits cleanly."""
    config = tmp_path / "config.yaml"
    config.write_text(config_text + f"data_dir: {tmp_path / 'd'}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WECHATY_"))}
    env.update({
        "OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "k",
        "WECHATY_PUPPET_SERVICE_ENDPOINT": peer.endpoint, "WECHATY_PUPPET_SERVICE_TOKEN": peer.token,
    })
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        peer.wait_for_client(timeout=60)
        time.sleep(0.5)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out[-3000:]


def test_xiaoai_run_answers_a_mention_and_ignores_the_rest(peer, fake_llm, tmp_path):
    fake_llm.classify("周末去哪玩", Intent.CHAT.label)
    fake_llm.add("周末去哪玩", "去公园放风筝吧！")
    config = "llm:\n  model: fake-model\ngroups:\n  allow: [相亲相爱一家人]\n"
    with xiaoai_run(config, tmp_path, peer, fake_llm):
        peer.say("bob", "周末天气不错", room=FAMILY)  # not addressed: silence
        peer.say("alice", at() + "周末去哪玩", room=FAMILY, mention=[BOT])
        reply = peer.wait_for_sent(lambda m: m["room"] == FAMILY, timeout=20)
        time.sleep(1.0)
        assert "放风筝" in reply["text"] and reply["mentionIds"] == ["alice"]
        assert len([m for m in peer.sent() if m["room"] == FAMILY]) == 1


def test_xiaoai_run_answers_a_video_request_with_an_ack_then_an_mp4(peer, fake_llm, tmp_path):
    model = build_cogvideox_folder(tmp_path / "tiny-cogvideox")
    fake_llm.classify("生成一个熊猫弹吉他的视频", Intent.VIDEO.label)
    fake_llm.add(lambda req: "CogVideoX prompt writer" in prompt_text(req),
                 "A gentle medium shot in soft morning light. A fluffy giant panda sits on a mossy rock and "
                 "strums a small wooden guitar with its paw. Tall green bamboo rises around it in the mist.")
    config = (f"llm:\n  model: fake-model\nvideo:\n  model:\n    path: {model}\n"
              "  sampling: {num_frames: 9, steps: 2, height: 64, width: 96}\n")
    with xiaoai_run(config, tmp_path, peer, fake_llm):
        peer.say("alice", at() + "生成一个熊猫弹吉他的视频", room=FAMILY, mention=[BOT])
        ack = peer.wait_for_sent(lambda m: "排队" in (m.get("text") or ""), timeout=30)
        video = peer.wait_for_sent(lambda m: bool(m.get("file")), timeout=90)
    assert ack["mentionIds"] == ["alice"]
    assert video["file"]["name"].endswith(".mp4")
    frames = iio.imread(base64.b64decode(video["file"]["base64"]), extension=".mp4")
    assert frames.shape[:3] == (9, 64, 96)


def test_a_restart_with_a_typo_keeps_serving_on_the_last_good_config(peer, fake_llm, tmp_path):
    from bot.config import load_resilient

    good = "llm:\n  model: fake-model\nbot:\n  admins: [carol]\n"
    config = tmp_path / "config.yaml"
    config.write_text(good + f"data_dir: {tmp_path / 'd'}\n", encoding="utf-8")
    load_resilient(config)  # an earlier run validated it
    fake_llm.classify("还在吗", Intent.CHAT.label)
    fake_llm.add("还在吗", "在的！")
    with xiaoai_run(good.replace("admins:", "admns:"), tmp_path, peer, fake_llm):
        notice = peer.wait_for_sent(lambda m: not m["room"] and "配置文件有错误" in (m.get("text") or ""),
                                    timeout=20)
        peer.say("alice", at() + "还在吗", room=FAMILY, mention=[BOT])
        reply = peer.wait_for_sent(lambda m: m["room"] == FAMILY, timeout=20)
    assert notice["to"] == "carol" and "bot.admns" in notice["text"]
    assert "在的" in reply["text"]
