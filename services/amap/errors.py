"""AMap's failures as exceptions: every answer carries `status`, `info` and `infocode`, and each kind of
failure callers treat differently (no key, key refused, quota, busy, no route, down) has its class."""

from __future__ import annotations

KEY_ENV = "AMAP_KEY"

# infocodes from the public error code table (lbs.amap.com/api/webservice/guide/tools/info)
KEY_PROBLEM_CODES = frozenset({"10001", "10002", "10005", "10006", "10007", "10008", "10009", "10011",
                               "10012", "10013"})
QUOTA_CODES = frozenset({"10003", "10010", "10029", "10044", "10045"})  # daily / per-IP / account quota
BUSY_CODES = frozenset({"10004", "10014", "10015", "10019", "10020", "10021"})  # per-second/minute limits
NO_ROUTE_CODES = frozenset({"20800", "20801", "20802", "20803"})  # outside China, no road, failed, too far


# -- errors ---------------------------------------------------------------------------------------------
class AmapError(Exception):
    """Any failure talking to AMap; `infocode`/`info` are AMap's own when it answered."""

    def __init__(self, message: str, infocode: str = "", info: str = "") -> None:
        super().__init__(message)
        self.infocode = infocode
        self.info = info


class AmapNoKey(AmapError):
    """AMAP_KEY is not set."""


class AmapKeyRejected(AmapError):
    """The key is wrong, deleted, of the wrong platform type, or lacks this service."""


class AmapQuotaExceeded(AmapError):
    """The daily (or per-IP) quota is used up; AMap unblocks at 00:00."""


class AmapBusy(AmapError):
    """Too many requests per second/minute, still after retries."""


class AmapNoRoute(AmapError):
    """No route between the two points (or no plan in the answer)."""


class AmapUnavailable(AmapError):
    """Network error, timeout, HTTP 5xx or an answer that is not AMap JSON."""


class AmapRequestFailed(AmapError):
    """Any other AMap failure (bad parameters, unknown engine error)."""


def error_for(infocode: str, info: str) -> AmapError:
    message = f"AMap infocode {infocode}: {info}"
    if infocode in KEY_PROBLEM_CODES:
        return AmapKeyRejected(message, infocode, info)
    if infocode in QUOTA_CODES or "QUERY_OVER_LIMIT" in info:
        return AmapQuotaExceeded(message, infocode, info)
    if infocode in BUSY_CODES:
        return AmapBusy(message, infocode, info)
    if infocode in NO_ROUTE_CODES:
        return AmapNoRoute(message, infocode, info)
    return AmapRequestFailed(message, infocode, info)


__all__ = ["KEY_ENV", "AmapBusy", "AmapError", "AmapKeyRejected", "AmapNoKey", "AmapNoRoute",
           "AmapQuotaExceeded", "AmapRequestFailed", "AmapUnavailable"]
