"""gateway/index.js: the Node PuppetServer we ship, and its test scenario (CPU only, a few seconds each).

The gRPC checks talk to the gateway with python-wechaty's own stubs (wechaty_grpc over grpclib, the token in
:authority, as wechaty-puppet-service 0.8.10 does), without the bot.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

try:
    import tests.support.peer  # noqa: F401
except ModuleNotFoundError:  # plain `pytest` without the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.peer import (
    ALICE,
    BOB,
    BOT,
    BOT_ROOM_ALIAS,
    FAMILY,
    GATEWAY_DIR,
    OTHER,
    OTHER_ACCOUNT,
    NodePeer,
    PeerError,
    at,
    ensure_node_modules,
    free_port,
)

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node + npm"
)

EVENT_MESSAGE = 2  # wechaty_grpc EventType values
EVENT_LOGIN = 25


@pytest.fixture(scope="module")
def peer():
    with NodePeer() as p:
        yield p


@pytest.fixture(autouse=True)
def _clean_sent(request):
    if "peer" in request.fixturenames:
        request.getfixturevalue("peer").reset()


# --------------------------------------------------------------------------------------------- helpers
class GrpcClient:
    """Minimal puppet-service client: Stop + Start + Event stream, like python-wechaty on connect."""

    def __init__(self, endpoint: str, token: str) -> None:
        from grpclib.client import Channel
        from wechaty_grpc.wechaty import PuppetStub

        host, port = endpoint.rsplit(":", 1)
        self.channel = Channel(host=host, port=int(port))
        self.channel._authority = token  # what wechaty-puppet-service (python) does
        self.stub = PuppetStub(self.channel)
        self.events: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def connect(self) -> None:
        try:
            await self.stub.stop()
        finally:
            await self.stub.start()

        async def pump() -> None:
            async for ev in self.stub.event():
                await self.events.put((time.monotonic(), int(ev.type), json.loads(ev.payload)))

        self._task = asyncio.create_task(pump())

    async def next_event(self, etype: int, within: float = 5.0) -> tuple[float, dict]:
        deadline = time.monotonic() + within
        while True:
            t, typ, payload = await asyncio.wait_for(
                self.events.get(), max(0.01, deadline - time.monotonic())
            )
            if typ == etype:
                return t, payload

    async def drain(self, etype: int, quiet: float = 0.5) -> list[dict]:
        got = []
        while True:
            try:
                _, typ, payload = await asyncio.wait_for(self.events.get(), quiet)
            except TimeoutError:
                return got
            if typ == etype:
                got.append(payload)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: BLE001 - cancelled / stream closed
                pass
        self.channel.close()


async def _connected(peer: NodePeer) -> GrpcClient:
    client = GrpcClient(peer.endpoint, peer.token)
    await client.connect()
    _, login = await client.next_event(EVENT_LOGIN)
    assert login == {"contactId": BOT}
    await asyncio.to_thread(peer.wait_for_client, 5)
    return client


def _run_gateway(env_extra: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """Run `node gateway/index.js` to completion with a clean WECHATY_* environment."""
    ensure_node_modules()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHATY_", "XIAOAI_"))}
    env.update(env_extra)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["node", str(GATEWAY_DIR / "index.js")],
        cwd=GATEWAY_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


# --------------------------------------------------------------------------------------------- control API
def test_starts_with_mock_puppet_and_reports_health(peer):
    h = peer.health()
    assert h["loggedIn"] is True
    assert h["botId"] == BOT
    assert {c["id"]: c["name"] for c in h["contacts"]} == {
        BOT: "小爱",
        OTHER_ACCOUNT: "小美",
        ALICE: "妈妈",
        BOB: "爸爸",
        "carol": "奶奶",
    }
    assert {r["id"]: r["topic"] for r in h["rooms"]} == {FAMILY: "相亲相爱一家人", OTHER: "工作群"}
    assert peer.start_seconds is not None and peer.start_seconds < 15
    assert "gateway ready" in peer.logs()
    assert peer.endpoint == f"127.0.0.1:{peer.port}"


def test_say_validates_input(peer):
    with pytest.raises(PeerError, match="400"):
        peer.say("nobody", "hi", room=FAMILY)
    with pytest.raises(PeerError, match="400"):
        peer.say(ALICE, "hi", room="nowhere@chatroom")
    with pytest.raises(PeerError, match="400"):
        peer.say(ALICE, "hi", room=FAMILY, mention=["ghost"])
    with pytest.raises(PeerError, match="400"):
        peer.say(ALICE, "hi", room=FAMILY, type="video")


def test_say_returns_ids_and_duplicate_ids_are_flagged(peer):
    a = peer.say_json(ALICE, "hello", room=FAMILY)
    b = peer.say_json(ALICE, "hello", room=FAMILY)
    assert a["id"] != b["id"] and not a["duplicate"]
    first = peer.say_json(BOB, "same", room=FAMILY, id="dup-1")
    again = peer.say_json(BOB, "same", room=FAMILY, id="dup-1")
    assert first == {"id": "dup-1", "duplicate": False, "delivered": first["delivered"]}
    assert again["id"] == "dup-1" and again["duplicate"] is True
    assert peer.sent() == []


def test_logout_and_login_are_simulated(peer):
    peer.logout()
    assert peer.health()["loggedIn"] is False
    with pytest.raises(PeerError, match="409"):
        peer.say(ALICE, "anyone?", room=FAMILY)
    peer.login()
    assert peer.health()["loggedIn"] is True
    with pytest.raises(PeerError, match="409"):  # another account only after a logout
        peer.login(OTHER_ACCOUNT)
    peer.logout()
    peer.login(OTHER_ACCOUNT)
    assert peer.health()["botId"] == OTHER_ACCOUNT
    peer.logout()
    peer.login()  # the module's peer goes on as the bot's own account
    assert peer.health()["botId"] == BOT


# --------------------------------------------------------------------------------------------- over gRPC
def test_grpc_message_flow_mentions_alias_and_sent_log(peer):
    async def scenario():
        client = await _connected(peer)
        try:
            stub = client.stub
            t0 = time.monotonic()
            mid = peer.say(ALICE, at() + "画一只猫", room=FAMILY, mention=[BOT])
            t_event, ev = await client.next_event(EVENT_MESSAGE)
            assert ev == {"messageId": mid}
            latency = t_event - t0

            p = await stub.message_payload(id=mid)
            assert (p.from_id, p.room_id, p.text, list(p.mention_ids)) == (
                ALICE,
                FAMILY,
                "@小爱\u2005画一只猫",
                [BOT],
            )
            member = await stub.room_member_payload(id=FAMILY, member_id=BOT)
            assert member.room_alias == BOT_ROOM_ALIAS and member.name == "小爱"
            room = await stub.room_payload(id=FAMILY)
            assert room.topic == "相亲相爱一家人"
            assert set(room.member_ids) == {BOT, OTHER_ACCOUNT, ALICE, BOB, "carol"}

            private = peer.say(BOB, "在吗")
            _, ev = await client.next_event(EVENT_MESSAGE)
            p = await stub.message_payload(id=private)
            assert (ev["messageId"], p.from_id, p.to_id, p.room_id) == (private, BOB, BOT, "")

            r = await stub.message_send_text(conversation_id=FAMILY, text="@妈妈 好的", mentonal_ids=[ALICE])
            assert r.id, "the scenario puppet must return the new message id"
            _, echo = await client.next_event(EVENT_MESSAGE)  # real puppets echo the bot's own messages
            assert echo == {"messageId": r.id}
            assert (await stub.message_payload(id=r.id)).from_id == BOT
            r2 = await stub.message_send_text(conversation_id=BOB, text="在")
            return latency, r.id, r2.id
        finally:
            await client.close()

    latency, room_reply, private_reply = asyncio.run(scenario())
    assert latency < 1.0
    sent = peer.sent()
    assert [m["id"] for m in sent] == [room_reply, private_reply]
    assert sent[0] | {"ts": 0} == {
        "id": room_reply,
        "room": FAMILY,
        "to": None,
        "text": "@妈妈 好的",
        "mentionIds": [ALICE],
        "file": None,
        "ts": 0,
    }
    assert (sent[1]["room"], sent[1]["to"], sent[1]["text"]) == (None, BOB, "在")
    assert peer.wait_for_sent(lambda m: m["to"] == BOB, timeout=1)["id"] == private_reply
    with pytest.raises(TimeoutError):
        peer.wait_for_sent(lambda m: m["room"] == OTHER, timeout=0.1)
    peer.reset()
    assert peer.sent() == []


def test_duplicate_id_emits_the_message_event_twice(peer):
    async def scenario():
        client = await _connected(peer)
        try:
            peer.say(ALICE, "重复", room=FAMILY, id="same-id")
            peer.say(ALICE, "重复", room=FAMILY, id="same-id")
            return await client.drain(EVENT_MESSAGE)
        finally:
            await client.close()

    assert asyncio.run(scenario()) == [{"messageId": "same-id"}, {"messageId": "same-id"}]


def test_image_message_serves_its_file(peer):
    async def scenario():
        client = await _connected(peer)
        try:
            png = base64.b64encode(b"\x89PNG fake").decode()
            mid = peer.say(ALICE, room=FAMILY, type="image", base64=png, name="cat.png")
            await client.next_event(EVENT_MESSAGE)
            p = await client.stub.message_payload(id=mid)
            f = await client.stub.message_file(id=mid)
            return p, json.loads(f.filebox)
        finally:
            await client.close()

    payload, box = asyncio.run(scenario())
    assert payload.type == 6  # MESSAGE_TYPE_IMAGE
    assert box["name"] == "cat.png"


def test_five_megabyte_file_fits_through_grpc(peer):
    from wechaty_puppet import FileBox

    data = os.urandom(5 * 1024 * 1024)

    async def scenario():
        client = await _connected(peer)
        try:
            box = FileBox.from_base64(base64.b64encode(data), name="video.mp4")
            t0 = time.monotonic()
            r = await client.stub.message_send_file(conversation_id=FAMILY, filebox=box.to_json_str())
            return r.id, time.monotonic() - t0
        finally:
            await client.close()

    mid, seconds = asyncio.run(scenario())
    sent = peer.wait_for_sent(lambda m: m["id"] == mid)
    assert sent["file"]["name"] == "video.mp4"
    assert sent["file"]["mimeType"] == "video/mp4"
    assert sent["file"]["size"] == len(data)
    assert base64.b64decode(sent["file"]["base64"]) == data
    assert seconds < 10


def test_wrong_token_is_rejected(peer):
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError

    async def scenario():
        client = GrpcClient(peer.endpoint, "not-the-token")
        try:
            with pytest.raises(GRPCError) as e:
                await client.stub.start()
            return e.value.status
        finally:
            client.channel.close()

    assert asyncio.run(scenario()) == Status.UNAUTHENTICATED


# --------------------------------------------------------------------------------------------- lifecycle
def test_restart_and_crash_keep_endpoint_token_and_ids():
    with NodePeer() as p:
        endpoint, token = p.endpoint, p.token
        first = p.say(ALICE, "before", room=FAMILY)
        assert p.stop() == 0
        assert "SIGTERM: shutting down" in p.logs() and "bye" in p.logs()
        p.start()
        assert (p.endpoint, p.token) == (endpoint, token)
        p.kill()
        assert p.returncode == -9
        p.restart()
        h = p.health()
        assert h["loggedIn"] and h["botId"] == BOT
        assert p.say(ALICE, "after", room=FAMILY) != first  # ids stay unique across restarts

        async def scenario():
            client = await _connected(p)
            await client.close()

        asyncio.run(scenario())


def test_port_in_use_fails_clearly(peer):
    code, out, _ = _run_gateway(
        {
            "WECHATY_PUPPET": "wechaty-puppet-mock",
            "XIAOAI_SCENARIO_PORT": str(free_port()),
            "WECHATY_GATEWAY_PORT": str(peer.port),
            "WECHATY_PUPPET_SERVICE_TOKEN": "t",
            "WECHATY_GATEWAY_DATA_DIR": str(peer.workdir / "other"),
        },
        timeout=30,
    )
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{peer.port}" in out


def test_unknown_puppet_fails_clearly(tmp_path):
    code, out, _ = _run_gateway(
        {
            "WECHATY_PUPPET": "wechaty-puppet-does-not-exist",
            "WECHATY_GATEWAY_PORT": str(free_port()),
            "WECHATY_GATEWAY_DATA_DIR": str(tmp_path),
        },
        timeout=30,
    )
    assert code == 2
    assert 'cannot load puppet package "wechaty-puppet-does-not-exist"' in out


def _wechat_reachable() -> bool:
    try:
        socket.getaddrinfo("login.wx.qq.com", 443)
    except OSError:
        return False
    return True


@pytest.mark.skipif(
    _wechat_reachable(), reason="WeChat's login host resolves here: wechat4u would show a real QR code"
)
def test_wechat4u_without_network_exits_nonzero_with_a_clear_message(tmp_path):
    # the default puppet, default start timeout: must fail, not hang
    code, out, seconds = _run_gateway(
        {"WECHATY_GATEWAY_PORT": str(free_port()), "WECHATY_GATEWAY_DATA_DIR": str(tmp_path)}, timeout=60
    )
    assert code == 1, out
    assert "FATAL" in out and "cannot start the puppet" in out and "wechaty-puppet-wechat4u" in out
    assert "check the network" in out
    assert seconds < 35
    assert "generated token: insecure_" in out


def test_wechat4u_that_hangs_hits_the_start_timeout(tmp_path):
    # a proxy that accepts connections and never answers: wechat4u neither fails nor shows a QR code
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sink.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sink.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    proxy = f"http://127.0.0.1:{sink.getsockname()[1]}"
    try:
        code, out, seconds = _run_gateway(
            {
                "WECHATY_GATEWAY_PORT": str(free_port()),
                "WECHATY_GATEWAY_DATA_DIR": str(tmp_path),
                "WECHATY_GATEWAY_START_TIMEOUT": "3",
                "https_proxy": proxy,
                "HTTPS_PROXY": proxy,
                "http_proxy": proxy,
                "HTTP_PROXY": proxy,
                "no_proxy": "",
                "NO_PROXY": "",
            },
            timeout=60,
        )
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sink.close()
    assert code == 1, out
    assert "did not log in within 3 s" in out
    assert seconds < 15
