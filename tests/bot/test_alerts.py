"""Disconnect alerts: a real webhook receiver (and a real SMTP listener) on loopback, called once per
outage; the admins hear in WeChat when the connection is back."""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.ops.alerts import DisconnectAlerts, fill_template
from tests.bot.ops_doubles import ADMIN, WebhookServer, make_app
from tests.conftest import wait_until
from tests.support.app_parts import notices_of


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(url: str, after: float = 60, extra: str = "") -> str:
    return (f"bot:\n  admins: [{ADMIN}]\n"
            f"alerts:\n  disconnect_after_s: {after}\n  check_interval_s: 0.05\n"
            f"  webhook_url: {url}\n{extra}")


async def test_one_alert_per_outage_on_a_controlled_clock(tmp_path: Path, webhook: WebhookServer) -> None:
    app, channel = make_app(tmp_path, config(webhook.url))
    clock = Clock()
    alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected, state=lambda: None,
                              notices=notices_of(app), clock=clock, env={})
    channel.connected = False
    for t in (0, 30, 59):
        clock.now = 1000 + t
        await alerts.check()
    assert webhook.requests == []
    for t in (60, 61, 300):
        clock.now = 1000 + t
        await alerts.check()
    assert len(webhook.requests) == 1
    assert "断开 60 秒" in webhook.requests[0]["text"]
    # back: the admins are told in WeChat, not by webhook
    channel.connected = True
    clock.now += 1
    await alerts.check()
    assert len(webhook.requests) == 1
    assert "我回来啦" in channel.private_texts(ADMIN)[0] and "5分钟" in channel.private_texts(ADMIN)[0]
    # a second outage is a second alert
    channel.connected = False
    await alerts.check()
    clock.now += 61
    await alerts.check()
    assert len(webhook.requests) == 2


async def test_short_blips_do_not_alert(tmp_path: Path, webhook: WebhookServer) -> None:
    app, channel = make_app(tmp_path, config(webhook.url))
    clock = Clock()
    alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected, state=lambda: None,
                              notices=notices_of(app), clock=clock, env={})
    for t, up in ((0, False), (40, True), (50, False), (100, True), (110, False), (160, False)):
        clock.now, channel.connected = 1000 + t, up
        await alerts.check()
    assert webhook.requests == [] and channel.private_texts(ADMIN) == []


async def test_service_calls_the_webhook_once_in_real_time(tmp_path: Path, webhook: WebhookServer) -> None:
    app, channel = make_app(tmp_path, config(webhook.url, after=0.3))
    alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected, state=lambda: None,
                              notices=notices_of(app), env={})
    channel.connected = False
    await alerts.start()
    try:
        await wait_until(lambda: len(webhook.requests) == 1, within=3)
        await asyncio.sleep(0.5)
        assert len(webhook.requests) == 1
    finally:
        await alerts.stop()


async def test_webhook_json_template_and_env_url(tmp_path: Path, webhook: WebhookServer) -> None:
    shaped = '  webhook_json: {msgtype: text, text: {content: "$message"}, tags: ["$event", "$bot"]}\n'
    app, channel = make_app(tmp_path, config("http://127.0.0.1:9/unused", after=1, extra=shaped))
    clock = Clock()
    alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected, state=lambda: None,
                              notices=notices_of(app), clock=clock,
                              env={"XIAOAI_ALERT_WEBHOOK_URL": webhook.url})
    channel.connected = False
    await alerts.check()
    clock.now += 2
    await alerts.check()
    (body,) = webhook.requests
    assert body["msgtype"] == "text" and "断开" in body["text"]["content"]
    assert body["tags"] == ["disconnected", "小爱"]
    assert fill_template({"a": ["$x", 1]}, {"x": "y"}) == {"a": ["y", 1]}


async def test_webhook_failure_is_logged_not_raised(tmp_path: Path) -> None:
    server = WebhookServer(status=500)
    try:
        app, channel = make_app(tmp_path, config(server.url, after=1))
        clock = Clock()
        alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected,
                                  state=lambda: None, notices=notices_of(app), clock=clock, env={})
        channel.connected = False
        await alerts.check()
        clock.now += 2
        await alerts.check()  # retried, then logged
        assert len(server.requests) == 3 and alerts.sent == []
        clock.now += 100
        await alerts.check()
        assert len(server.requests) == 3  # still once per outage
    finally:
        server.close()


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to accept one plain message on loopback."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        self.messages: list[str] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 sink\r\n")
                while line := self.rfile.readline():
                    verb = line.decode().strip().upper()
                    if verb.startswith("EHLO") or verb.startswith("HELO"):
                        self.wfile.write(b"250 sink\r\n")
                    elif verb == "DATA":
                        self.wfile.write(b"354 go\r\n")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk.decode())
                        sink.messages.append("".join(data))
                        self.wfile.write(b"250 ok\r\n")
                    elif verb == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


async def test_smtp_route(tmp_path: Path) -> None:
    sink = SmtpSink()
    try:
        port = sink.server_address[1]
        smtp = (f"  smtp: {{host: 127.0.0.1, port: {port}, security: none, from_addr: bot@example.org,"
                " to: [mum@example.org]}\n")
        app, channel = make_app(tmp_path, config("null", after=1, extra=smtp))
        clock = Clock()
        alerts = DisconnectAlerts(app.live_config, connected=lambda: app.channel.connected,
                                  state=lambda: None, notices=notices_of(app), clock=clock, env={})
        channel.connected = False
        await alerts.check()
        clock.now += 2
        await alerts.check()
        assert len(sink.messages) == 1 and "Subject:" in sink.messages[0]
        assert alerts.sent == [("smtp", "disconnected")]
    finally:
        sink.shutdown()
        sink.server_close()


async def test_e2e_gateway_kept_down_alerts_once(running_bot, peer, fake_llm, webhook: WebhookServer) -> None:
    overrides = {"bot": {"admins": [ADMIN]},
                 "alerts": {"disconnect_after_s": 1.0, "check_interval_s": 0.1, "webhook_url": webhook.url}}
    async with running_bot(overrides) as app:
        peer.stop()  # the gateway goes away and stays away
        await wait_until(lambda: len(webhook.requests) == 1, within=8)
        assert not app.channel.connected
        await asyncio.sleep(1.5)
        assert len(webhook.requests) == 1
        peer.start()
        back = await asyncio.to_thread(
            peer.wait_for_sent, lambda m: m["room"] is None and m["to"] == ADMIN, 15)
    assert "我回来啦" in back["text"]
    assert len(webhook.requests) == 1
