"""What the log keeps: the real `xiaoai run` process against the Node peer, with known secret values.

No secret may appear in its output (python-wechaty's own loggers print the token), group chatter and
message text stay out of INFO, and a wrong token gives a few lines that name the variable to fix.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loguru import logger

from bot.logs import MASK, ConnectionLog, Redactor, secret_values, setup_logging
from tests.support.builtin_intents import Intent
from tests.support.peer import BOT, FAMILY, NodePeer, at

GATEWAY_TOKEN = "gw-token-7Qm2Zp9Lx4Vb"
OPENAI_KEY = "sk-test-4c1d5e6f7a8b9c0d1e2f"
AMAP_KEY = "amap-key-90a8b7c6d5e4"
VIDEO_TOKEN = "video-token-f00dfeedbeef"
SECRETS = (GATEWAY_TOKEN, OPENAI_KEY, AMAP_KEY, VIDEO_TOKEN)
CHATTER = "今晚家里吃饺子别告诉外人"
QUESTION = "周末去哪玩比较好呢"


def run_bot(tmp_path: Path, endpoint: str, token: str, fake_llm, seconds: float | None = None,
            until=None, after: str | None = None) -> str:  # noqa: ANN001 - a callable run while the bot is up
    """`python -m bot run` with the secrets in its environment; returns everything it printed. It runs
    `until()`, or until it printed `after` (however slow the machine) and then `seconds` more."""
    config = tmp_path / "config.yaml"
    config.write_text(f"llm:\n  model: fake-model\ndata_dir: {tmp_path / 'd'}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WECHATY_", "XIAOAI_"))}
    env.update({
        "OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": OPENAI_KEY, "AMAP_KEY": AMAP_KEY,
        "XIAOAI_VIDEO_TOKEN": VIDEO_TOKEN, "WECHATY_PUPPET_SERVICE_ENDPOINT": endpoint,
        "WECHATY_PUPPET_SERVICE_TOKEN": token, "WECHATY_LOG": "info",
    })
    log = tmp_path / "bot.log"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        if until is not None:
            until()
        deadline = time.monotonic() + 90
        while after is not None and after not in log.read_text(encoding="utf-8"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.2)
        if seconds:
            time.sleep(seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return log.read_text(encoding="utf-8")


def test_a_conversation_logs_no_secret_and_no_message_text(tmp_path, fake_llm):
    fake_llm.classify(QUESTION, Intent.CHAT.label)
    fake_llm.add(QUESTION, "去公园放风筝吧！")
    with NodePeer(token=GATEWAY_TOKEN) as peer:
        def converse() -> None:
            peer.wait_for_client(timeout=60)
            time.sleep(0.5)
            peer.say("bob", CHATTER, room=FAMILY)  # group chatter, not for the bot
            peer.say("alice", at() + QUESTION, room=FAMILY, mention=[BOT])
            peer.wait_for_sent(lambda m: m["room"] == FAMILY, timeout=30)
            time.sleep(0.5)

        out = run_bot(tmp_path, peer.endpoint, GATEWAY_TOKEN, fake_llm, until=converse)
    leaked = [s for s in SECRETS if s in out]
    assert not leaked, out[-4000:]
    assert CHATTER not in out and QUESTION not in out, out[-4000:]
    assert "answered in" in out and FAMILY in out  # INFO keeps ids, room and timing
    assert "initPuppetEventBridge" not in out  # python-wechaty's chatter is DEBUG


def test_a_wrong_token_gives_few_lines_that_name_the_variable(tmp_path, fake_llm):
    with NodePeer(token=GATEWAY_TOKEN) as peer:
        out = run_bot(tmp_path, peer.endpoint, "wrong-token-3k4j5h6g", fake_llm, seconds=8,
                      after="WECHATY_PUPPET_SERVICE_TOKEN")
    lines = out.strip().splitlines()
    assert "wrong-token-3k4j5h6g" not in out and GATEWAY_TOKEN not in out
    assert "WECHATY_PUPPET_SERVICE_TOKEN" in out, out
    assert "refused" in out
    assert len(lines) <= 24, out  # one "starting …" line per service, then the refusal
    assert "-> connected" not in out  # no hopeful line before the refusal
    assert "Unclosed connection" not in out, out


def test_redactor_masks_known_values_and_secret_shapes():
    redactor = Redactor(secret_values({"WECHATY_PUPPET_SERVICE_TOKEN": "abcd1234", "HOME": "/root",
                                       "AMAP_KEY": "k"}))
    text = redactor.redact('Invalid Wechaty TOKEN "abcd1234" Authorization: Bearer eyJhbGciOi.x '
                           "GET /v3/weather?key=0123456789abcdef&city=1 sk-abcdefghijklmnop /root")
    assert "abcd1234" not in text and "eyJhbGciOi" not in text and "0123456789abcdef" not in text
    assert "sk-abcdefghijklmnop" not in text and text.count(MASK) == 4
    assert "/root" in text and "city=1" in text  # not secrets: left alone (and a one-letter key too)
    assert redactor.redact("unknown key: llm.modle") == "unknown key: llm.modle"


def test_a_retry_loop_is_summarised_and_recovery_is_one_line():
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    now = [0.0]
    log = ConnectionLog("wechaty", "127.0.0.1:1", every_s=60, clock=lambda: now[0])
    try:
        log.changed("stopped", "connecting")
        for _ in range(30):  # refused every 3 s for 90 s
            log.changed("connecting", "connected")
            log.changed("connected", "disconnected", "the gateway refused the token: UNAUTHENTICATED")
            log.changed("disconnected", "connecting")
            now[0] += 3
        log.changed("connected", "serving", "logged in as 小爱 (xiaoai)")
    finally:
        logger.remove()
        logger.add(sys.__stderr__)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 4, lines  # connecting, refused (with the fix), one summary, back
    assert "WECHATY_PUPPET_SERVICE_TOKEN" in lines[1]
    assert "still refused, 21 attempts in 60 s" in lines[2]
    assert "connected again after 30 failed attempts" in lines[3]
