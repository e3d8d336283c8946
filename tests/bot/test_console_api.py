"""The admin console's API: every route's authorisation (session, CSRF), the lock-out, and saves that go
through the validated, comment-keeping config write (an invalid value refused, the file unchanged).

The console runs on the real parts it uses: a JobQueue on SQLite, a ConfigWatcher on a file in tmp_path,
the real LiveConfig; only the channel's login status and room list are given as plain values.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.channels.base import LoginStatus, RoomInfo
from bot.config import AppConfig, Secrets, load
from bot.config.live import LiveConfig
from bot.config.watch import ConfigWatcher
from bot.console.auth import COOKIE, CSRF_HEADER, Auth, is_loopback
from bot.console.channel_link import phase
from bot.console.checks import StatusChecks, llm_summary
from bot.console.server import ConsoleServer
from bot.console.web import ConsoleDeps, build_console
from bot.jobs import JobQueue, JobRequest, JobState, JobStore
from bot.messages import ChatRef
from bot.ops.notices import AdminNotices
from bot.plugin import load_intents
from tests.bot.test_admin import IdleKind

PASSWORD = "correct horse battery staple"
CONFIG = """\
# family notes stay
bot:
  name: 小爱
  admins: [alice]   # mum

groups:
  allow: ["*"]
  rooms:
    相亲相爱一家人:
      persona: 你是贴心的小爱。   # grandma likes this
"""
FAMILY = RoomInfo("family@chatroom", "相亲相爱一家人")
ROUTES_READ = ["/admin/api/status", "/admin/api/qr.svg", "/admin/api/jobs", "/admin/api/rooms",
               "/admin/api/settings", "/admin/api/keys", "/admin/api/logs"]
ROUTES_CHANGE = [("/admin/api/logout", {}), ("/admin/api/jobs/1/cancel", {}),
                 ("/admin/api/rooms", {"room_id": FAMILY.room_id, "topic": FAMILY.topic, "allowed": False}),
                 ("/admin/api/settings", {"values": {"llm.model": "other"}}),
                 ("/admin/api/keys", {"values": {"AMAP_KEY": "x"}}), ("/admin/api/keys/test/llm", {}),
                 ("/admin/api/reconnect", {}), ("/admin/api/reload", {})]


class Console:
    def __init__(self, tmp_path: Path, password: str | None) -> None:
        self.path = tmp_path / "config.yaml"
        self.path.write_text(CONFIG, encoding="utf-8")
        config = load(self.path).model_copy(update={"data_dir": tmp_path / "data"})
        self.live = LiveConfig(config)

        async def no_send(*_args: Any) -> bool:
            return True

        notices = AdminNotices(self.live, no_send)
        self.watcher = ConfigWatcher(self.path, apply=self.live.apply, notices=notices,
                                     connected=lambda: True)
        self.jobs = JobQueue(JobStore(tmp_path / "data" / "jobs.sqlite3"), media_dir=tmp_path / "media")
        self.jobs.register(IdleKind(), label="视频")
        self.status = LoginStatus(state="logged_out", since=1.0, qr_code="https://login.weixin.qq.com/l/x",
                                  qr_status="waiting", qr_at=2.0)

        async def rooms() -> list[RoomInfo]:
            return [FAMILY]

        self.secrets = Secrets.from_env({}).use_file(tmp_path / "data" / "secrets.json")
        checks = StatusChecks(self.live, self.secrets).run_async
        deps = ConsoleDeps(config=self.live, login_status=lambda: self.status, rooms=rooms, jobs=self.jobs,
                           watcher=self.watcher, checks=checks, secrets=self.secrets,
                           intents={i.name: i.label for i in load_intents()})
        self.auth = Auth(password)
        root = build_console(deps, self.auth)
        from fastapi import FastAPI

        app = FastAPI()
        app.mount("/admin", root)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")

    async def login(self, password: str = PASSWORD) -> str:
        response = await self.client.post("/admin/api/login", json={"password": password})
        assert response.status_code == 200, response.text
        return response.json()["csrf"]

    async def queued_video(self) -> int:
        request = JobRequest(kind="video", params={"prompt": "熊猫"}, seed=1, asker_id="bob",
                             asker_name="爸爸", chat=ChatRef(FAMILY.room_id, True), message_id="ask-1")
        return (await self.jobs.submit(request)).job.id


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    made = Console(tmp_path, PASSWORD)
    try:
        yield made
    finally:
        await made.client.aclose()
        made.jobs.store.close()


async def test_every_data_route_needs_a_session(console: Console) -> None:
    for path in ROUTES_READ:
        assert (await console.client.get(path)).status_code == 401, path
    for path, body in ROUTES_CHANGE:
        assert (await console.client.post(path, json=body)).status_code == 401, path
    page = await console.client.get("/admin/")
    session = (await console.client.get("/admin/api/session")).json()
    assert page.status_code == 200 and "管理台" in page.text
    assert session == {"password_required": True, "authenticated": False, "csrf": None, "bot": "小爱",
                       "lang": "zh"}


async def test_every_change_needs_the_csrf_token(console: Console) -> None:
    csrf = await console.login()
    job_id = await console.queued_video()
    before = console.path.read_bytes()
    for path, body in ROUTES_CHANGE:
        path = path.replace("/1/", f"/{job_id}/")
        for headers in ({}, {CSRF_HEADER: "forged"}, {CSRF_HEADER: ""}):
            response = await console.client.post(path, json=body, headers=headers)
            assert response.status_code == 403, (path, headers, response.text)
    assert console.path.read_bytes() == before
    assert console.jobs.get(job_id).state is JobState.QUEUED
    for path in ROUTES_READ:  # reads need the session only
        assert (await console.client.get(path)).status_code == 200, path
    cancelled = await console.client.post(f"/admin/api/jobs/{job_id}/cancel", headers={CSRF_HEADER: csrf})
    assert cancelled.status_code == 200 and console.jobs.get(job_id).state is JobState.CANCELLED
    again = await console.client.post(f"/admin/api/jobs/{job_id}/cancel", headers={CSRF_HEADER: csrf})
    assert again.status_code == 404
    jobs = (await console.client.get("/admin/api/jobs")).json()
    assert jobs["pending"] == [] and [j["id"] for j in jobs["finished"]] == [job_id]
    assert jobs["finished"][0]["asker"] == "爸爸" and jobs["finished"][0]["room"] == FAMILY.room_id
    out = await console.client.post("/admin/api/logout", headers={CSRF_HEADER: csrf})
    assert out.status_code == 200 and (await console.client.get("/admin/api/status")).status_code == 401


async def test_cookie_is_httponly_and_samesite_strict(console: Console) -> None:
    response = await console.client.post("/admin/api/login", json={"password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/admin" in cookie


async def test_wrong_passwords_lock_the_address_out(console: Console) -> None:
    for _ in range(4):
        assert (await console.client.post("/admin/api/login", json={"password": "guess"})).status_code == 401
    assert (await console.client.post("/admin/api/login", json={"password": "guess"})).status_code == 429
    locked = await console.client.post("/admin/api/login", json={"password": PASSWORD})
    assert locked.status_code == 429 and "秒后再试" in locked.json()["detail"]
    assert (await console.client.get("/admin/api/status")).status_code == 401


async def test_lockout_ends_after_its_time(tmp_path: Path) -> None:
    now = [0.0]
    auth = Auth(PASSWORD, clock=lambda: now[0], max_failures=2, lockout_s=60)
    assert auth.login("x", "a") is None
    with pytest.raises(Exception, match="try again"):
        auth.login("x", "a")
    assert auth.login(PASSWORD, "b") is not None  # another address is not locked out
    now[0] = 61
    session = auth.login(PASSWORD, "a")
    assert session is not None and auth.session(session.token) is session
    assert auth.password is None  # only the hash is kept


async def test_qr_code_is_an_svg_and_gone_once_serving(console: Console) -> None:
    await console.login()
    svg = await console.client.get("/admin/api/qr.svg")
    status = (await console.client.get("/admin/api/status")).json()["connection"]
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text and status["phase"] == "waiting_for_scan" and "qr_code" not in status
    console.status = LoginStatus(state="serving", since=3.0, account="小爱 (xiaoai)")
    assert (await console.client.get("/admin/api/qr.svg")).status_code == 404
    status = (await console.client.get("/admin/api/status")).json()["connection"]
    assert (status["phase"], status["account"]) == ("serving", "小爱 (xiaoai)")


def test_phase_words() -> None:
    assert phase(LoginStatus("logged_out", 0, reason="logged out", qr_code="q"))[1] == (
        "微信已退出登录，请重新扫码", "logged out, scan again")
    assert phase(LoginStatus("disconnected", 0, reason="UNAUTHENTICATED: bad token"))[0] == "refused"
    assert phase(LoginStatus("disconnected", 0, reason="gateway unreachable"))[0] == "down"
    assert phase(LoginStatus("connecting", 0))[0] == "connecting"
    assert phase(LoginStatus("playground", 0))[0] == "playground"


async def test_room_save_keeps_comments_and_applies_at_once(console: Console) -> None:
    csrf = await console.login()
    body = {"room_id": FAMILY.room_id, "topic": FAMILY.topic, "allowed": True,
            "intents": ["weather", "chat"], "persona": "你是贴心的小爱。",
            "quotas": {"user_videos_per_day": "1"}}
    response = await console.client.post("/admin/api/rooms", json=body, headers={CSRF_HEADER: csrf})
    assert response.status_code == 200, response.text
    text = console.path.read_text(encoding="utf-8")
    assert "# family notes stay" in text and "# grandma likes this" in text and "# mum" in text
    settings = console.live.current.for_chat(ChatRef(FAMILY.room_id, True), FAMILY.topic)
    assert settings.intents == {"weather", "chat"} and settings.quotas.user_videos_per_day == 1
    rooms = (await console.client.get("/admin/api/rooms")).json()["rooms"]
    assert rooms[0]["intents"] == ["weather", "chat"] and rooms[0]["quotas"] == {"user_videos_per_day": 1}


@pytest.mark.parametrize(("body", "message"), [
    ({"quotas": {"user_videos_per_day": "-1"}}, "不能小于 0"),
    ({"quotas": {"user_videos_per_day": "many"}}, "应该是整数"),
    ({"intents": ["video", "dance"]}, "没有这个功能：dance"),
    ({"quotas": {"videos_forever": "1"}}, "没有这个额度：videos_forever"),
])
async def test_invalid_room_value_is_refused_with_the_validators_message(console: Console, body: dict,
                                                                         message: str) -> None:
    csrf = await console.login()
    before = console.path.read_bytes()
    full = {"room_id": FAMILY.room_id, "topic": FAMILY.topic, "allowed": True, **body}
    response = await console.client.post("/admin/api/rooms", json=full, headers={CSRF_HEADER: csrf})
    assert response.status_code == 422 and message in response.json()["detail"], response.text
    assert console.path.read_bytes() == before


async def test_settings_save_validates_and_never_shows_secrets(console: Console, monkeypatch) -> None:
    monkeypatch.setenv("XIAOAI_IMAGE_API_KEY", "sk-very-secret")
    monkeypatch.delenv("AMAP_KEY", raising=False)
    csrf = await console.login()
    page = await console.client.get("/admin/api/settings")
    keys = await console.client.get("/admin/api/keys")
    assert "sk-very-secret" not in page.text + keys.text
    secrets = {s["name"]: (s["set"], s["from_env"]) for s in keys.json()["keys"]}
    assert secrets["XIAOAI_IMAGE_API_KEY"] == (True, True) and secrets["AMAP_KEY"] == (False, False)
    before = console.path.read_bytes()
    bad = await console.client.post("/admin/api/settings", headers={CSRF_HEADER: csrf},
                                    json={"values": {"schedules.timezone": "Mars/Base"}})
    assert bad.status_code == 422 and "没有这个时区" in bad.json()["detail"]
    secret = await console.client.post("/admin/api/settings", json={"values": {"llm.api_key": "x"}},
                                       headers={CSRF_HEADER: csrf})
    assert secret.status_code == 422 and console.path.read_bytes() == before
    good = await console.client.post("/admin/api/settings", headers={CSRF_HEADER: csrf}, json={"values": {
        "llm.model": "qwen-plus", "bot.admins": "alice\nbob", "quotas.user_videos_per_day": "null",
        "schedules.jobs": "- {name: morning, kind: text, at: '07:30', room: 相亲相爱一家人, text: 早上好}"}})
    assert good.status_code == 200, good.text
    config = console.live.current
    assert config.llm.model == "qwen-plus" and config.bot.admins == ("alice", "bob")
    assert config.quotas.user_videos_per_day is None and config.schedules.jobs[0].name == "morning"
    assert "# family notes stay" in console.path.read_text(encoding="utf-8")


async def test_without_a_password_the_console_opens_but_still_checks_csrf(tmp_path: Path) -> None:
    console = Console(tmp_path, None)
    try:
        session = (await console.client.get("/admin/api/session")).json()
        assert session["password_required"] is False and session["authenticated"] and session["csrf"]
        assert (await console.client.get("/admin/api/status")).status_code == 200
        forged = await console.client.post("/admin/api/settings", json={"values": {"llm.model": "x"}})
        assert forged.status_code == 403
    finally:
        await console.client.aclose()
        console.jobs.store.close()


async def test_no_password_refuses_a_public_address() -> None:
    from bot.config import ConsoleConfig

    server = ConsoleServer(object(), ConsoleConfig(host="0.0.0.0", port=0),  # noqa: S104 - the point
                           password_set=False)
    await server.start()
    assert server.url is None  # nothing was bound
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_status_line_of_the_llm_names_only_a_configured_one() -> None:
    config = AppConfig()
    assert "未配置" in llm_summary(config, Secrets.from_env({}))
    assert config.llm.model in llm_summary(config, Secrets.from_env({"OPENAI_API_KEY": "k"}))


async def test_checks_run_off_the_event_loop(console: Console) -> None:
    checks = await asyncio.wait_for(StatusChecks(console.live, Secrets.from_env({})).run_async(), 10)
    names = [c.key for c in checks]
    assert names[:2] == ["llm", "amap"] and "disk" in names and "console" in names
    assert all(c.fix for c in checks if not c.ok)


def test_sessions_are_capped_and_the_oldest_dropped() -> None:
    now = [0.0]
    auth = Auth(None, clock=lambda: now[0])
    first = auth.open_session()
    for step in range(150):
        now[0] = step + 1.0
        auth.open_session()
    assert auth.session(first.token) is None and len(auth._sessions) <= 100


def test_doctor_prints_each_check_with_its_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    from bot.__main__ import main

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AMAP_KEY", "WECHATY_PUPPET_SERVICE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nvideo:\n  model:\n    path: {tmp_path / 'none'}\n",
                    encoding="utf-8")
    code = main(["doctor", "--config", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[BAD] 语言模型: 没有配置" in out and "怎么办: 在管理台「密钥」页" in out
    assert "[BAD] 高德地图" in out and "[OK ] 微信: 没接微信" in out and "[OK ] 磁盘" in out
    # no weights: `xiaoai run` without a gateway is the playground, which serves the demo models
    assert "[OK ] 视频模型文件: 没找到真的模型文件：试玩页面用随机的演示模型" in out
    assert main(["doctor", "--config", str(path), "--lang", "en"]) == 1
    english = capsys.readouterr().out
    assert "[BAD] LLM: not configured" in english and "fix: enter the LLM key" in english


async def test_keys_are_saved_0600_never_shown_back_and_the_environment_wins(console: Console,
                                                                              monkeypatch) -> None:
    monkeypatch.delenv("AMAP_KEY", raising=False)
    monkeypatch.setenv("XIAOAI_SMTP_PASSWORD", "from-the-environment")
    csrf = await console.login()
    saved = await console.client.post("/admin/api/keys", headers={CSRF_HEADER: csrf},
                                      json={"values": {"AMAP_KEY": "amap-key-typed-in-1234"}})
    assert saved.status_code == 200, saved.text
    stored = console.path.parent / "data" / "secrets.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and "amap-key-typed-in-1234" in stored.read_text()
    assert "amap-key-typed-in-1234" not in console.path.read_text(encoding="utf-8")  # never in config.yaml
    assert console.secrets.get("AMAP_KEY") == "amap-key-typed-in-1234"  # used from the next message on
    keys = await console.client.get("/admin/api/keys")
    assert "amap-key-typed-in-1234" not in keys.text
    row = next(k for k in keys.json()["keys"] if k["name"] == "AMAP_KEY")
    assert row["set"] and row["shown"] == "已设置（…1234）" and not row["from_env"]
    refused = await console.client.post("/admin/api/keys", headers={CSRF_HEADER: csrf},
                                        json={"values": {"XIAOAI_SMTP_PASSWORD": "typed"}})
    assert refused.status_code == 409 and "环境变量" in refused.json()["detail"]
    unknown = await console.client.post("/admin/api/keys", headers={CSRF_HEADER: csrf},
                                        json={"values": {"WECHATY_PUPPET_SERVICE_TOKEN": "x"}})
    assert unknown.status_code == 422
    cleared = await console.client.post("/admin/api/keys", headers={CSRF_HEADER: csrf},
                                        json={"values": {"AMAP_KEY": ""}})
    assert cleared.status_code == 200 and console.secrets.get("AMAP_KEY") is None
    forged = await console.client.post("/admin/api/keys", json={"values": {"AMAP_KEY": "x"}})
    assert forged.status_code == 403


async def test_the_settings_form_shows_the_files_value_not_what_the_playground_fills_in(console: Console
                                                                                         ) -> None:
    running = console.live.current
    demo = running.video.model.model_copy(update={"path": Path("/data/demo-models/cogvideox-random")})
    quotas = running.quotas.model_copy(update={"user_videos_per_day": None})
    console.live.apply(running.model_copy(update={"video": running.video.model_copy(update={"model": demo}),
                                                  "quotas": quotas}))
    await console.login()
    page = (await console.client.get("/admin/api/settings")).json()
    fields = {f["path"]: f["value"] for f in page["fields"]}
    assert fields["video.model.path"] is None  # the file says nothing (null): not the demo model's folder
    assert fields["quotas.user_videos_per_day"] == "3"  # the file's default, not the playground's lifted one


def test_keys_are_masked_in_the_log_but_addresses_stay_readable(tmp_path: Path) -> None:
    from bot.logs import redactor

    secrets = Secrets(openai_api_key="sk-live-key-for-the-log-42",
                      openai_base_url="http://10.1.2.3:11434/v1",
                      puppet_endpoint="10.9.8.7:8788", puppet_token="gateway-token-for-the-log-42")
    secrets.use_file(tmp_path / "secrets.json").set("AMAP_KEY", "amap-key-for-the-log-42")
    line = redactor().redact("sk-live-key-for-the-log-42 gateway-token-for-the-log-42 "
                             "amap-key-for-the-log-42 http://10.1.2.3:11434/v1 10.9.8.7:8788")
    assert line == "*** *** *** http://10.1.2.3:11434/v1 10.9.8.7:8788"
