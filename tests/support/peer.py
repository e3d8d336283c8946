"""The Node Wechaty peer for end-to-end tests: `gateway/index.js` with the mock puppet and the test scenario.

    with NodePeer() as peer:                  # npm ci (once), spawn, wait until the bot is logged in
        os.environ.update(peer.client_env())  # WECHATY_PUPPET_SERVICE_ENDPOINT / _TOKEN for python-wechaty
        ...start the bot, then peer.wait_for_client()
        peer.say("alice", at("小爱") + "画一只猫", room=FAMILY, mention=[BOT])
        reply = peer.wait_for_sent(lambda m: m["room"] == FAMILY)

The cast (ids are stable across gateway restarts): bot `xiaoai` (小爱; room alias 小爱同学 in the family
room), `xiaomei` 小美 (another account the bot may log in as), `alice` 妈妈, `bob` 爸爸,
`carol` 奶奶; rooms `family@chatroom` 相亲相爱一家人 and
`other@chatroom` 工作群.
Stdlib + httpx only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY_DIR = REPO_ROOT / "gateway"

BOT = "xiaoai"
BOT_NAME = "小爱"
BOT_ROOM_ALIAS = "小爱同学"
ALICE, BOB, CAROL = "alice", "bob", "carol"
OTHER_ACCOUNT, OTHER_ACCOUNT_NAME = "xiaomei", "小美"  # a second account the bot can log in as
FAMILY = "family@chatroom"
OTHER = "other@chatroom"
MENTION_SEP = "\u2005"  # real WeChat clients put U+2005 after "@Name"

_MARKER = ".xiaoai-npm-ci"


def at(name: str = BOT_NAME) -> str:
    """`@Name` followed by U+2005, as a real WeChat client types a mention."""
    return f"@{name}{MENTION_SEP}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_node_modules(gateway_dir: Path = GATEWAY_DIR, timeout: float = 600.0) -> None:
    """Run `npm ci` in gateway/ unless node_modules matches package-lock.json already.

    A marker file in node_modules holds the lock file's hash; an flock on a file in the temp dir keeps
    concurrent pytest processes (xdist workers, parallel sessions) from installing at the same time.
    """
    lock_file = gateway_dir / "package-lock.json"
    digest = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    marker = gateway_dir / "node_modules" / _MARKER

    def installed() -> bool:
        return marker.exists() and marker.read_text().strip() == digest

    if installed():
        return
    lock_path = (
        Path(tempfile.gettempdir())
        / f"xiaoai-npm-ci-{hashlib.sha256(str(gateway_dir).encode()).hexdigest()[:12]}.lock"
    )
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if installed():  # another process did it while we waited
                return
            proc = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=gateway_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"npm ci failed in {gateway_dir} (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            marker.write_text(digest + "\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


class PeerError(RuntimeError):
    pass


class NodePeer:
    """Runs `node gateway/index.js` with WECHATY_PUPPET=wechaty-puppet-mock and the scenario control API.

    Ports and token are chosen once and kept by restart(), so a reconnecting client finds the same endpoint.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        scenario_port: int | None = None,
        token: str | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        gateway_dir: Path = GATEWAY_DIR,
        wait_for_scan: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.scenario_port = scenario_port or free_port()
        self._token = token or f"insecure_test_{os.urandom(8).hex()}"
        self.extra_env = dict(env or {})
        self.wait_for_scan = wait_for_scan  # the mock shows a QR code and logs in only on login()
        if wait_for_scan:
            self.extra_env["XIAOAI_SCENARIO_LOGIN"] = "scan"
        self.start_timeout = start_timeout
        self.gateway_dir = gateway_dir
        self.workdir = Path(tempfile.mkdtemp(prefix="xiaoai-peer-"))
        self.log_path = self.workdir / "gateway.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None  # wall time of the last start(), spawn to logged in
        self._http = httpx.Client(
            base_url=f"http://{self.host}:{self.scenario_port}", timeout=10.0, trust_env=False
        )
        self._finalizer = weakref.finalize(self, _terminate, None)
        weakref.finalize(self, shutil.rmtree, self.workdir, True)  # logs and QR code go with the object

    # ---------------------------------------------------------------- properties
    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def token(self) -> str:
        return self._token

    @property
    def scenario_url(self) -> str:
        return f"http://{self.host}:{self.scenario_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def client_env(self) -> dict[str, str]:
        """Environment for a python-wechaty client of this peer."""
        return {
            "WECHATY_PUPPET": "wechaty-puppet-service",
            "WECHATY_PUPPET_SERVICE_ENDPOINT": self.endpoint,
            "WECHATY_PUPPET_SERVICE_TOKEN": self.token,
        }

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> NodePeer:
        if self.running:
            return self
        ensure_node_modules(self.gateway_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHATY_", "XIAOAI_"))}
        env.update(
            {
                "WECHATY_PUPPET": "wechaty-puppet-mock",
                "WECHATY_GATEWAY_HOST": self.host,
                "WECHATY_GATEWAY_PORT": str(self.port),
                "WECHATY_PUPPET_SERVICE_TOKEN": self._token,
                "XIAOAI_SCENARIO_PORT": str(self.scenario_port),
                "WECHATY_GATEWAY_DATA_DIR": str(self.workdir / "data"),
                "WECHATY_GATEWAY_QR_TERMINAL": "0",
                "WECHATY_LOG": "warn",
            }
        )
        env.update(self.extra_env)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["node", str(self.gateway_dir / "index.js")],
                cwd=self.gateway_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the test terminal goes to pytest, not the peer
            )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _terminate, self.proc)
        self._wait_ready(t0)
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise PeerError(
                    f"gateway exited with code {self.returncode} while starting:\n{self.logs()[-4000:]}"
                )
            try:
                if self.health().get("loggedIn") or self.wait_for_scan:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.kill()
        raise PeerError(f"gateway not ready within {self.start_timeout} s:\n{self.logs()[-4000:]}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code (0 for a clean shutdown)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, simulating a crash."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return self.proc.returncode

    def restart(self, *, crash: bool = False) -> NodePeer:
        """Stop (or kill, with crash=True) and start again on the same ports with the same token."""
        self.kill() if crash else self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self._http.close()

    def __enter__(self) -> NodePeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- control API
    def _call(self, method: str, path: str, json: Any = None) -> Any:
        r = self._http.request(method, path, json=json)
        if r.status_code != 200:
            raise PeerError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def health(self) -> dict:
        """{loggedIn, botId, streaming (a gRPC client holds the event stream), sent, contacts, rooms}."""
        return self._call("GET", "/health")

    def say_json(
        self,
        sender: str,
        text: str = "",
        *,
        room: str | None = None,
        mention: list[str] | tuple[str, ...] = (),
        id: str | None = None,  # noqa: A002 - the API's field name
        type: str = "text",  # noqa: A002
        base64: str | None = None,
        name: str | None = None,
    ) -> dict:
        """Inject a message (room message, or private to the bot when room is None); returns the API's
        reply: {id, duplicate (the id existed: the same message event was emitted again), delivered (a
        client streams)}."""
        body: dict[str, Any] = {
            "from": sender,
            "room": room,
            "text": text,
            "mention": list(mention),
            "type": type,
        }
        if id is not None:
            body["id"] = id
        if base64 is not None:
            body["base64"] = base64
        if name is not None:
            body["name"] = name
        return self._call("POST", "/say", body)

    def say(self, sender: str, text: str = "", **kwargs: Any) -> str:
        """Like say_json(); returns only the message id."""
        return self.say_json(sender, text, **kwargs)["id"]

    def sent(self) -> list[dict]:
        """Everything the bot sent, in order: {id, room, to, text, mentionIds, file, ts};
        file is {name, mimeType, size, base64, url} or None."""
        return self._call("GET", "/sent")

    def reset(self) -> None:
        """Clear the sent list and the gRPC call counts."""
        self._call("POST", "/reset")

    def calls(self) -> dict[str, int]:
        """The gRPC calls the bot made since the last reset, by method ("MessagePayload": 3, ...)."""
        return self._call("GET", "/calls")

    def room_event(self, kind: str, room: str, *, contact: str | None = None,
                   topic: str | None = None) -> None:
        """A member joined ("join") or left ("leave") `room`, or it was renamed to `topic` ("topic")."""
        body: dict[str, Any] = {"type": kind, "room": room}
        if contact is not None:
            body["contact"] = contact
        if topic is not None:
            body["topic"] = topic
        self._call("POST", "/room-event", body)

    def logout(self) -> None:
        """Simulate WeChat dropping the bot's session (a logout event reaches the client)."""
        self._call("POST", "/logout")

    def login(self, account: str = BOT) -> None:
        """The phone confirms a scan: log in as `account` (the bot's own, or OTHER_ACCOUNT)."""
        self._call("POST", "/login", {"as": account})

    def scan(self, qrcode: str | None = None, status: int = 2) -> dict:
        """Emit a login QR code (status 2 waiting, 3 scanned) while logged out; returns {qrcode, status}."""
        return self._call("POST", "/scan", {"status": status, **({"qrcode": qrcode} if qrcode else {})})

    def wait_for_sent(
        self,
        predicate: Callable[[dict], bool] = lambda m: True,
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> dict:
        """Poll /sent until a message matches; returns the first match, else raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent()
            for m in sent:
                if predicate(m):
                    return m
            if time.monotonic() >= deadline:
                brief = [{k: v for k, v in m.items() if k != "file"} for m in sent]
                raise TimeoutError(f"no matching message sent by the bot within {timeout} s; sent: {brief}")
            time.sleep(interval)

    def wait_for_client(self, timeout: float = 30.0) -> None:
        """Wait until a gRPC client (the bot) holds the event stream, so injected messages reach it."""
        deadline = time.monotonic() + timeout
        while not self.health().get("streaming"):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no gRPC client opened the event stream within {timeout} s")
            time.sleep(0.02)
