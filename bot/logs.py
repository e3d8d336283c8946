"""The bot's log: one loguru sink that never writes a secret, and few, useful lines about the connection.

* `setup_logging` installs the only sink. Every line (tracebacks included) passes through a `Redactor`
  that masks the values of secret environment variables (the gateway token, API keys, passwords) and
  anything shaped like a bearer token or an API key, wherever it appears.
* `route_stdlib_logging` sends the `logging` records of libraries (python-wechaty builds its own
  stderr handlers that print the gateway token) through that same sink; their chatter goes to DEBUG.
* `ConnectionLog` turns a transport's state changes into one line per change, summarises a retry loop
  ("still refused, 12 attempts in 60 s") and names the variable to fix.

Message text is only logged at DEBUG (set XIAOAI_LOG_LEVEL=DEBUG to see it); INFO keeps ids, rooms,
intents and timings.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TextIO

from loguru import logger

from generators.heavy_imports import silence_known_warnings

LEVEL_ENV = "XIAOAI_LOG_LEVEL"
TOKEN_ENV = "WECHATY_PUPPET_SERVICE_TOKEN"
ENDPOINT_ENV = "WECHATY_PUPPET_SERVICE_ENDPOINT"
MASK = "***"
FORMAT = "{time:HH:mm:ss.SSS} {level: <7} {message}"
# Environment variables whose values are secrets, by name (OPENAI_API_KEY, AMAP_KEY, XIAOAI_SMTP_PASSWORD...).
SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|WEBHOOK_URL$", re.IGNORECASE)
MIN_SECRET_LENGTH = 4  # shorter values ("k", "1") would mask ordinary words
# Secrets recognisable by shape even when they never came from our environment.
SECRET_SHAPES = (
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}"),  # Authorization: Bearer ...
    # key=..., token: ..., ?key=... in a URL; the value must hold a digit ("unknown key: llm.modle" stays)
    re.compile(r"(?i)(\b(?:api[_-]?key|access[_-]?token|token|key|password|secret)[\"']?\s*[=:<]\s*[\"']?)"
               r"(?=[A-Za-z._~+/-]*\d)[A-Za-z0-9._~+/-]{8,}"),
    re.compile(r"()\bsk-[A-Za-z0-9_-]{12,}"),  # OpenAI-style keys
)


def secret_values(env: Mapping[str, str] | None = None) -> set[str]:
    """The values of the environment variables named like secrets."""
    env = os.environ if env is None else env
    return {value for name, value in env.items()
            if SECRET_NAME.search(name) and value and len(value) >= MIN_SECRET_LENGTH}


class Redactor:
    """Masks known secret values and secret-shaped strings in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Also mask these values (e.g. a token read from a file, not the environment)."""
        fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH} - self._values
        if not fresh:
            return
        self._values |= fresh
        # longest first, so a secret that contains another is masked whole
        alternatives = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        for shape in SECRET_SHAPES:
            text = shape.sub(lambda m: m.group(1) + MASK, text)
        return text


_redactor = Redactor()
_stdlib_level = logging.INFO
_level: str | None = None  # the level of the installed sink


def level_name() -> str:
    """The level the bot logs at (what `setup_logging` chose, else XIAOAI_LOG_LEVEL, else INFO)."""
    return _level or (os.environ.get(LEVEL_ENV) or "INFO").upper()


def redactor() -> Redactor:
    """The redactor of the installed sink (add secrets that do not come from the environment)."""
    return _redactor


def setup_logging(level: str | None = None, *, stream: TextIO | None = None,
                  env: Mapping[str, str] | None = None) -> Redactor:
    """Install the one sink (stderr by default) with redaction, and route library `logging` through it.

    The level comes from `level`, else XIAOAI_LOG_LEVEL, else INFO."""
    global _redactor, _stdlib_level, _level
    env = os.environ if env is None else env
    level = _level = (level or env.get(LEVEL_ENV) or "INFO").upper()
    _redactor = Redactor(secret_values(env))
    out = stream or sys.stderr  # the stream of now: Celery later swaps sys.stderr for a logging proxy

    def write(message: str) -> None:
        nonlocal out
        if out.closed:  # a test's captured stream, gone since: the stderr of the moment
            out = sys.stderr
        out.write(_redactor.redact(message))
        out.flush()

    logger.remove()
    # diagnose=False: tracebacks must not print local variables (they hold tokens and message text)
    logger.add(write, level=level, format=FORMAT, colorize=False, backtrace=False, diagnose=False)
    # the libraries' INFO lines become DEBUG (see _ToLoguru): above DEBUG they are not even made (httpx
    # logs every request, python-wechaty every payload it loads: CPU on the event loop for nothing)
    _stdlib_level = logging.DEBUG if level in ("TRACE", "DEBUG") else logging.WARNING
    silence_known_warnings()
    route_stdlib_logging()
    return _redactor


# python-wechaty warns on every connection that the endpoint and token came both from its options and
# from the environment (we pass both on purpose), printing the token: harmless, so DEBUG.
HARMLESS_LIBRARY_LINES = {
    "PuppetService": re.compile(r"^there are (two endpoints|two tokens|endpoint<)"),
}


class _ToLoguru(logging.Handler):
    """A `logging` handler that re-emits records through loguru. INFO and below become DEBUG (the
    libraries' INFO lines describe their internals, not the bot's state), as do known-harmless warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a library's bad format string must not break logging
            message = str(record.msg)
        harmless = HARMLESS_LIBRARY_LINES.get(record.name)
        level = record.levelname if record.levelno >= logging.WARNING else "DEBUG"
        if harmless is not None and harmless.search(message):
            level = "DEBUG"
        logger.opt(exception=record.exc_info if record.exc_info else None).log(
            level, "{}: {}", record.name, message)


def route_stdlib_logging() -> None:
    """Send every `logging` record through loguru: the root logger, and each library logger that has its
    own stream handlers and does not propagate (python-wechaty's `get_logger` builds those, printing the
    gateway token in plain text). Call again after importing such a library."""
    handler = _ToLoguru()
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_stdlib_level)
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(candidate, logging.Logger) or candidate.propagate:
            continue
        if any(isinstance(h, logging.StreamHandler) for h in candidate.handlers):
            candidate.handlers = [handler]
            candidate.setLevel(_stdlib_level)


class ConnectionLog:
    """One line per connection state change, and a retry loop summarised instead of repeated.

    `changed` is called with every transition. Transitional states (connecting, connected) are DEBUG;
    a failure is logged once with the fix, the same failure again only as a summary every `every_s`
    seconds ("still refused, 12 attempts in 60 s"), and recovery once."""

    def __init__(self, name: str, endpoint: str, *, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.endpoint = endpoint
        self.every_s = every_s
        self._clock = clock
        self._failure: str | None = None  # kind of the failure being repeated
        self._attempts = 0
        self._since = 0.0
        self._summarised_at = 0.0

    def changed(self, previous: str, state: str, reason: str = "") -> None:
        if state == "disconnected":
            self._failed(reason)
        elif state == "serving":
            if self._failure is not None:
                logger.info("{}: connected again after {} failed attempts in {:.0f} s; {}", self.name,
                            self._attempts, self._clock() - self._since, reason)
            else:
                logger.info("{}: {}", self.name, reason or "serving")
            self._failure = None
        elif reason == "logged out":
            logger.warning("{}: WeChat logged the bot out; scan the gateway's new QR code", self.name)
        elif state == "stopped":
            logger.info("{}: stopped", self.name)
        elif state == "connecting" and previous == "stopped":
            logger.info("{}: connecting to {}", self.name, self.endpoint)
        else:
            logger.debug("{}: {} -> {}{}", self.name, previous, state, f" ({reason})" if reason else "")

    def _failed(self, reason: str) -> None:
        kind, what, fix = self.explain(reason)
        now = self._clock()
        if kind != self._failure:
            self._failure, self._attempts, self._since, self._summarised_at = kind, 1, now, now
            logger.warning("{}: {}; {}", self.name, what, fix)
            return
        self._attempts += 1
        if now - self._summarised_at >= self.every_s:
            self._summarised_at = now
            logger.warning("{}: still {}, {} attempts in {:.0f} s; {}", self.name, kind, self._attempts,
                           now - self._since, fix)

    def explain(self, reason: str) -> tuple[str, str, str]:
        """(failure kind, what happened, what to fix) for a disconnect reason; no secret in any of them."""
        lowered = reason.lower()
        if "unauthenticated" in lowered or "token" in lowered:
            return ("refused", "the gateway refused the token",
                    f"set {TOKEN_ENV} to the token the gateway uses (it prints a generated one at start)")
        if any(word in lowered for word in ("unreachable", "errno", "timeout", "stopped answering")):
            return ("unreachable", f"nothing answers at {self.endpoint}",
                    f"start the gateway (make gateway) or fix {ENDPOINT_ENV}; retrying")
        if "logged out" in lowered or "logout" in lowered:
            return ("logged out", "WeChat logged the bot out", "scan the gateway's new QR code")
        return ("disconnected", f"disconnected ({reason})", "reconnecting")
