"""Acceptance for the core: the real `xiaoai run --config PATH` process against the Node peer, configured
only by the four environment variables and a config file with `llm.model` and `groups.allow`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from intents import Intent
from tests.support.peer import BOT, FAMILY, at

REPO = Path(__file__).resolve().parents[2]


def test_xiaoai_run_answers_a_mention_and_ignores_the_rest(peer, fake_llm, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"llm:\n  model: fake-model\ngroups:\n  allow: [相亲相爱一家人]\ndata_dir: {tmp_path / 'd'}\n",
        encoding="utf-8",
    )
    fake_llm.classify("周末去哪玩", Intent.CHAT.value)
    fake_llm.add("周末去哪玩", "去公园放风筝吧！")
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
        peer.say("bob", "周末天气不错", room=FAMILY)  # not addressed: silence
        peer.say("alice", at() + "周末去哪玩", room=FAMILY, mention=[BOT])
        reply = peer.wait_for_sent(lambda m: m["room"] == FAMILY, timeout=20)
        time.sleep(1.0)
        assert "放风筝" in reply["text"] and reply["mentionIds"] == ["alice"]
        assert len([m for m in peer.sent() if m["room"] == FAMILY]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out[-3000:]
