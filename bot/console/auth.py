"""The console's login: one password (env XIAOAI_ADMIN_PASSWORD), server-side sessions, a CSRF token per
session, and a lock-out after repeated wrong passwords.

The password is kept only as a salted scrypt hash and compared with `hmac.compare_digest`. A session is
a random token in an HttpOnly, SameSite=Strict cookie; every change must also carry the session's CSRF
token in a header, which a page on another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "xiaoai_admin"
CSRF_HEADER = "X-CSRF-Token"
MAX_FAILURES = 5  # wrong passwords from one address before it is locked out
LOCKOUT_S = 300.0
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 100
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LockedOut(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"too many wrong passwords: try again in {int(seconds) + 1} s")
        self.seconds = seconds


@dataclass
class Session:
    token: str
    csrf: str
    expires: float


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class Auth:
    """`password` None: no login (the console is then loopback-only and every visitor gets a session)."""

    password: str | None
    clock: Callable[[], float] = time.monotonic
    max_failures: int = MAX_FAILURES
    lockout_s: float = LOCKOUT_S
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    _hash: bytes | None = None
    _sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.password:
            self._hash = self._digest(self.password)
        self.password = None  # only the hash stays in memory

    @property
    def required(self) -> bool:
        return self._hash is not None

    def _digest(self, given: str) -> bytes:
        return hashlib.scrypt(given.encode("utf-8"), salt=self._salt, **_SCRYPT)

    def login(self, given: str, client: str) -> Session | None:
        """A new session for the right password; None for a wrong one. Blocking (scrypt, ~50 ms).

        Raises LockedOut while `client` has had too many wrong tries."""
        now = self.clock()
        failures = self._failures.setdefault(client, _Failures())
        if failures.locked_until > now:
            raise LockedOut(failures.locked_until - now)
        if self._hash is not None and not hmac.compare_digest(self._digest(given), self._hash):
            failures.count += 1
            if failures.count >= self.max_failures:
                failures.count, failures.locked_until = 0, now + self.lockout_s
                raise LockedOut(self.lockout_s)
            return None
        self._failures.pop(client, None)
        return self._new_session(now)

    def open_session(self) -> Session:
        """A session without a password: only when none is required."""
        if self.required:
            raise PermissionError("a password is required")
        return self._new_session(self.clock())

    def _new_session(self, now: float) -> Session:
        live = sorted((s for s in self._sessions.values() if s.expires > now), key=lambda s: s.expires)
        self._sessions = {s.token: s for s in live[-MAX_SESSIONS + 1:]}  # the oldest go first
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + SESSION_TTL_S)
        self._sessions[session.token] = session
        return session

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None or session.expires <= self.clock():
            return None
        return session

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)
