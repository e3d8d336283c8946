"""The one exception type whose message the user sees, and the wording of a feature not yet set up.
(What an intent is — its declaration and handler type — lives in bot/plugin.py.)"""

from __future__ import annotations


class UserInputError(Exception):
    """A problem the asker can fix (a missing place, a bad frame count). Its message is shown as is.

    When only the admin can fix it (a missing key or model), the message says so kindly and
    `admin_detail` carries the exact fix, told to the admins once per `problem` and logged."""

    def __init__(self, message: str, *, admin_detail: str | None = None, problem: str | None = None) -> None:
        super().__init__(message)
        self.admin_detail = admin_detail
        self.problem = problem or (message if admin_detail else None)


def not_enabled(feature: str) -> str:
    return f"「{feature}」功能还没有开通，管理员正在准备中，先陪你聊聊别的吧～"
