"""The console, `#状态` and `xiaoai doctor` agree on each check because they read one list, and what they
show passes the log's redaction: a gateway that refuses the token is "refused" everywhere (not "the port
answers"), the playground's demo models are green everywhere, and the token never appears in the page."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.channels.base import LoginStatus
from bot.config import AppConfig, Secrets
from bot.console.checks import StatusChecks, wechat_check
from bot.console.doctor import doctor_checks
from bot.logs import redactor
from tests.bot.test_console_api import Console
from tests.support.peer import NodePeer

TOKEN = "insecure_gateway_token_4f1c2a9e77"


def _config(tmp_path: Path, endpoint: str | None = None) -> AppConfig:
    data = {"data_dir": str(tmp_path / "data"), "video": {"model": {"path": str(tmp_path / "none")}},
            "wechaty": {"reconnect_initial_s": 0.2, "reconnect_max_s": 0.5}}
    if endpoint:
        data["wechaty"]["endpoint"] = endpoint
    return AppConfig.model_validate(data)


def test_doctor_says_refused_when_the_gateway_refuses_the_token(tmp_path: Path) -> None:
    with NodePeer() as peer:
        secrets = Secrets(puppet_endpoint=peer.endpoint, puppet_token="not-the-gateways-token-123")
        wrong = next(c for c in doctor_checks(_config(tmp_path), secrets) if c.key == "wechat")
        secrets = Secrets(puppet_endpoint=peer.endpoint, puppet_token=peer.token)
        right = next(c for c in doctor_checks(_config(tmp_path), secrets) if c.key == "wechat")
    assert not wrong.ok and "拒绝" in wrong.line() and "WECHATY_PUPPET_SERVICE_TOKEN" in wrong.line()
    assert "not-the-gateways-token-123" not in wrong.line("zh") + wrong.line("en")
    assert right.ok or "扫码" in right.line(), right.line()  # accepted: serving, or waiting for a scan


def test_doctor_and_the_playground_console_agree_on_the_demo_models(tmp_path: Path) -> None:
    from bot.runtime.playground import with_demo_models

    file_config = _config(tmp_path)
    doctor = {c.key: c for c in doctor_checks(file_config, Secrets())}
    running, labels = with_demo_models(file_config)  # what the playground serves
    console = {c.key: c for c in StatusChecks(lambda: running, Secrets(), demo_fallback=True).run()}
    assert labels, "the demo models were built"
    for key in ("video_weights", "image_weights"):
        assert doctor[key].ok and console[key].ok
        assert "演示模型" in doctor[key].as_dict()["detail"]
        assert "演示模型" in console[key].as_dict()["detail"]


async def test_the_console_never_shows_the_gateway_token(tmp_path: Path) -> None:
    redactor().add(TOKEN)  # as WechatyChannel does with its token
    console = Console(tmp_path, None)
    console.status = LoginStatus(state="disconnected", since=1.0,
                                 reason=f"UNAUTHENTICATED: token {TOKEN} is not accepted")
    try:
        await console.client.get("/admin/api/session")
        status = await console.client.get("/admin/api/status")
    finally:
        await console.client.aclose()
        console.jobs.store.close()
    assert TOKEN not in status.text
    connection = status.json()["connection"]
    assert connection["phase"] == "refused" and "***" in connection["reason"]
    check = wechat_check(console.status)
    assert not check.ok and TOKEN not in check.status_line()


async def test_status_command_lists_the_same_checks_in_plain_names(tmp_path: Path) -> None:
    from tests.bot.ops_doubles import ADMIN, make_app, message

    app, channel = make_app(tmp_path, "bot:\n  admins: [alice]\n")
    await app.dispatcher.on_message(message("#状态", sender=ADMIN, room=None))
    await asyncio.sleep(0)
    text = channel.private_texts(ADMIN)[-1] if channel.private_texts(ADMIN) else ""
    assert "语言模型" in text and "高德地图" in text and "磁盘" in text, text
    assert "Generator" not in text and "LLM：" not in text
