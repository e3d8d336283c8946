"""What can go wrong with a hosted video API, sorted by who has to act: the asker, the admin, or nobody
(a retry). The job side turns each `Failure` into the asker's sentence and the admin's fix."""

from __future__ import annotations

from enum import StrEnum


class Failure(StrEnum):
    REFUSED = "refused"  # the provider's moderation refused the prompt or photo: the asker rewords
    ACCOUNT = "account"  # bad key, no balance, arrears: the admin fixes the account
    BUSY = "busy"  # throttled, overloaded, 5xx, no connection: retried with backoff within the deadline
    FAILED = "failed"  # the task ran and failed: tried once more, then the asker hears it
    GONE = "gone"  # the result URL (or the task) expired before it was fetched
    BAD_ANSWER = "bad_answer"  # not the documented JSON, or no video where one was promised
    TOO_BIG = "too_big"  # the result is over the download cap
    TIMEOUT = "timeout"  # not done within video.api.timeout_s
    REJECTED = "rejected"  # the provider refused our request itself (parameter, model name): config
    BAD_PHOTO = "bad_photo"  # the photo does not open, or cannot be brought within the provider's rules
    UNCONFIRMED = "unconfirmed"  # a create call whose answer was lost: it may have been paid for


class ApiFailure(Exception):
    """One classified failure; `str()` is the detail for the log and the admins (never the asker)."""

    def __init__(self, failure: Failure, detail: str, *, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(detail)
        self.failure = failure
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.failure is Failure.BUSY
